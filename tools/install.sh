#!/usr/bin/env bash
# One-command set-up of mmdiode's pinned OpenMMLab stack (see README "Install").
#
# Creates $VENV (default .venv) with torch 2.13.0, setuptools<81, mmcv 2.1.0
# built from its sdist with compiled ops, mmengine 0.10.7, mmdet 3.3.0,
# kornia 0.9.0, pycocotools, and mmdiode itself (editable). torchvision is never
# installed (see docs/en/get_started.md, "Why there is no torchvision").
#
# The mmcv wheel is built once (about 14 min on 2 CPU cores) and cached in
# $MMDIODE_WHEEL_CACHE (default ~/.cache/mmdiode/wheels), so later installs,
# including CI's fresh clones, take seconds.
#
# Offline: with WHEELHOUSE=DIR (a folder made by tools/make_wheelhouse.sh)
# pip reads that folder only (--no-index), mmcv is compiled from the sdist in
# it, and a torch already in $VENV is kept when the folder has none.
#
# CUDA: with CUDA=1 (or when `nvidia-smi` finds a GPU) a torch that already sits
# in $VENV and sees CUDA is kept, otherwise torch==2.13.0 from PyPI (a CUDA
# build) is installed, and mmcv's CUDA ops are compiled (FORCE_CUDA=1). Its
# cached wheel carries a "+cuda" tag so CPU and CUDA builds never mix.
set -euo pipefail

PYTHON=${PYTHON:-python3.11}
VENV=${VENV:-.venv}
CACHE=${MMDIODE_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mmdiode/wheels}
TORCH_VERSION=2.13.0
MMCV_VERSION=2.1.0
JOBS=${MAX_JOBS:-$(nproc)}

if [ -z "${CUDA:-}" ]; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then CUDA=1; else CUDA=0; fi
fi

log() { echo "[mmdiode install] $*"; }

command -v "$PYTHON" >/dev/null || { echo "error: $PYTHON not found; set PYTHON=/path/to/python3.11" >&2; exit 1; }
[ -x "$VENV/bin/python" ] || { log "creating $VENV with $PYTHON"; "$PYTHON" -m venv "$VENV"; }
PY="$VENV/bin/python"
PIP="$PY -m pip --disable-pip-version-check"
OFFLINE=()
if [ -n "${WHEELHOUSE:-}" ]; then
  [ -d "$WHEELHOUSE" ] || { echo "error: WHEELHOUSE=$WHEELHOUSE is not a folder (make one with tools/make_wheelhouse.sh)" >&2; exit 2; }
  OFFLINE=(--no-index --find-links "$(cd "$WHEELHOUSE" && pwd)")
  log "offline: installing from $WHEELHOUSE only"
fi
# A recent pip installs mmdiode editable without setup.py develop (which
# setuptools >= 80 runs as a pip of its own, without these options).
$PIP install -q "${OFFLINE[@]}" --upgrade pip

# 1. torch: keep a CUDA torch the user already has, else the pinned version.
has_cuda_torch() { $PY -c 'import torch,sys; sys.exit(0 if torch.version.cuda else 1)' >/dev/null 2>&1; }
has_torch() { $PY -c 'import torch' >/dev/null 2>&1; }
no_torch_wheel() { [ -n "${WHEELHOUSE:-}" ] && ! ls "$WHEELHOUSE"/torch-*.whl >/dev/null 2>&1; }
if { [ "$CUDA" = 1 ] && has_cuda_torch; } || { no_torch_wheel && has_torch; }; then
  log "keeping the torch already in $VENV: $($PY -c 'import torch;print(torch.__version__)')"
else
  log "installing torch==$TORCH_VERSION"
  $PIP install -q "${OFFLINE[@]}" "torch==$TORCH_VERSION"
fi

# 2. build tools mmcv's setup.py needs without build isolation.
$PIP install -q "${OFFLINE[@]}" "setuptools>=77.0.3,<81" wheel ninja

# 3. mmcv with compiled ops, built once and cached.
TAG=cpu; [ "$CUDA" = 1 ] && TAG=cuda
TORCH_TAG=$($PY -c 'import torch;print(torch.__version__.replace("+","_"))')
WHEEL_DIR="$CACHE/mmcv-$MMCV_VERSION-torch$TORCH_TAG-$TAG"
mkdir -p "$WHEEL_DIR"
if ! ls "$WHEEL_DIR"/mmcv-*.whl >/dev/null 2>&1; then
  log "building mmcv==$MMCV_VERSION with ops ($TAG, $JOBS jobs); this takes ~15 min once, then it is cached in $WHEEL_DIR"
  tmp=$(mktemp -d "$WHEEL_DIR.tmp.XXXX")
  FORCE_CUDA=$CUDA MMCV_WITH_OPS=1 MAX_JOBS=$JOBS \
    $PIP wheel "${OFFLINE[@]}" --no-deps --no-build-isolation --no-binary mmcv -w "$tmp" "mmcv==$MMCV_VERSION"
  mv "$tmp"/mmcv-*.whl "$WHEEL_DIR/"   # rename into place: a killed build leaves no half wheel
  rm -rf "$tmp"
else
  log "using cached mmcv wheel from $WHEEL_DIR"
fi
$PIP install -q "${OFFLINE[@]}" "$WHEEL_DIR"/mmcv-*.whl

# 4. the rest of the stack, then mmdiode itself (no build isolation: its
#    requirements are already satisfied, so pip never tries to rebuild mmcv).
$PIP install -q "${OFFLINE[@]}" -r requirements.txt
$PIP install -q "${OFFLINE[@]}" --no-build-isolation --no-deps -e .

# 5. guard: torchvision breaks mmdet's lazy imports with a CPU torch.
if $PY -c 'import importlib.util,sys; sys.exit(0 if importlib.util.find_spec("torchvision") else 1)'; then
  log "removing torchvision (see README: it breaks mmdet with this torch)"
  $PIP uninstall -q -y torchvision
fi
$PY -c 'import mmcv, mmcv.ops, mmdet, mmengine, kornia, torch, mmdiode; print("[mmdiode install] ok: torch", torch.__version__, "| mmcv", mmcv.__version__, "| mmdet", mmdet.__version__, "| mmengine", mmengine.__version__, "| kornia", kornia.__version__, "| cuda", torch.cuda.is_available())'
