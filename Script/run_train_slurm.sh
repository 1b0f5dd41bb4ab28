#!/usr/bin/env bash
# Training on a SLURM cluster, surviving time limits and pre-emption. Submit it from the
# repository root, or run it with bash inside an allocation (salloc):
#
#   sbatch [SBATCH OPTIONS] Script/run_train_slurm.sh [-g PROCS_PER_NODE] [-c CPU_THREADS]
#          [--port P] [--max-restarts K] [--entry evaluate.py] [--cfg FILE ...] [KEY VALUE ...]
#
#   -g  processes per node: GPUs, or CPU processes (gloo) on a CPU-only allocation
#       (default: the GPUs SLURM gave each node, else 1)
#   -c  CPU threads per process (default: --cpus-per-task / processes)
#   --port P  the rendezvous port on the first node (default 10000 + job id % 20000)
#   --max-restarts, --entry, --cfg and KEY VALUE as for run_train_ddp_m.sh; the nodes and
#   each node's rank come from SLURM
#
# One srun task per node runs torchrun (--nnodes $SLURM_NNODES --node-rank $SLURM_NODEID), all
# meeting on the first host of the allocation. SLURM's warning, USR1 to this script 120 s
# before the time limit or a pre-emption (--signal=B:USR1@120), is passed to every training
# process: each finishes its step, rank 0 saves last.pth, they exit, and the job puts itself
# back in the queue (scontrol requeue); the requeued job resumes from last.pth. SIGTERM keeps
# its meaning: save at a step boundary and exit, without requeueing.
#
# The #SBATCH lines below are the defaults: edit them, or override them on sbatch's command
# line (sbatch -N 4 --gpus-per-node=8 Script/run_train_slurm.sh -g 8 EXP_TAG k400).
# Nodes:
#SBATCH --nodes=1
# One task per node: torchrun, which starts -g processes:
#SBATCH --ntasks-per-node=1
# GPUs per node (remove this line on a CPU-only partition):
#SBATCH --gpus-per-node=4
# CPU cores per node, shared by the processes and their loader workers:
#SBATCH --cpus-per-task=32
# The time limit; the warning comes 120 s before it:
#SBATCH --time=24:00:00
# USR1 to this script only (B:), 120 s before the end; it relays it to the processes:
#SBATCH --signal=B:USR1@120
# The job may put itself back in the queue, and its next attempt appends to the same log:
#SBATCH --requeue
#SBATCH --open-mode=append
#SBATCH --job-name=dlac
#SBATCH --output=slurm-%x-%j.out
set -uo pipefail

usage() { sed -n '2,23p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2; }

wait_for() {    # wait for process $1 through the signals the traps take; its exit status
  local status
  while true; do
    wait "$1"; status=$?
    kill -0 "$1" 2>/dev/null || return "$status"
  done
}

# sbatch runs a copy of this script from its spool folder: the repository is where it was
# submitted from.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if [ -f "$here/run_train_ddp_m.sh" ]; then
  repo=$(dirname "$here")
elif [ -f "${SLURM_SUBMIT_DIR:-/nonexistent}/Script/run_train_ddp_m.sh" ]; then
  repo=$SLURM_SUBMIT_DIR
else
  echo "error: the DLAC repository is not found: submit from its root" \
       "(cd DLAC && sbatch Script/run_train_slurm.sh ...)" >&2
  exit 2
fi

if [ "${1:-}" = --node ]; then
  # One node's task. torchrun starts with USR1 ignored (its agent would die of it); the
  # training processes install their own handler (utils/stopping.py), and this shell passes
  # USR1 on to them in case the cluster's process tracking does not reach them.
  shift
  ( trap '' USR1; exec bash "$repo/Script/run_train_ddp_m.sh" --node-rank "${SLURM_NODEID:?}" "$@" ) &
  agent=$!
  trap 'pkill -USR1 -P "$agent" || true' USR1
  trap ':' TERM       # torchrun passes SIGTERM on and waits for its processes to save: so do we
  wait_for "$agent"
  exit $?
fi

procs='' threads='' port='' restarts=0 entry=train.py
while [ $# -gt 0 ]; do
  case "$1" in
    -g) procs=${2:?-g needs a value}; shift 2 ;;
    -c) threads=${2:?-c needs a value}; shift 2 ;;
    --port) port=${2:?--port needs a value}; shift 2 ;;
    --max-restarts) restarts=${2:?--max-restarts needs a value}; shift 2 ;;
    --entry) entry=${2:?--entry needs a file}; shift 2 ;;
    -n|--master|--node-rank)
      echo "error: $1: the nodes, their ranks and the rendezvous come from SLURM" \
           "(#SBATCH --nodes, or sbatch -N)" >&2; exit 2 ;;
    -h|--help) usage ;;
    *) break ;;
  esac
done
if [ -z "${SLURM_JOB_ID:-}" ]; then
  echo "error: not inside a SLURM job: submit with 'sbatch Script/run_train_slurm.sh ...' or run" \
       "with bash inside 'salloc'; without SLURM use Script/run_train_ddp_m.sh" >&2
  exit 2
fi
procs=${procs:-${SLURM_GPUS_ON_NODE:-1}}
[ "$procs" != 0 ] || procs=1
port=${port:-$((10000 + SLURM_JOB_ID % 20000))}
if [ -z "$threads" ] && [ -n "${SLURM_CPUS_PER_TASK:-}" ]; then
  threads=$(( SLURM_CPUS_PER_TASK / procs )); [ "$threads" -ge 1 ] || threads=1
fi
for value in "$procs" "${threads:-1}" "$port" "$restarts"; do
  [[ "$value" =~ ^[0-9]+$ ]] || { echo "error: -g, -c, --port and --max-restarts take whole numbers, got '$value'" >&2; exit 2; }
done
nodes=${SLURM_NNODES:-${SLURM_JOB_NUM_NODES:-1}}
first=$(scontrol show hostnames "${SLURM_JOB_NODELIST:?}" | head -n 1)
[ -n "$first" ] || { echo "error: scontrol show hostnames '$SLURM_JOB_NODELIST' named no host" >&2; exit 2; }

ddp=(-n "$nodes" -g "$procs" --master "$first:$port" --max-restarts "$restarts" --entry "$entry")
[ -z "$threads" ] || ddp+=(-c "$threads")
step=(--nodes="$nodes" --ntasks="$nodes" --ntasks-per-node=1 --kill-on-bad-exit=1)
# srun does not take --cpus-per-task from sbatch's options (SLURM 22.05 and later): pass it on
[ -z "${SLURM_CPUS_PER_TASK:-}" ] || step+=(--cpus-per-task="$SLURM_CPUS_PER_TASK")
echo "[slurm] job $SLURM_JOB_ID, attempt $(( ${SLURM_RESTART_COUNT:-0} + 1 )): $nodes node(s) x" \
     "$procs process(es), rendezvous on $first:$port" >&2

warned=0
relay_warning() {
  warned=1
  echo "[slurm] USR1: the time limit or a pre-emption is near; every process finishes its step," \
       "rank 0 saves last.pth, then the job is requeued" >&2
  scancel --signal=USR1 "$SLURM_JOB_ID" || echo "[slurm] scancel --signal=USR1 failed" >&2
}
trap relay_warning USR1
trap ':' TERM           # the processes save on SIGTERM too: wait for them

cd "$repo"
srun "${step[@]}" bash "$repo/Script/run_train_slurm.sh" --node "${ddp[@]}" "$@" &
wait_for $!
status=$?
if [ "$warned" = 1 ]; then
  if scontrol requeue "$SLURM_JOB_ID"; then
    echo "[slurm] job $SLURM_JOB_ID requeued: its next attempt resumes from last.pth" >&2
    exit 0
  fi
  echo "[slurm] job $SLURM_JOB_ID could not be requeued (an interactive allocation, or" \
       "--no-requeue): run the same command again to resume from last.pth" >&2
  exit 1
fi
exit "$status"
