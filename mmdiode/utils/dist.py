"""Starting the process group of torchrun/slurm jobs, with or without CUDA.

mmengine 0.10.7 assumes CUDA once a launcher is set: ``init_dist`` calls
``torch.cuda.set_device(LOCAL_RANK)`` and its DDP wrapper passes
``device_ids=[LOCAL_RANK]``, and both fail in CPU processes. The tools call
these helpers so that ``--launcher pytorch`` also runs on a machine without
a GPU (gloo), which is how the multi-process paths are tested here.
"""
import datetime
import gc
from typing import Optional

import torch
import torch.distributed as torch_dist
from mmengine.config import Config
from mmengine.dist import init_dist

from .cli import ConfigError


def _gloo_kwargs(dist_cfg: Optional[dict]) -> dict:
    """``init_process_group`` arguments from a config's ``dist_cfg``.

    Raises:
        ConfigError: If the config asks for a backend other than gloo (nccl
            needs CUDA).
    """
    kwargs = dict(dist_cfg or {})
    backend = kwargs.pop('backend', 'gloo')
    if backend != 'gloo':
        raise ConfigError('distributed runs without CUDA need '
                          "env_cfg.dist_cfg.backend='gloo', got "
                          f"'{backend}'")
    if 'timeout' in kwargs:  # seconds in configs, as mmengine reads it
        kwargs['timeout'] = datetime.timedelta(seconds=kwargs['timeout'])
    return kwargs


def init_dist_any_device(launcher: str,
                         dist_cfg: Optional[dict] = None) -> None:
    """Starts the process group of a launched job (no-op for ``'none'``).

    With CUDA this is mmengine's :func:`~mmengine.dist.init_dist` (one GPU
    per local rank, nccl by default); without it, a gloo group from the
    launcher's environment (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ...).

    Args:
        launcher (str): ``'none'``, ``'pytorch'``, ``'slurm'`` or ``'mpi'``.
        dist_cfg (dict, optional): The config's ``env_cfg.dist_cfg``
            (``backend``, ``timeout`` in seconds, ...).
    """
    if launcher == 'none' or torch_dist.is_initialized():
        return
    if torch.cuda.is_available():
        init_dist(launcher, **(dist_cfg or {}))
    elif launcher == 'pytorch':
        torch_dist.init_process_group(backend='gloo',
                                      **_gloo_kwargs(dist_cfg))
    else:
        raise ConfigError(f'--launcher {launcher} without CUDA is not '
                          'supported; use torchrun (--launcher pytorch)')


def destroy_dist() -> None:
    """Ends the process group, if any, while the interpreter still runs.

    A gloo group's worker threads release a finished collective's tensors
    after ``wait()`` has returned, and that takes the GIL. Left to the
    interpreter's shutdown, this can happen while Python finalizes and the
    process aborts after its work succeeded (``terminate called without an
    active exception``; seen on rank 0 in about 1 of 10 CPU runs of
    ``tools/dist_train.sh`` with torch 2.13). The group is destroyed, and its
    threads joined, only once nothing else holds it, so the garbage left by
    the caller (a Runner and its DDP wrapper) is collected first: call this
    after the objects that used the group are out of scope.
    """
    if not (torch_dist.is_available() and torch_dist.is_initialized()):
        return
    gc.collect()
    torch_dist.destroy_process_group()


def setup_cpu_distributed(cfg: Config) -> None:
    """Lets a Runner config with ``launcher='pytorch'`` run without CUDA.

    The process group starts here from torchrun's environment (mmengine then
    skips its own start) and the DDP wrapper gets no device ids, so the
    Runner wraps the CPU model. Nothing changes when CUDA is available or
    no launcher is set.

    Args:
        cfg (Config): The Runner config, modified in place
            (``model_wrapper_cfg``).
    """
    if cfg.get('launcher', 'none') != 'pytorch' or torch.cuda.is_available():
        return
    wrapper = cfg.get('model_wrapper_cfg') or dict(
        type='MMDistributedDataParallel',
        broadcast_buffers=False,
        find_unused_parameters=cfg.get('find_unused_parameters', False))
    wrapper.setdefault('device_ids', None)
    cfg.model_wrapper_cfg = wrapper
    init_dist_any_device('pytorch',
                         cfg.get('env_cfg', {}).get('dist_cfg', {}))
