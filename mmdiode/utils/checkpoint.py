"""Loading Runner checkpoints on torch >= 2.6 without trusting any pickle.

torch >= 2.6 loads with ``weights_only=True`` by default, and mmengine 0.10.7
calls ``torch.load`` without changing that. A Runner checkpoint carries
mmengine's ``message_hub`` (``HistoryBuffer`` objects holding numpy arrays),
so it fails with ``Unsupported global: ...HistoryBuffer``.

Decision: keep torch's safe loader and allow-list exactly the classes that
mmengine and mmdet put into their own checkpoints (``HistoryBuffer`` and the
builtin ``getattr`` it pickles its methods with, numpy arrays, dtypes and
scalars). Any other global in a pickle is still refused by
torch, so an untrusted checkpoint cannot run code on load. We never set
``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD``. Importing :mod:`mmdiode` registers the
allow-list, so mmdet's own tools work too once a config has
``custom_imports=dict(imports=['mmdiode'])``.
"""
import os.path as osp
import re
from typing import Any, Dict, List, Mapping

import numpy as np
import torch
from torch import nn

from .fileio import atomic_open


def _numpy_globals() -> List[Any]:
    """numpy classes and functions that pickled arrays and scalars refer to."""
    try:  # numpy >= 2
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # numpy 1.x
        from numpy.core.multiarray import _reconstruct, scalar
    dtype_classes = [
        type(np.dtype(t)) for t in (np.float16, np.float32, np.float64,
                                    np.int8, np.int16, np.int32, np.int64,
                                    np.uint8, np.bool_)
    ]
    return [_reconstruct, scalar, np.ndarray, np.dtype] + dtype_classes


def register_safe_globals() -> None:
    """Allow-lists the classes found in mmengine/mmdet Runner checkpoints."""
    if not hasattr(torch.serialization, 'add_safe_globals'):
        return  # torch < 2.4 loads everything anyway
    from mmengine.logging.history_buffer import HistoryBuffer

    # HistoryBuffer pickles its statistics methods as
    # ``getattr(HistoryBuffer, 'min')``. Allowing ``getattr`` only lets the
    # loader look attributes up: torch's safe unpickler still refuses to call
    # any function that is not itself on the allow-list.
    torch.serialization.add_safe_globals([HistoryBuffer, getattr] +
                                         _numpy_globals())


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, corrupt or holds unexpected content."""


def load_checkpoint_file(path: str, map_location: str = 'cpu') -> dict:
    """Loads a checkpoint with torch's safe loader and explains failures.

    Args:
        path (str): Local checkpoint path.
        map_location (str): Where tensors go.

    Returns:
        dict: The checkpoint (with a ``state_dict`` key, or a bare state
        dict).

    Raises:
        CheckpointError: The file does not exist, is truncated or corrupt,
            or holds objects outside the safe allow-list.
    """
    if not osp.isfile(path):
        raise CheckpointError(f'checkpoint not found: {path}')
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises several types for a bad file
        raise CheckpointError(
            f'cannot load checkpoint {path}: {why_unloadable(e)}') from e
    if not isinstance(ckpt, dict):
        raise CheckpointError(
            f'checkpoint {path} holds a {type(ckpt).__name__}, not a dict')
    return ckpt


def strip_module_prefix(state_dict: Mapping[str, Any]) -> Dict[str, Any]:
    """Keys without DDP's ``module.`` prefix (as mmengine's loader does)."""
    return {(k[len('module.'):] if k.startswith('module.') else k): v
            for k, v in state_dict.items()}


def check_checkpoint_fits(model: nn.Module,
                          state_dict: Mapping[str, Any],
                          source: str,
                          min_fraction: float = 1.0,
                          hint: str = '') -> int:
    """Refuses a checkpoint that leaves the model (partly) unloaded.

    mmengine's loader only warns about missing keys and shape mismatches,
    so a checkpoint of another model loads "successfully" and a random
    detector is evaluated or fine-tuned. This counts the model's tensors
    (parameters and buffers) that the checkpoint gives with the same shape.

    Args:
        model (nn.Module): The built model (unwrapped from DDP).
        state_dict (Mapping): The checkpoint's state dict.
        source (str): How to name the checkpoint in the message.
        min_fraction (float): Least share of the model's tensors that must
            load, in (0, 1]. Defaults to 1.0 (all of them).
        hint (str): Appended to the message (how to load a part on
            purpose). Defaults to ''.

    Returns:
        int: How many of the model's tensors the checkpoint fits.

    Raises:
        CheckpointError: Fewer than ``min_fraction`` of them fit.
    """
    state_dict = strip_module_prefix(state_dict)
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    reshaped = [
        k for k in expected if k in state_dict
        and tuple(getattr(state_dict[k], 'shape', ())) != tuple(
            expected[k].shape)
    ]
    fitting = len(expected) - len(missing) - len(reshaped)
    if fitting >= min_fraction * len(expected):
        return fitting
    unexpected = sum(k not in expected for k in state_dict)
    first = (missing + reshaped)[0]
    raise CheckpointError(
        f'{source} fits {fitting} of the model\'s {len(expected)} tensors '
        f'({len(missing)} missing, {len(reshaped)} of another shape, '
        f'{unexpected} keys the model does not have; first: {first!r}): it '
        f'is a checkpoint of another model or config{hint}')


def why_unloadable(error: Exception) -> str:
    """What is wrong with a file that ``torch.load(weights_only=True)``
    refused, in one line (torch's own message is many lines about its
    defaults)."""
    text = str(error)
    blocked = re.search(r'(?:unsupported GLOBAL|Unsupported global: GLOBAL)'
                        r' ([\w.]+)', text)
    if blocked:
        return (f'it refers to {blocked.group(1)}, which a checkpoint may not '
                'hold (refused: loading it could run code; only tensors, '
                'numbers and mmengine\'s own log buffers are allowed)')
    if 'Weights only load failed' in text or isinstance(
            error, (EOFError, RuntimeError, OSError)) or 'pickle' in type(
                error).__module__:
        return ('not a torch checkpoint, or a truncated or corrupt one '
                f'({type(error).__name__})')
    first = text.splitlines()[0] if text else ''
    return f'{type(error).__name__}: {first}'


def save_checkpoint_atomic(checkpoint: dict, path: str) -> None:
    """``torch.save`` to a temporary file beside ``path``, then a rename:
    an interrupted save never leaves a partial checkpoint behind."""
    with atomic_open(path) as f:
        torch.save(checkpoint, f)
