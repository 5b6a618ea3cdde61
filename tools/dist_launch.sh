#!/usr/bin/env bash
# torchrun for the dist_*.sh scripts: tools/dist_launch.sh PROCS TOOL.py [args]
# Several nodes: NNODES=2 NODE_RANK=0|1 MASTER_ADDR=host; PORT, PYTHON.
PROCS=$1
TOOL=$2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}
PYTHON=${PYTHON:-python}

PYTHONPATH="$(dirname "$0")/..":${PYTHONPATH:-} \
exec $PYTHON -m torch.distributed.run \
    --nnodes=$NNODES --node_rank=$NODE_RANK --master_addr=$MASTER_ADDR \
    --nproc_per_node=$PROCS --master_port=$PORT \
    "$(dirname "$0")/$TOOL" --launcher pytorch "${@:3}"
