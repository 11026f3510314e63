#!/usr/bin/env bash
# The no-egress sandbox for a hand-run agent (the systemd unit adds IPAddressDeny= on top).
#   scripts/sandbox.sh apply [CONFIG_DIR]            load the nftables rules (python -m agent egress)
#   scripts/sandbox.sh run [CONFIG_DIR] -- CMD ...   apply, then run CMD inside the sandbox
#   scripts/sandbox.sh remove                        unload the rules
#   scripts/sandbox.sh check                         exit 0 if this box can sandbox (root, nft, setpriv)
# Inside the sandbox a process runs with group phone-agent and no capabilities at all (it cannot
# change its group back, load firewall rules or bind privileged ports), so every socket it opens
# is subject to the rules: loopback and the config's tools.allowed_hosts only. Asterisk's SIP/RTP
# ports reach loopback, TRUNK_ADDRESS and PHONE_NETWORK only. See docs/privacy.md.
set -euo pipefail
cd "$(dirname "$0")/.."
GROUP=phone-agent
TABLE=phone_agent_egress

ensure_group() { getent group "$GROUP" >/dev/null || groupadd --system "$GROUP"; }

check() {
    [ "$(id -u)" = 0 ] || { echo "not root: cannot load firewall rules" >&2; return 1; }
    command -v nft >/dev/null || { echo "nft is not installed (apt-get install nftables)" >&2; return 1; }
    command -v setpriv >/dev/null || { echo "setpriv is not installed (util-linux)" >&2; return 1; }
    nft list tables >/dev/null 2>&1 || { echo "nftables is not usable here" >&2; return 1; }
}

apply() {
    ensure_group
    .venv/bin/python -m agent egress --config "${1:-configs/clinic}" --apply
}

case "${1:-}" in
    apply) shift; apply "${1:-}" ;;
    remove) nft delete table inet "$TABLE" 2>/dev/null || true ;;
    check) check ;;
    run)
        shift
        config=configs/clinic
        if [ "${1:-}" != "--" ]; then config=$1; shift; fi
        [ "${1:-}" = "--" ] && shift
        check
        apply "$config"
        exec setpriv --regid "$GROUP" --clear-groups --bounding-set -all --inh-caps -all --no-new-privs -- "$@"
        ;;
    *) echo "usage: $0 apply [CONFIG]|run [CONFIG] -- CMD...|remove|check" >&2; exit 2 ;;
esac
