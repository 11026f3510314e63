#!/usr/bin/env bash
# Debian packages the appliance and its tests need on the host:
# debootstrap (Asterisk root on Debian 12), Asterisk's English prompts with
# transcripts (ASR accuracy tests), sox and espeak-ng (Korean speech for the
# Vosk test: the registry ships only a Korean Vosk model), nftables and iproute2
# (the no-egress sandbox and its test), fail2ban (bans SIP password guessing, see
# scripts/fail2ban/), chromium and chromium-driver (the admin console's browser test
# drives Debian's headless Chromium; Playwright never downloads a browser).
# PostgreSQL comes with scripts/postgres.sh.
set -euo pipefail
need=()
for pkg in debootstrap asterisk-core-sounds-en-wav sox espeak-ng nftables iproute2 fail2ban chromium chromium-driver; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
    echo "[setup] installing Debian packages: ${need[*]}" >&2
    apt-get update -q >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" >&2
fi
