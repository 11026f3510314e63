#!/usr/bin/env bash
# The appliance's main job: serve calls with the default config, after one demo
# call that shows a real conversation with its latencies. Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
config="${PHONE_AGENT_CONFIG:-configs/clinic}"
mkdir -p state
box_env="${PHONE_AGENT_HOME:-/opt/phone-agent}/asterisk.env"   # written by scripts/asterisk.sh
# the agent runs in the no-egress sandbox (loopback + the config's allowed hosts) where the box allows it
sandbox=()
if why=$(bash scripts/sandbox.sh check 2>&1); then
    sandbox=(bash scripts/sandbox.sh run "$config" --)
    echo "[run] agent sandboxed: it reaches loopback and the config's allowed hosts only"
else
    echo "[run] WARNING: the agent runs without the network sandbox: $why" >&2
fi
"${sandbox[@]}" .venv/bin/python -m agent run --config "$config" 2> >(tee -a state/agent.log >&2) &
agent=$!
console=""
stop_agent() {
    [ -n "$console" ] && { kill "$console" 2>/dev/null || true; wait "$console" 2>/dev/null || true; }
    kill -0 "$agent" 2>/dev/null || return 0
    kill "$agent" 2>/dev/null || true
    wait "$agent" 2>/dev/null || true
    echo "[run] agent and console stopped (Asterisk keeps running: scripts/asterisk.sh stop)"
}
trap 'stop_agent; exit 0' INT TERM
trap 'stop_agent' EXIT
address=$(grep ^AGENT_ADDRESS= "$box_env" | cut -d= -f2)
for _ in $(seq 1 300); do
    kill -0 $agent 2>/dev/null || { echo "[run] the agent exited; see state/agent.log" >&2; exit 1; }
    (exec 3<>"/dev/tcp/${address%:*}/${address#*:}") 2>/dev/null && break
    sleep 0.2
done
# the admin console beside the agent (loopback only; started once the agent has migrated the database);
# the first run creates its admin with a generated password, shown once below
console_listen="${PHONE_AGENT_CONSOLE:-127.0.0.1:8090}"
login=$(.venv/bin/python -m agent console-user init 2>/dev/null || true)
.venv/bin/python -m agent console --config "$config" --listen "$console_listen" 2>>state/console.log &
console=$!
echo "[run] placing a demo call through Asterisk (scenarios/clinic/demo.yaml) ..."
.venv/bin/python -m agent call --script scenarios/clinic/demo.yaml || echo "[run] the demo call did not pass; see above"
sip=$(grep ^SIP_BIND= "$box_env" | cut -d= -f2):$(grep ^SIP_PORT= "$box_env" | cut -d= -f2)
echo "[run] serving calls: SIP on $sip, agent on $address. Ctrl-C to stop."
echo "[run] admin console: http://$console_listen/ (from another machine: ssh -L 8090:$console_listen this-box)"
(exec 3<>"/dev/tcp/${console_listen%:*}/${console_listen#*:}") 2>/dev/null \
    || echo "[run]   WARNING: the console is not answering yet; see state/console.log" >&2
if [ -n "$login" ]; then
    echo "[run]   $login"
else
    echo "[run]   log in with your console user; a new password: .venv/bin/python -m agent console-user passwd admin --generate"
fi
echo "[run]   more users: .venv/bin/python -m agent console-user add NAME --role viewer|admin"
wait $agent
