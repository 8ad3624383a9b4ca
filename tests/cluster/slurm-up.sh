#!/usr/bin/env bash
# Bring up a throwaway single-node SLURM cluster on this machine, for trying snaketune's
# SLURM profile and for tests/cluster/test_slurm.py. Needs root, Debian/Ubuntu (apt-get) and
# no systemd; starts no services through the init system.
#
#   sudo tests/cluster/slurm-up.sh          # install + start, wait until the node is idle
#   sudo tests/cluster/slurm-down.sh        # stop what slurm-up.sh started (same BASE)
#
# It installs SLURM, MUNGE, slurmdbd and MariaDB from the distribution, writes
# /etc/slurm/{slurm,gres,slurmdbd}.conf, and starts munged -> mariadbd -> slurmdbd ->
# slurmctld -> slurmd. Accounting (slurmdbd) is on, so `sacct` works as on a real cluster
# (the SLURM executor plugin queries job states with sacct by default). The node has NGPU
# fake GPUs (character devices under $BASE/fakegpu), so `--gpus=1` jobs get a GPU and a
# CUDA_VISIBLE_DEVICES, and NCPUS CPUs whatever the machine has (SlurmdParameters=
# config_overrides), so several one-core jobs run at once even on a 2-core machine.
#
# Every daemon this script starts has its pid file under $BASE/run/; slurm-down.sh stops
# exactly those. A daemon that is already running (a pid file of ours with a live process,
# or a MUNGE/MariaDB that something else started) is reused, not started twice, so running
# this script twice is harmless (a cluster that is already up is left as it is: to change
# NGPU, NCPUS or MEM_MB, run slurm-down.sh first).
#
# Environment: BASE (state, logs, pid files; default ${TMPDIR:-/tmp}/snaketune-slurm),
# NGPU (fake GPUs, default 2), NCPUS (CPUs declared, default 8 or nproc if larger), MEM_MB,
# SLURM_UP_TIMEOUT (seconds to wait for each daemon, default 60), SKIP_APT=1 (never run apt).
set -euo pipefail

BASE=${BASE:-${TMPDIR:-/tmp}/snaketune-slurm}
NGPU=${NGPU:-2}
NCPUS=${NCPUS:-$(($(nproc) > 8 ? $(nproc) : 8))}
TIMEOUT=${SLURM_UP_TIMEOUT:-60}
CLUSTER=snaketune
MARK="# written by snaketune tests/cluster/slurm-up.sh"
RUN=$BASE/run
T0=$(date +%s)

say() { echo "[slurm-up] $*"; }
die() {
  echo "[slurm-up] ERROR: $*" >&2
  exit 1
}

[ "$(id -u)" = 0 ] || die "must run as root (it installs packages and starts daemons)"

# waitfor <seconds> <command...>: retry the command every 0.25 s until it succeeds.
waitfor() {
  local n=$(($1 * 4))
  shift
  for _ in $(seq 1 "$n"); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.25
  done
  return 1
}

# alive <pidfile> [comm]: the pid file names a live process (whose name is comm, if given).
alive() {
  [ -s "$1" ] || return 1
  local pid
  pid=$(tr -dc 0-9 <"$1")
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
  [ -z "${2:-}" ] || [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$2" ]
}

HOST=$(hostname -s)
node_state() { sinfo -h -n "$HOST" -o %t 2>/dev/null; }
node_idle() { [ "$(node_state)" = idle ]; }

# ---------- already up? ----------
if alive "$RUN/slurmctld.pid" slurmctld && alive "$RUN/slurmd.pid" slurmd && node_idle; then
  say "already up (BASE=$BASE): $(sinfo -h -N -o '%N %t cpus=%c gres=%G')"
  exit 0
fi

# ---------- packages ----------
PKGS="slurmctld slurmd slurm-client munge slurmdbd mariadb-server"
missing=""
for exe in slurmctld slurmd sbatch sacct munged slurmdbd mariadbd; do
  command -v "$exe" >/dev/null 2>&1 || [ -x "/usr/sbin/$exe" ] || missing="$missing $exe"
done
if [ -n "$missing" ]; then
  [ "${SKIP_APT:-0}" != 1 ] || die "missing:$missing (and SKIP_APT=1)"
  command -v apt-get >/dev/null || die "missing:$missing, and there is no apt-get to install them"
  say "installing $PKGS (missing:$missing)"
  export DEBIAN_FRONTEND=noninteractive
  # Keep the packages' init scripts from starting daemons: this script starts them itself.
  policy_added=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && policy_added=1
  fi
  rc=0
  { apt-get update -qq && apt-get install -y -qq --no-install-recommends $PKGS >"${TMPDIR:-/tmp}/snaketune-slurm-apt.log" 2>&1; } || rc=$?
  [ "$policy_added" = 0 ] || rm -f /usr/sbin/policy-rc.d
  [ "$rc" = 0 ] || {
    tail -20 "${TMPDIR:-/tmp}/snaketune-slurm-apt.log" >&2
    die "apt-get install failed ($rc)"
  }
  say "packages installed ($(($(date +%s) - T0)) s)"
fi
PATH=/usr/sbin:/usr/bin:$PATH

# ---------- configuration ----------
mkdir -p "$BASE"/{etc,log,run,state/ctld,state/d,fakegpu}
install -d -o munge -g munge -m 0755 "$RUN/munge"   # daemons that drop root write their
install -d -o mysql -g mysql -m 0755 "$RUN/mariadb" # pid files into folders they own
# Fake GPUs: gres/gpu needs File= for each GPU, and the files must be character devices
# (with regular files the job's CUDA_VISIBLE_DEVICES stays empty). c 1 3 is /dev/null's.
for i in $(seq 0 $((NGPU - 1))); do
  f=$BASE/fakegpu/nvidia$i
  [ -c "$f" ] || {
    rm -f "$f"
    mknod -m 666 "$f" c 1 3
  }
done
# Memory declared: MEM_MB, else 90% of the RAM but at least 16 GB, so that the profile's
# requests (8 GB per trial) fit even on a small machine; memory is not a consumable
# resource here (CR_Core) and nothing enforces it, so the figure only has to be plausible.
if [ -z "${MEM_MB:-}" ]; then
  MEM_MB=$(slurmd -C | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' | head -1)
  MEM_MB=$((MEM_MB * 9 / 10))
  [ "$MEM_MB" -ge 16384 ] || MEM_MB=16384
fi

cat >"$BASE/etc/slurm.conf" <<CONF
$MARK (BASE=$BASE)
ClusterName=$CLUSTER
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
ReturnToService=2
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=$BASE/state/ctld
SlurmdSpoolDir=$BASE/state/d
SlurmctldLogFile=$BASE/log/slurmctld.log
SlurmdLogFile=$BASE/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=6819
AccountingStorageTRES=gres/gpu
# store sbatch --comment (the executor plugin puts rule and wildcards there)
AccountingStoreFlags=job_comment
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30
JobCompType=jobcomp/none
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
MinJobAge=300
KillWait=5
Waittime=0
# declare NCPUS CPUs whatever the hardware has, so that several 1-CPU jobs run at once
SlurmdParameters=config_overrides
GresTypes=gpu
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$NCPUS Boards=1 SocketsPerBoard=1 CoresPerSocket=$NCPUS ThreadsPerCore=1 RealMemory=$MEM_MB Gres=gpu:$NGPU State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
CONF

cat >"$BASE/etc/gres.conf" <<CONF
$MARK
AutoDetect=off
NodeName=$HOST Name=gpu File=$BASE/fakegpu/nvidia[0-$((NGPU - 1))]
CONF

cat >"$BASE/etc/slurmdbd.conf" <<CONF
$MARK
AuthType=auth/munge
DbdHost=localhost
DbdPort=6819
SlurmUser=root
DebugLevel=info
LogFile=$BASE/log/slurmdbd.log
PidFile=$RUN/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=snaketune
StorageLoc=slurm_acct_db
CONF

# Install the files; keep a copy of a configuration that this script did not write.
mkdir -p /etc/slurm
for f in slurm.conf gres.conf slurmdbd.conf; do
  dst=/etc/slurm/$f
  if [ -s "$dst" ] && ! grep -qF "$MARK" "$dst" && [ ! -e "$dst.snaketune-orig" ]; then
    cp -p "$dst" "$dst.snaketune-orig"
    say "kept the existing $dst as $dst.snaketune-orig"
  fi
done
install -m 644 "$BASE/etc/slurm.conf" /etc/slurm/slurm.conf
install -m 644 "$BASE/etc/gres.conf" /etc/slurm/gres.conf
install -m 600 -o root -g root "$BASE/etc/slurmdbd.conf" /etc/slurm/slurmdbd.conf

# ---------- munged ----------
if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  say "munged: already running"
else
  if [ ! -s /etc/munge/munge.key ]; then
    mkdir -p /etc/munge
    mungekey --create --keyfile=/etc/munge/munge.key 2>/dev/null ||
      dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
    chown munge:munge /etc/munge/munge.key && chmod 600 /etc/munge/munge.key
  fi
  install -d -o munge -g munge -m 0755 /run/munge
  runuser -u munge -- munged --pid-file="$RUN/munge/munged.pid"
  waitfor "$TIMEOUT" sh -c 'munge -n | unmunge' || die "munged did not come up (see /var/log/munge/munged.log)"
  say "munged: started (pid $(cat "$RUN/munge/munged.pid"))"
fi

# ---------- mariadbd ----------
if mariadb -u root -e 'select 1' >/dev/null 2>&1; then
  say "mariadbd: already running"
else
  [ -d /var/lib/mysql/mysql ] || mariadb-install-db --user=mysql --datadir=/var/lib/mysql >"$BASE/log/mariadb-install-db.log" 2>&1
  install -d -o mysql -g mysql -m 0755 /run/mysqld
  setsid mariadbd --user=mysql --bind-address=127.0.0.1 --pid-file="$RUN/mariadb/mariadbd.pid" \
    >"$BASE/log/mariadbd.log" 2>&1 </dev/null &
  waitfor "$TIMEOUT" mariadb -u root -e 'select 1' || {
    tail -20 "$BASE/log/mariadbd.log" >&2
    die "mariadbd did not come up"
  }
  say "mariadbd: started (pid $(cat "$RUN/mariadb/mariadbd.pid"))"
fi
mariadb -u root -e "CREATE DATABASE IF NOT EXISTS slurm_acct_db;
  CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'snaketune';
  GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost'; FLUSH PRIVILEGES;"

# ---------- slurmdbd ----------
if alive "$RUN/slurmdbd.pid" slurmdbd; then
  say "slurmdbd: already running"
else
  slurmdbd
  waitfor "$TIMEOUT" sacctmgr -n list cluster || {
    tail -20 "$BASE/log/slurmdbd.log" >&2
    die "slurmdbd did not come up"
  }
  say "slurmdbd: started (pid $(cat "$RUN/slurmdbd.pid"))"
fi

# ---------- slurmctld + slurmd ----------
if alive "$RUN/slurmctld.pid" slurmctld; then
  scontrol reconfigure >/dev/null 2>&1 || true
  say "slurmctld: already running"
else
  slurmctld
  waitfor "$TIMEOUT" scontrol ping || {
    tail -20 "$BASE/log/slurmctld.log" >&2
    die "slurmctld did not come up"
  }
  say "slurmctld: started (pid $(cat "$RUN/slurmctld.pid"))"
fi
if alive "$RUN/slurmd.pid" slurmd; then
  say "slurmd: already running"
else
  slurmd
  say "slurmd: started"
fi
# A node left down or drained by an earlier run is put back into service.
case "$(node_state)" in
  down* | drain* | drng*) scontrol update NodeName="$HOST" State=RESUME >/dev/null 2>&1 || true ;;
esac
if ! waitfor "$TIMEOUT" node_idle; then
  sinfo -N -o '%N %t %G %E' >&2
  tail -20 "$BASE/log/slurmctld.log" "$BASE/log/slurmd.log" >&2
  die "the node did not become idle within $TIMEOUT s"
fi

# An account for root, so that the executor plugin's account guess (via sacctmgr) succeeds.
sacctmgr -i add account "$CLUSTER" Description=snaketune Organization=snaketune >/dev/null 2>&1 || true
sacctmgr -i add user root Account="$CLUSTER" DefaultAccount="$CLUSTER" >/dev/null 2>&1 || true

say "up in $(($(date +%s) - T0)) s (BASE=$BASE): $(sinfo -h -N -o '%N %t cpus=%c mem=%m gres=%G')"
