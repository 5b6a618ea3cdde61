#!/usr/bin/env bash
# Distributed testing with torchrun: tools/dist_test.sh CONFIG CKPT GPUS [args]
# Without CUDA the processes run on the CPU (gloo).
exec bash "$(dirname "$0")/dist_launch.sh" "$3" test.py "$1" "$2" "${@:4}"
