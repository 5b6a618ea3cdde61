#!/usr/bin/env bash
# Sharded synthesis with torchrun: tools/dist_synthesize.sh CONFIG GPUS --out DIR [args]
# Each rank synthesizes every GPUS-th batch; rank 0 merges and scores.
# Without CUDA the ranks are CPU processes (gloo). Restarting the same
# command continues an interrupted job.
CONFIG=$1
GPUS=$2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}
PYTHON=${PYTHON:-python}

PYTHONPATH="$(dirname "$0")/..":${PYTHONPATH:-} \
$PYTHON -m torch.distributed.run \
    --nnodes=$NNODES --node_rank=$NODE_RANK --master_addr=$MASTER_ADDR \
    --nproc_per_node=$GPUS --master_port=$PORT \
    "$(dirname "$0")/synthesize.py" "$CONFIG" --launcher pytorch "${@:3}"
