#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: installs the real peers the tests talk to
# (rsyslog with its TLS and RELP modules), makes sure PostgreSQL is running on
# 127.0.0.1:5432, then runs every test of the workspace.
#
# Usage: deploy/test.sh [extra cargo test arguments]   (as root, or with sudo available)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

packages=(rsyslog rsyslog-gnutls rsyslog-relp chromium)
# The PostgreSQL tests need a server on 127.0.0.1:5432 that trusts local connections.
command -v pg_ctlcluster >/dev/null || packages+=(postgresql)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing ${missing[*]}"
  as_root apt-get update -q
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
# The tests start their own rsyslogd instances; the distribution's service is not needed.

# A server installed just now trusts local connections only through its socket: the tests
# connect to 127.0.0.1 as postgres without a password (a throwaway test machine).
if [[ " ${missing[*]} " == *" postgresql "* ]]; then
  for hba in /etc/postgresql/*/main/pg_hba.conf; do
    as_root sed -i '1i host all all 127.0.0.1/32 trust' "$hba"
  done
fi

if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  echo "starting PostgreSQL"
  for version in /etc/postgresql/*; do
    as_root pg_ctlcluster --skip-systemctl-redirect "$(basename "$version")" main start || true
  done
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  echo "PostgreSQL is not answering on 127.0.0.1:5432: the PostgreSQL tests need it" >&2
  exit 1
fi

cargo test --workspace "$@"
