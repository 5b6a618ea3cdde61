#!/usr/bin/env bash
# Collect everything tools/install.sh installs into one folder (a wheelhouse),
# for machines without network (air-gapped GPU clusters):
#
#   bash tools/make_wheelhouse.sh DIR                      # this machine
#   PYTHON_VERSION=3.12 PLATFORM=manylinux_2_28_x86_64 \
#       bash tools/make_wheelhouse.sh DIR                  # another machine
#   NO_TORCH=1 bash tools/make_wheelhouse.sh DIR           # keep its torch
#
# then, on the target, with no network:
#
#   make install WHEELHOUSE=DIR
#
# DIR gets binary wheels of the pinned stack for the target Python and
# platform (torch unless NO_TORCH=1, the build tools mmcv needs, mmengine,
# mmdet, kornia, pycocotools, the test and lint tools and their
# dependencies), and the mmcv 2.1.0 source distribution, which install.sh
# compiles there (mmcv publishes no wheels for this torch).
# A folder left by an interrupted run is completed by running it again.
set -euo pipefail

OUT=${1:?usage: bash tools/make_wheelhouse.sh DIR}
PYTHON=${PYTHON:-python3.11}
TORCH_VERSION=2.13.0
MMCV_VERSION=2.1.0
cd "$(dirname "$0")/.."

command -v "$PYTHON" >/dev/null || { echo "error: $PYTHON not found; set PYTHON=/path/to/python" >&2; exit 2; }
mkdir -p "$OUT"
PIP="$PYTHON -m pip --disable-pip-version-check"
# Another target than this interpreter: binary wheels of that target only.
TARGET=()
if [ -n "${PYTHON_VERSION:-}${PLATFORM:-}" ]; then
  TARGET=(--only-binary=:all:)
  [ -n "${PYTHON_VERSION:-}" ] && TARGET+=(--python-version "$PYTHON_VERSION")
  [ -n "${PLATFORM:-}" ] && TARGET+=(--platform "$PLATFORM")
fi
log() { echo "[mmdiode wheelhouse] $*"; }

REQS=(-r requirements.txt "setuptools>=77.0.3,<81" wheel ninja pip)
if [ "${NO_TORCH:-0}" != 1 ]; then
  REQS+=("torch==$TORCH_VERSION")
fi
log "downloading the stack into $OUT ${TARGET[*]:-}"
$PIP download -q -d "$OUT" "${TARGET[@]}" "${REQS[@]}"
# mmcv's dependencies (its sdist is built without them being resolved).
$PIP download -q -d "$OUT" "${TARGET[@]}" addict packaging Pillow pyyaml \
  yapf opencv-python
log "downloading the mmcv==$MMCV_VERSION source"
# Without build isolation: pip reads the sdist's metadata with this
# interpreter's setuptools (<81, which mmcv's setup.py needs) instead of
# a fresh one.
$PIP download -q -d "$OUT" --no-deps --no-binary :all: --no-build-isolation \
  "mmcv==$MMCV_VERSION"
log "ok: $(ls "$OUT" | wc -l) files, $(du -sh "$OUT" | cut -f1) in $OUT"
