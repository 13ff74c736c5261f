#!/usr/bin/env bash
# A one-node Slurm on localhost for test/slurm.test.ts (CI containers: root, no systemd).
# Idempotent: when the controller answers and the node is usable it returns at once; otherwise it
# (re)writes the config and starts whichever of munged / slurmctld / slurmd is not running.
# Needs Debian's slurm-wlm (apt-get install -y slurm-wlm); installs it when apt-get is there.
set -euo pipefail
[ "$(id -u)" = 0 ] || { echo "ci-slurm-setup.sh: run as root (it starts daemons and writes /etc/slurm)" >&2; exit 1; }

node_ok() { sinfo -h -n localhost -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated|completing)'; }
if command -v scontrol >/dev/null && scontrol ping 2>/dev/null | grep -q UP && node_ok; then
  echo "slurm: already up ($(sinfo -h -o '%P %D %T' | head -1))"; exit 0
fi
if ! command -v slurmctld >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q slurm-wlm >/dev/null
fi

conf=/etc/slurm/slurm.conf
mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/munge
# SlurmUser=root: no privilege drop in a container. linuxproc + task/none: no cgroups needed.
# CPUs = this machine's cores (more than it has would mark the node INVALID).
cat >"$conf.new" <<EOF
ClusterName=bnlab
SlurmctldHost=localhost
AuthType=auth/munge
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MinJobAge=300
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$(nproc) State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
mv "$conf.new" "$conf"

# munge: the package's key if present, else a fresh one; munged runs as the munge user.
if [ ! -s /etc/munge/munge.key ]; then
  dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
fi
chown -R munge:munge /etc/munge /run/munge /var/log/munge /var/lib/munge 2>/dev/null || true
chmod 0700 /etc/munge; chmod 0400 /etc/munge/munge.key
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  pkill_pidfile() { [ -f "$1" ] && kill "$(cat "$1")" 2>/dev/null || true; }
  pkill_pidfile /run/munge/munged.pid
  runuser -u munge -- /usr/sbin/munged --force
  for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
fi

running() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
running /run/slurmctld.pid || /usr/sbin/slurmctld
running /run/slurmd.pid || /usr/sbin/slurmd -N localhost

for _ in $(seq 100); do
  if scontrol ping 2>/dev/null | grep -q UP && node_ok; then
    echo "slurm: up ($(sinfo -h -o '%P %D %T' | head -1))"; exit 0
  fi
  # A node left DOWN/DRAIN by an earlier run comes back with this.
  scontrol update NodeName=localhost State=RESUME >/dev/null 2>&1 || true
  sleep 0.2
done
echo "ci-slurm-setup.sh: Slurm did not come up; see /var/log/slurm/slurmctld.log and slurmd.log:" >&2
tail -n 20 /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log >&2 || true
sinfo >&2 || true
exit 1
