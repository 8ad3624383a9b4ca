#!/usr/bin/env bash
# Stop the daemons that tests/cluster/slurm-up.sh started, by the pid files it keeps under
# $BASE/run, in reverse start order: slurmd, slurmctld, slurmdbd, mariadbd, munged.
# Daemons that slurm-up.sh found running and reused (no pid file of ours) are left alone.
# The /etc/slurm files slurm-up.sh wrote are removed (an earlier configuration it kept aside is
# put back): with a slurm.conf naming a controller that is gone, every SLURM client call, and so
# every `snakemake` start with the SLURM plugin installed, waits ~9 s for it.
# Installed packages and $BASE (logs, state) stay; pass PURGE=1 to delete $BASE.
set -uo pipefail

BASE=${BASE:-${TMPDIR:-/tmp}/snaketune-slurm}
RUN=$BASE/run

say() { echo "[slurm-down] $*"; }

# stop <name> <pidfile>: SIGTERM, wait up to 15 s, then SIGKILL.
stop() {
  local name=$1 pidfile=$2 pid
  [ -s "$pidfile" ] || return 0
  pid=$(tr -dc 0-9 <"$pidfile")
  if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then
    rm -f "$pidfile"
    return 0
  fi
  # Only a process with the expected name: a stale pid file may name a reused pid.
  if [ "$(cat "/proc/$pid/comm" 2>/dev/null)" != "$name" ]; then
    say "$name: pid $pid in $pidfile is now $(cat "/proc/$pid/comm" 2>/dev/null || echo '?'); not stopping it"
    rm -f "$pidfile"
    return 0
  fi
  local t0
  t0=$(date +%s.%N)
  kill "$pid" 2>/dev/null
  for _ in $(seq 1 60); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.25
  done
  if kill -0 "$pid" 2>/dev/null; then
    say "$name ($pid) still alive after 15 s, SIGKILL"
    kill -9 "$pid" 2>/dev/null
  fi
  rm -f "$pidfile"
  say "stopped $name ($pid) in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s"
}

if [ ! -d "$RUN" ]; then
  say "nothing to stop (no $RUN)"
  exit 0
fi
stop slurmd "$RUN/slurmd.pid"
stop slurmctld "$RUN/slurmctld.pid"
stop slurmdbd "$RUN/slurmdbd.pid"
stop mariadbd "$RUN/mariadb/mariadbd.pid"
stop munged "$RUN/munge/munged.pid"
MARK="written by snaketune tests/cluster/slurm-up.sh"
for f in slurm.conf gres.conf slurmdbd.conf; do
  dst=/etc/slurm/$f
  if [ -f "$dst" ] && grep -qF "$MARK" "$dst"; then
    rm -f "$dst"
    if [ -e "$dst.snaketune-orig" ]; then mv "$dst.snaketune-orig" "$dst"; fi
    say "removed $dst"
  fi
done
if [ "${PURGE:-0}" = 1 ]; then
  rm -rf "$BASE"
  say "removed $BASE"
fi
exit 0
