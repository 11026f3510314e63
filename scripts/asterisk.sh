#!/usr/bin/env bash
# Install, configure and run the appliance's Asterisk.
#
#   scripts/asterisk.sh install   install Asterisk (distribution package, or a Debian-sid root)
#   scripts/asterisk.sh start     render asterisk-conf/ with this box's settings and start it
#   scripts/asterisk.sh stop | restart | status | reload | cli "command"
#
# Debian 12 has no asterisk package; Debian sid does. There we build a minimal
# sid root with debootstrap (about a minute, once) and run Asterisk inside it
# with chroot. Where the distribution packages Asterisk, we use that package.
# Settings (ports, generated AMI credentials) belong to the installed Asterisk, not to a
# checkout: they live in $PHONE_AGENT_HOME/asterisk.env (default /opt/phone-agent), written
# once, so a second checkout or a test run never changes the credentials running agents use.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
home="${PHONE_AGENT_HOME:-/opt/phone-agent}"
state="$here/state"
env_file="$home/asterisk.env"
root="${ASTERISK_ROOT:-$home/asterisk-root}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"

log() { printf '[asterisk] %s\n' "$*" >&2; }
die() { printf '[asterisk] error: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (Asterisk is installed system-wide)"

have_distro_package() {
    apt-cache policy asterisk 2>/dev/null | grep -q 'Candidate: [0-9]'
}

mode() {
    # "host" when the distribution's package is (or can be) installed, else "chroot".
    if [ -x /usr/sbin/asterisk ] && [ ! -e "$root/usr/sbin/asterisk" ]; then echo host
    elif [ -e "$root/usr/sbin/asterisk" ]; then echo chroot
    elif have_distro_package; then echo host
    else echo chroot
    fi
}

in_root() { if [ "$(mode)" = chroot ]; then chroot "$root" "$@"; else "$@"; fi; }

etc_dir() { if [ "$(mode)" = chroot ]; then echo "$root/etc/asterisk"; else echo "$state/asterisk-etc"; fi; }

cmd_install() {
    if [ "$(mode)" = host ]; then
        [ -x /usr/sbin/asterisk ] || { log "installing the distribution's asterisk package"; \
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q asterisk asterisk-modules >&2; }
    elif [ ! -x "$root/usr/sbin/asterisk" ]; then
        command -v debootstrap >/dev/null || { apt-get update -q >&2; DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap >&2; }
        log "building a Debian-sid root with Asterisk in $root (about a minute, once)"
        rm -rf "$root.tmp"
        mkdir -p "$(dirname "$root")" "$home"
        local started=$SECONDS
        debootstrap --variant=minbase --include=asterisk,asterisk-modules,asterisk-core-sounds-en-wav,asterisk-moh-opsound-wav \
            sid "$root.tmp" "$mirror" >"$home/debootstrap.log" 2>&1 \
            || die "debootstrap failed; see $home/debootstrap.log"
        log "Asterisk root built in $((SECONDS - started)) s"
        mv "$root.tmp" "$root"
    fi
    write_env
    log "installed: $(in_root asterisk -V) ($(mode))"
}

write_env() {
    mkdir -p "$home"
    chmod 755 "$home"
    if [ ! -f "$env_file" ] && [ -f "$state/asterisk.env" ] && [ "$home" = /opt/phone-agent ]; then
        # installs made before the settings moved out of the checkout keep their credentials
        (umask 077; cp "$state/asterisk.env" "$env_file")
        log "settings moved from $state/asterisk.env to $env_file"
    fi
    if [ ! -f "$env_file" ]; then
        umask 077
        cat >"$env_file" <<EOF
# Generated once by scripts/asterisk.sh for this box's Asterisk; edit ports here, then: scripts/asterisk.sh restart
SIP_BIND=127.0.0.1
SIP_PORT=5060
AMI_PORT=5038
HTTP_PORT=8088
RTP_START=20000
RTP_END=20999
AGENT_ADDRESS=127.0.0.1:9092
AMI_USER=agent
AMI_SECRET=$(head -c 18 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')
RECEPTION_SECRET=$(head -c 18 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')
EOF
    fi
    # keys added after the file was first written get their defaults
    grep -q '^TRUNK_ADDRESS=' "$env_file" || cat >>"$env_file" <<EOF
# the SIP trunk provider's address: the only outside host Asterisk may reach
TRUNK_ADDRESS=203.0.113.10
# staff phones that take transfers (CIDRs, comma-separated; empty: none beyond loopback)
PHONE_NETWORK=
EOF
    grep -q '^HUMAN_WAIT_S=' "$env_file" || cat >>"$env_file" <<EOF
# seconds a caller waits for a human before being offered voicemail (extensions.conf [human])
HUMAN_WAIT_S=60
EOF
    grep -q '^AGENT_MAX_S=' "$env_file" || cat >>"$env_file" <<EOF
# backstop: a call still with the agent after this many seconds goes to the humans
AGENT_MAX_S=1800
EOF
}

render() {
    # Copy the admin's files, filling @NAME@ from $PHONE_AGENT_HOME/asterisk.env.
    write_env
    local dest; dest=$(etc_dir)
    mkdir -p "$dest"
    find "$dest" -maxdepth 1 -type f -name '*.conf' -delete
    local sed_args=()
    while IFS='=' read -r key value; do
        [[ "$key" =~ ^[A-Z_]+$ ]] || continue
        sed_args+=(-e "s|@${key}@|${value}|g")
    done <"$env_file"
    # PHONE_NETWORK (CIDRs, comma-separated) extends the reception endpoint's permit list
    local phones; phones=$(grep '^PHONE_NETWORK=' "$env_file" | cut -d= -f2 | tr -d ' ')
    sed_args+=(-e "s|@PHONE_PERMIT@|${phones:+,$phones}|g")
    for file in "$here"/asterisk-conf/*.conf; do
        sed "${sed_args[@]}" "$file" >"$dest/$(basename "$file")"
    done
    if [ "$(mode)" = host ]; then
        sed -i "s|^astetcdir => .*|astetcdir => $dest|" "$dest/asterisk.conf"
    fi
    chmod 600 "$dest/manager.conf" "$dest/pjsip.conf" "$dest/voicemail.conf"
    leftover=$(grep -l '@[A-Z_]*@' "$dest"/*.conf || true)
    [ -z "$leftover" ] || die "unfilled @PLACEHOLDER@ in: $leftover"
}

running() { in_root asterisk -rx "core show version" >/dev/null 2>&1; }

cmd_start() {
    [ -e "$root/usr/sbin/asterisk" ] || [ -x /usr/sbin/asterisk ] || cmd_install
    render
    if running; then
        log "already running; reloading configuration"
        in_root asterisk -rx "core reload" >/dev/null
        return
    fi
    if [ "$(mode)" = chroot ]; then
        mkdir -p "$root/var/run/asterisk" "$root/var/log/asterisk" "$root/var/spool/asterisk" "$root/usr/share/asterisk/moh"
        [ -e "$root/dev/urandom" ] || die "$root/dev is incomplete; remove $root and run install again"
        chroot "$root" /usr/sbin/asterisk -C /etc/asterisk/asterisk.conf
    else
        /usr/sbin/asterisk -C "$(etc_dir)/asterisk.conf"
    fi
    for _ in $(seq 1 100); do
        if in_root asterisk -rx "core waitfullybooted" >/dev/null 2>&1; then
            log "running: SIP on $(grep ^SIP_BIND= "$env_file" | cut -d= -f2):$(grep ^SIP_PORT= "$env_file" | cut -d= -f2), AMI and HTTP on 127.0.0.1"
            return
        fi
        sleep 0.2
    done
    die "Asterisk did not start; see $root/var/log/asterisk/messages.log"
}

cmd_stop() {
    if running; then in_root asterisk -rx "core stop now" >/dev/null 2>&1 || true; fi
    for _ in $(seq 1 50); do running || { log "stopped"; return; }; sleep 0.1; done
    pkill -f '/usr/sbin/asterisk -C' || true
}

# only root may pose as the SIP test caller; fail2ban bans SIP password guessing (scripts/fail2ban/)
guard() { bash "$here/scripts/fail2ban/sip-guard.sh" start || log "warning: SIP guard (scripts/fail2ban/sip-guard.sh) not started"; }

case "${1:-}" in
    install) cmd_install ;;
    start) cmd_start; guard ;;
    stop) cmd_stop ;;
    restart) cmd_stop; cmd_start; guard ;;
    reload) render; in_root asterisk -rx "core reload" ;;
    status) if running; then in_root asterisk -rx "core show uptime"; else echo "not running"; exit 3; fi ;;
    cli) shift; in_root asterisk -rx "$*" ;;
    env) write_env; cat "$env_file" ;;
    *) echo "usage: $0 install|start|stop|restart|reload|status|cli CMD|env" >&2; exit 2 ;;
esac
