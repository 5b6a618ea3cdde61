#!/usr/bin/env bash
# Distributed training with torchrun: tools/dist_train.sh CONFIG GPUS [args]
# Several nodes: NNODES=2 NODE_RANK=0|1 MASTER_ADDR=host tools/dist_train.sh ...
# Without CUDA the processes run on the CPU (gloo).
exec bash "$(dirname "$0")/dist_launch.sh" "$2" train.py "$1" "${@:3}"
