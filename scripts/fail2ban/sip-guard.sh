#!/usr/bin/env bash
# The SIP side's guards, started with Asterisk (scripts/asterisk.sh start):
#
#  1. Test-caller identity: Asterisk treats SIP from 127.0.0.1 as the built-in test caller
#     (`selftest`), which may point the call at another agent (X-Agent-Address). An nftables
#     rule lets only root send SIP from 127.0.0.1 to Asterisk's port, so another local user
#     (the agent runs as phone-agent) cannot pose as it. Other loopback addresses never match.
#  2. fail2ban: a separate fail2ban instance (config in $PHONE_AGENT_HOME/fail2ban) reads
#     Asterisk's security log; 5 failed SIP authentications within 10 minutes from one
#     address drop that address for an hour (nftables). 127.0.0.1 is never banned.
#
#   scripts/fail2ban/sip-guard.sh start | stop | status | unban ADDRESS
set -euo pipefail

here=$(cd "$(dirname "$0")/../.." && pwd)
home="${PHONE_AGENT_HOME:-/opt/phone-agent}"
env_file="$home/asterisk.env"
root="${ASTERISK_ROOT:-$home/asterisk-root}"
dir="$home/fail2ban"
run=/run/phone-agent-fail2ban
table=phone_agent_sip_guard

log() { printf '[sip-guard] %s\n' "$*" >&2; }

setting() { grep "^$1=" "$env_file" 2>/dev/null | tail -1 | cut -d= -f2; }

security_log() {
    if [ -e "$root/usr/sbin/asterisk" ]; then echo "$root/var/log/asterisk/security.log"
    else echo /var/log/asterisk/security.log; fi
}

identity_rule() {
    command -v nft >/dev/null || { log "warning: nft not found: any local user can pose as the test caller"; return 0; }
    local port; port=$(setting SIP_PORT); port=${port:-5060}
    nft -f - <<NFT
table inet $table
delete table inet $table
table inet $table {
    chain output {
        type filter hook output priority 0; policy accept;
        oif "lo" ip saddr 127.0.0.1 meta l4proto { tcp, udp } th dport $port meta skuid != 0 counter drop comment "only root may be the SIP test caller"
    }
}
NFT
}

client() { fail2ban-client -c "$dir" -s "$run/fail2ban.sock" "$@"; }

render() {
    rm -rf "$dir.tmp"; mkdir -p "$dir.tmp" "$run"
    cp -r /etc/fail2ban/filter.d /etc/fail2ban/action.d /etc/fail2ban/fail2ban.conf /etc/fail2ban/paths-*.conf "$dir.tmp/"
    mkdir -p "$dir.tmp/jail.d" "$dir.tmp/fail2ban.d"
    local logfile; logfile=$(security_log)
    mkdir -p "$(dirname "$logfile")"; touch "$logfile"
    sed "s|@SECURITY_LOG@|$logfile|g" "$here/scripts/fail2ban/jail.conf" >"$dir.tmp/jail.conf"
    sed -e "s|@DIR@|$dir|g" -e "s|@RUN@|$run|g" "$here/scripts/fail2ban/fail2ban.local" >"$dir.tmp/fail2ban.local"
    # keep the ban database across restarts
    [ -f "$dir/fail2ban.sqlite3" ] && cp "$dir/fail2ban.sqlite3" "$dir.tmp/"
    rm -rf "$dir"; mv "$dir.tmp" "$dir"
}

cmd_start() {
    identity_rule
    if ! command -v fail2ban-client >/dev/null; then
        log "warning: fail2ban is not installed (scripts/setup-system.sh): SIP password guessing is not banned"
        return 0
    fi
    render
    # a guard already running may watch another home's log and keep another database (a reload cannot
    # change the database): restart it on the configuration just rendered; the ban database is kept
    if client ping >/dev/null 2>&1; then
        client stop >/dev/null 2>&1 || true
    fi
    client -x start >/dev/null   # -x: remove a stale socket left by a killed instance
    log "fail2ban jail phone-agent-sip watching $(security_log)"
}

cmd_stop() {
    client stop >/dev/null 2>&1 || true
    nft delete table inet "$table" 2>/dev/null || true
}

case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) client status phone-agent-sip; nft list table inet "$table" ;;
    unban) client set phone-agent-sip unbanip "$2" ;;
    *) echo "usage: $0 start|stop|status|unban ADDRESS" >&2; exit 2 ;;
esac
