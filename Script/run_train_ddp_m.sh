#!/usr/bin/env bash
# Distributed training with torchrun (DistributedDataParallel): one process per GPU, or per
# CPU slot on a machine without GPUs (gloo backend), on one node or many.
#
#   bash Script/run_train_ddp_m.sh -n NODES -g PROCS_PER_NODE -c CPU_THREADS
#        [--master ADDR:PORT] [--node-rank R] [--max-restarts K] [--entry evaluate.py]
#        [--cfg FILE ...] [KEY VALUE ...]
#
#   -n  nodes (default 1)          -g  processes per node: GPUs, or CPU processes (default 1)
#   -c  CPU threads per process, also OMP_NUM_THREADS (default: cores / processes); the
#       original DLAC's -c (CPUs per node) was read but never used
#   DLAC's -n and -g mean the same here: nodes, and GPUs (processes) per node
#   --master ADDR:PORT   where the nodes meet (multi-node: required, the same on every node)
#   --node-rank R        fixed rank of this node (static rendezvous); without it, torchrun's
#                        c10d rendezvous assigns ranks and supports --max-restarts across nodes
#   --max-restarts K     restart the whole group up to K times after a worker fails; the
#                        restarted run resumes from last.pth (default 0)
#   --entry FILE         the script to run (default train.py; evaluate.py evaluates in shards)
# Examples:
#   one machine, 4 GPUs:   bash Script/run_train_ddp_m.sh -g 4 -c 8 EXP_TAG k400_i3d
#   laptop CPU, 2 procs:   bash Script/run_train_ddp_m.sh -g 2 -c 1
#   two nodes (run on each, same --master):
#     bash Script/run_train_ddp_m.sh -n 2 -g 8 -c 8 --master 10.0.0.1:29500 EXP_TAG big
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_python.sh"

usage() { sed -n '2,27p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2; }
nodes=1 procs=1 threads=0 master='' node_rank='' restarts=0 entry=train.py
while [ $# -gt 0 ]; do
  case "$1" in
    -n) nodes=${2:?-n needs a value}; shift 2 ;;
    -g) procs=${2:?-g needs a value}; shift 2 ;;
    -c) threads=${2:?-c needs a value}; shift 2 ;;
    --master) master=${2:?--master needs ADDR:PORT}; shift 2 ;;
    --node-rank) node_rank=${2:?--node-rank needs a value}; shift 2 ;;
    --max-restarts) restarts=${2:?--max-restarts needs a value}; shift 2 ;;
    --entry) entry=${2:?--entry needs a file}; shift 2 ;;
    -h|--help) usage ;;
    *) break ;;
  esac
done
for value in "$nodes" "$procs" "$threads" "$restarts"; do
  [[ "$value" =~ ^[0-9]+$ ]] || { echo "error: -n, -g, -c and --max-restarts take whole numbers, got '$value'" >&2; exit 2; }
done
[ "$nodes" -ge 1 ] && [ "$procs" -ge 1 ] || { echo "error: -n and -g must be at least 1" >&2; exit 2; }
if [ "$threads" -eq 0 ]; then
  threads=$(( $(nproc) / procs )); [ "$threads" -ge 1 ] || threads=1
fi
export OMP_NUM_THREADS=$threads

launch=(--nnodes "$nodes" --nproc-per-node "$procs" --max-restarts "$restarts")
if [ "$nodes" -eq 1 ] && [ -z "$master" ]; then
  launch+=(--standalone)
elif [ -z "$master" ]; then
  echo "error: $nodes nodes need --master ADDR:PORT (the same on every node)" >&2; exit 2
elif [ -n "$node_rank" ]; then
  launch+=(--node-rank "$node_rank" --master-addr "${master%:*}" --master-port "${master##*:}")
else
  launch+=(--rdzv-backend c10d --rdzv-endpoint "$master" --rdzv-id "${DLAC_RUN_ID:-dlac}")
fi
echo "[ddp] torchrun ${launch[*]} $entry (OMP_NUM_THREADS=$threads)" >&2
exec "$PY" -m torch.distributed.run "${launch[@]}" "$entry" "$@" NUM_THREADS "$threads"
