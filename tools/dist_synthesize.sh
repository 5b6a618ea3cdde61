#!/usr/bin/env bash
# Sharded synthesis with torchrun: tools/dist_synthesize.sh CONFIG PROCS --out DIR [args]
# Each rank synthesizes every PROCS-th batch; rank 0 merges and scores.
# PROCS may exceed the GPUs: ranks then share them (round robin, gloo).
# Without CUDA the ranks are CPU processes (gloo). Restarting the same
# command continues an interrupted job.
exec bash "$(dirname "$0")/dist_launch.sh" "$2" synthesize.py "$1" "${@:3}"
