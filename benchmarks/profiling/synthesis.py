"""Timing of the synthesis loop against the teacher's bare loss + backward.

``overhead_ratio`` = median time of one synthesis iteration (augmentation,
BN-statistics recording, image priors, teacher ``loss()``, backward to the
pixels, Adam step, clamping) / median time of the teacher's ``loss()`` plus
the backward to the pixels on the same batch, at the same resolution. The
two are measured in alternating blocks in one process so that a noisy,
shared machine affects both alike. False-positive sampling is periodic (a
``predict()`` every ``interval`` iterations) and is left out of the ratio.
"""
import copy
import os.path as osp
import statistics
import time
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from mmdet.registry import TASK_UTILS
from torch import Tensor, nn

from mmdiode.apis import build_teacher
from mmdiode.utils.samples import make_data_samples
from .memory import current_rss_mib


def build_benchmark_teacher(
        teacher_cfg: dict, device: torch.device
) -> Tuple[nn.Module, Tuple[str, ...], Optional[str]]:
    """The teacher of a synthesis config, also where its checkpoint is not.

    A local checkpoint path that does not exist (a checkout without the
    trained teacher, or a run from another working directory) gives a
    randomly initialised teacher instead of an error: timings do not need
    trained weights. The caller says so (the third value).

    Args:
        teacher_cfg (dict): The config's ``teacher``
            (see :func:`mmdiode.apis.build_teacher`).
        device (torch.device): Where the teacher runs.

    Returns:
        tuple: The frozen teacher, its class names, and the checkpoint path
        that was missing (None when the checkpoint was loaded or none was
        configured).
    """
    teacher_cfg = dict(teacher_cfg)
    ckpt = teacher_cfg.get('checkpoint')
    missing = None
    if ckpt and '://' not in ckpt and not osp.isfile(ckpt):
        missing = ckpt
        teacher_cfg['checkpoint'] = None
    teacher, classes = build_teacher(teacher_cfg, device)
    return teacher, classes, missing


def single_stage(synthesizer_cfg: dict, size: int, iterations: int) -> dict:
    """The synthesizer config with one stage at ``size`` and no FP sampling.

    The stage keeps the learning rate and jitter of the configured stage of
    that size (or of the last stage).
    """
    cfg = copy.deepcopy(synthesizer_cfg)
    stages = cfg['stages']
    like = next((s for s in stages if s['size'] == size), stages[-1])
    cfg['stages'] = [
        dict(size=size, iterations=iterations, lr=like['lr'],
             min_lr=like.get('min_lr', 0.0), jitter=like.get('jitter', 0))
    ]
    cfg['fp_sampling'] = dict(cfg.get('fp_sampling', {}), enable=False)
    return cfg


def synthesis_iteration_times(synthesizer,
                              layouts: Sequence[Tuple[Tensor, Tensor]],
                              generator: torch.Generator,
                              skip: int) -> List[float]:
    """Seconds of each iteration of one ``synthesize`` call (after ``skip``).
    """
    stamps: List[float] = []

    def stamp(iteration, stage, losses):
        stamps.append(time.perf_counter())

    start = time.perf_counter()
    synthesizer.synthesize(layouts, generator=generator, callback=stamp)
    stamps.insert(0, start)
    times = [b - a for a, b in zip(stamps, stamps[1:])]
    return times[skip:]


def bare_loss_times(teacher, layouts: Sequence[Tuple[Tensor, Tensor]],
                    size: int, iterations: int, skip: int,
                    generator: torch.Generator) -> List[float]:
    """Seconds of ``teacher.loss()`` + backward to the pixels, repeated."""
    device = next(teacher.parameters()).device
    x = torch.randn(len(layouts), 3, size, size, generator=generator)
    x = x.to(device).requires_grad_(True)
    samples = make_data_samples([b.to(device) for b, _ in layouts],
                                [lb.to(device) for _, lb in layouts], size)
    times = []
    for _ in range(iterations + skip):
        start = time.perf_counter()
        losses = teacher.loss(x, samples)
        total = sum(
            v.mean() if isinstance(v, Tensor) else sum(t.mean() for t in v)
            for k, v in losses.items() if 'loss' in k)
        total.backward()
        x.grad = None
        times.append(time.perf_counter() - start)
    return times[skip:]


def time_overhead(teacher, synthesizer_cfg: dict,
                  layouts: Sequence[Tuple[Tensor, Tensor]], size: int,
                  rounds: int, iterations: int, warmup: int,
                  seed: int = 0) -> Dict[str, float]:
    """Median seconds per synthesis iteration and per bare teacher step.

    Args:
        teacher (nn.Module): The (frozen) teacher.
        synthesizer_cfg (dict): ``TASK_UTILS`` config without ``teacher``.
        layouts (list[tuple[Tensor, Tensor]]): One (boxes, labels) per image
            at ``size``.
        size (int): Image side.
        rounds (int): Alternating measurement blocks (synthesis, bare).
        iterations (int): Timed iterations per block.
        warmup (int): Untimed iterations at the start of each block.
        seed (int): Seed of images and augmentations.

    Returns:
        dict: ``synth_s`` and ``bare_s`` (medians), ``overhead_ratio``.
    """
    cfg = single_stage(synthesizer_cfg, size, iterations + warmup)
    synthesizer = TASK_UTILS.build(dict(cfg, teacher=teacher))
    synth, bare = [], []
    for r in range(rounds):
        gen = torch.Generator().manual_seed(seed + r)
        synth += synthesis_iteration_times(synthesizer, layouts, gen, warmup)
        bare += bare_loss_times(teacher, layouts, size, iterations, warmup,
                                gen)
    synth_s, bare_s = statistics.median(synth), statistics.median(bare)
    return dict(synth_s=synth_s, bare_s=bare_s,
                overhead_ratio=synth_s / bare_s)


def schedule_seconds(teacher, synthesizer_cfg: dict, layouts, final_size: int,
                     iterations: int = 3, warmup: int = 1) -> float:
    """Estimated seconds for one batch through the configured schedule.

    Each stage's per-iteration time is measured briefly at its resolution
    (boxes scaled from the final size) and multiplied by its length.
    """
    total = 0.0
    for stage in synthesizer_cfg['stages']:
        size = stage['size']
        size = size if isinstance(size, int) else size[0]
        scale = size / final_size
        scaled = [(b * scale, lb) for b, lb in layouts]
        cfg = single_stage(synthesizer_cfg, size, iterations + warmup)
        synthesizer = TASK_UTILS.build(dict(cfg, teacher=teacher))
        times = synthesis_iteration_times(
            synthesizer, scaled, torch.Generator().manual_seed(0), warmup)
        total += statistics.median(times) * stage['iterations']
    return total


def memory_growth(teacher, synthesizer_cfg: dict, layouts, size: int,
                  batches: int = 20, iterations: int = 3) -> List[float]:
    """Resident memory (MiB) after each of ``batches`` synthesize calls."""
    cfg = single_stage(synthesizer_cfg, size, iterations)
    synthesizer = TASK_UTILS.build(dict(cfg, teacher=teacher))
    rss = []
    for b in range(batches):
        synthesizer.synthesize(layouts,
                               generator=torch.Generator().manual_seed(b))
        rss.append(current_rss_mib())
    return rss
