#!/usr/bin/env bash
# Sharded synthesis with torchrun: tools/dist_synthesize.sh CONFIG GPUS --out DIR [args]
# Each rank synthesizes every GPUS-th batch; rank 0 merges and scores.
# Without CUDA the ranks are CPU processes (gloo). Restarting the same
# command continues an interrupted job.
exec bash "$(dirname "$0")/dist_launch.sh" "$2" synthesize.py "$1" "${@:3}"
