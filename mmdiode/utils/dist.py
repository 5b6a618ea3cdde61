"""Starting the process group of torchrun/slurm jobs, with or without CUDA.

mmengine 0.10.7 assumes CUDA once a launcher is set: ``init_dist`` calls
``torch.cuda.set_device(LOCAL_RANK)`` and its DDP wrapper passes
``device_ids=[LOCAL_RANK]``, and both fail in CPU processes. The tools call
these helpers so that ``--launcher pytorch`` also runs on a machine without
a GPU (gloo), which is how the multi-process paths are tested here.

:func:`check_launch_env` refuses a launch whose environment cannot work
(``--launcher pytorch`` started without torchrun, ``LOCAL_RANK=abc``, a rank
outside the world) with one line, before torch's rendezvous fails with a
traceback or waits for peers that never come.
"""
import datetime
import gc
import os
from typing import Optional

import torch
import torch.distributed as torch_dist
from mmengine.config import Config
from mmengine.dist import init_dist

from .cli import ConfigError

#: Environment variables each launcher sets for every process.
LAUNCH_ENV = dict(
    pytorch=('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT'),
    slurm=('SLURM_PROCID', 'SLURM_NTASKS', 'SLURM_NODELIST'),
    mpi=('OMPI_COMM_WORLD_RANK', 'OMPI_COMM_WORLD_SIZE',
         'OMPI_COMM_WORLD_LOCAL_RANK'))


def _int_env(name: str, minimum: int) -> int:
    text = os.environ[name]
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or value < minimum:
        raise ConfigError(f'environment variable {name}={text!r} must be an '
                          f'integer >= {minimum}; unset it or let the '
                          'launcher (torchrun) set it')
    return value


def check_launch_env(launcher: str, share_gpus: bool = False) -> None:
    """Refuses a launcher whose environment is missing or malformed.

    ``LOCAL_RANK`` (read by mmengine even without a launcher) must be a
    non-negative integer; a launcher needs the variables it sets for each
    process (:data:`LAUNCH_ENV`), and for torchrun ``0 <= RANK <
    WORLD_SIZE``. Without CUDA only ``pytorch`` (torchrun with gloo) is
    supported. With CUDA a machine runs at most one process per GPU,
    unless ``share_gpus``.

    Args:
        launcher (str): ``'none'``, ``'pytorch'``, ``'slurm'`` or ``'mpi'``.
        share_gpus (bool): Whether several processes may share a GPU (see
            :func:`init_dist_any_device`). Defaults to False.

    Raises:
        ConfigError: Naming the variable and how to start the job.
    """
    if 'LOCAL_RANK' in os.environ:
        local_rank = _int_env('LOCAL_RANK', 0)
    if launcher == 'none':
        return
    if launcher not in LAUNCH_ENV:
        raise ConfigError(f'unknown launcher {launcher!r}; use one of '
                          f'none, {", ".join(LAUNCH_ENV)}')
    if launcher != 'pytorch' and not torch.cuda.is_available():
        raise ConfigError(f'--launcher {launcher} without CUDA is not '
                          'supported; use torchrun (--launcher pytorch)')
    missing = [k for k in LAUNCH_ENV[launcher] if k not in os.environ]
    if missing:
        starter = 'tools/dist_*.sh (torchrun)' if launcher == 'pytorch' \
            else ('srun' if launcher == 'slurm' else 'mpirun')
        raise ConfigError(
            f'--launcher {launcher} needs the environment its launcher sets '
            f'for each process ({", ".join(missing)} not set): start the '
            f'tool with {starter}, or use --launcher none for one process')
    if launcher == 'pytorch':
        rank, world = _int_env('RANK', 0), _int_env('WORLD_SIZE', 1)
        _int_env('MASTER_PORT', 1)
        if rank >= world:
            raise ConfigError(f'RANK={rank} is outside the WORLD_SIZE={world}'
                              ' processes; let torchrun set both')
    if not share_gpus and torch.cuda.is_available() and \
            'LOCAL_RANK' in os.environ and \
            local_rank >= torch.cuda.device_count():
        raise ConfigError(
            f'LOCAL_RANK={local_rank} but this machine has '
            f'{torch.cuda.device_count()} GPUs; start at most that many '
            'processes per machine')


def local_cuda_device(local_rank: int, device_count: int) -> str:
    """The GPU of a local rank when ranks may share GPUs: round robin.

    Args:
        local_rank (int): The process's rank on its machine (>= 0).
        device_count (int): GPUs of the machine (>= 1).

    Returns:
        str: e.g. ``'cuda:1'`` for local rank 5 of a 4-GPU machine.
    """
    return f'cuda:{local_rank % device_count}'


def shares_gpus() -> bool:
    """Whether torchrun started more processes on this machine than it has
    GPUs (``LOCAL_WORLD_SIZE`` > ``torch.cuda.device_count()``)."""
    return torch.cuda.is_available() and int(
        os.environ.get('LOCAL_WORLD_SIZE', 1)) > torch.cuda.device_count()


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
                         dist_cfg: Optional[dict] = None,
                         share_gpus: bool = False) -> None:
    """Starts the process group of a launched job (no-op for ``'none'``).

    With CUDA this is mmengine's :func:`~mmengine.dist.init_dist` (one GPU
    per local rank, nccl by default); without it, a gloo group from the
    launcher's environment (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ...).

    ``share_gpus`` is for jobs whose ranks only meet at barriers (sharded
    synthesis): when torchrun starts more processes than the machine has
    GPUs, they share the GPUs round robin (:func:`local_cuda_device`) in a
    gloo group, since nccl refuses two ranks on one GPU; ``LOCAL_RANK``
    is then set to the GPU's index. A small detector's
    synthesis is bound by its host-side Python (target assignment image by
    image), so several processes per GPU multiply the images per hour.

    Args:
        launcher (str): ``'none'``, ``'pytorch'``, ``'slurm'`` or ``'mpi'``.
        dist_cfg (dict, optional): The config's ``env_cfg.dist_cfg``
            (``backend``, ``timeout`` in seconds, ...).
        share_gpus (bool): Let processes share GPUs. Defaults to False.
    """
    if launcher == 'none' or torch_dist.is_initialized():
        return
    if share_gpus and launcher == 'pytorch' and shares_gpus():
        device = local_cuda_device(int(os.environ.get('LOCAL_RANK', 0)),
                                   torch.cuda.device_count())
        # mmengine's logger takes a process's GPU to be
        # CUDA_VISIBLE_DEVICES[LOCAL_RANK] and raises IndexError beyond the
        # GPU count: LOCAL_RANK becomes the shared GPU's index (the rank
        # stays in RANK).
        os.environ['LOCAL_RANK'] = device.split(':')[1]
        torch.cuda.set_device(device)
        torch_dist.init_process_group(
            backend='gloo', **_gloo_kwargs(
                {k: v for k, v in (dist_cfg or {}).items()
                 if k != 'backend'}))
    elif torch.cuda.is_available():
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
