#!/usr/bin/env bash
# Start (or stop) the services autoreduce's tests need, idempotently.
# Today: MariaDB on 127.0.0.1:3306. Each daemon this script starts is recorded by PID in
# .services/ and `stop` stops only those.
set -euo pipefail
cd "$(dirname "$0")/.."
STATE_DIR=${AUTOREDUCE_SERVICES_DIR:-$PWD/.services}
mkdir -p "$STATE_DIR"

log() { printf 'services: %s\n' "$*" >&2; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for_port() {  # port, name, seconds
  local deadline=$((SECONDS + $3))
  until port_open "$1"; do
    if ((SECONDS > deadline)); then log "$2 did not open port $1 within $3 s"; return 1; fi
    sleep 0.2
  done
}

start_mariadb() {
  if port_open 3306; then log "MariaDB already answers on 3306"; return; fi
  command -v mariadbd >/dev/null || [ -x /usr/sbin/mariadbd ] || {
    log "installing MariaDB"; apt-get update -qq && apt-get install -y -qq mariadb-server >/dev/null; }
  log "starting MariaDB"
  start-stop-daemon --start --oknodo --background --make-pidfile \
    --pidfile "$STATE_DIR/mariadb.pid" --exec /usr/sbin/mariadbd
  wait_for_port 3306 MariaDB 60
}

stop_pidfile() {
  local file="$STATE_DIR/$1.pid"
  [ -f "$file" ] || return 0
  local pid; pid=$(cat "$file")
  if kill -0 "$pid" 2>/dev/null; then log "stopping $1 (pid $pid)"; kill -TERM "$pid"; fi
  rm -f "$file"
}

case "${1:-start}" in
  start) start_mariadb ;;
  stop) stop_pidfile mariadb ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
