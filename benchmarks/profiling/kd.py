"""Timing the overhead of distillation: a KD training step against its parts.

For a :class:`~mmdiode.models.KDDetector` this measures, on one batch and in
one process:

* the KD step: ``model.train_step`` through an ``OptimWrapper`` (data
  preprocessing, the teacher's forward, the student's loss, the
  distillation losses, backward, optimizer step);
* the baseline: the same student training step without the distillation
  losses plus all of the teacher's computation without gradients, run by
  the wrapper's own :meth:`~mmdiode.models.KDDetector.forward_teacher` and
  :meth:`~mmdiode.models.KDDetector.forward_teacher_on_student` (the
  teacher's RoI head on the student's RoIs counts as teacher forward), i.e.
  the same computation minus the distillation overhead (loss terms,
  correspondence layers and their backward).

The two are timed alternately (KD, baseline, KD, baseline, ...) so that
drifts of a shared or throttling machine hit both alike. Batches are random
images with random boxes; no dataset is read.

Example::

    cfg = Config.fromfile(
        'configs/hgd/hgd_yolov3-mv2_yolov3-mv2-x0.5_24e_digits.py')
    model, _ = build_kd_model(cfg)
    batch = random_detection_batch(16, input_size_of(cfg), num_classes=10)
    timings = time_kd_overhead(model, batch, cfg.optim_wrapper, iters=20)
    print(timings.overhead_ratio)
"""
import copy
import os.path as osp
import statistics
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import torch
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmengine.config import Config, ConfigDict
from mmengine.optim import OptimWrapper, build_optim_wrapper
from mmengine.structures import InstanceData

from mmdiode.models.detectors.kd_detector import KDDetector
from mmdiode.models.utils import head_num_classes
from mmdiode.models.utils.recorder import record
from mmdiode.utils import ConfigError


@dataclass
class KDTimings:
    """Per-iteration seconds of the timed steps (warm-up excluded).

    Attributes:
        kd_step (list[float]): KD training steps.
        baseline_step (list[float]): Student training step plus teacher
            forward, timed together.
        teacher_forward (list[float]): The teacher-forward part of each
            baseline step.
    """
    kd_step: List[float] = field(default_factory=list)
    baseline_step: List[float] = field(default_factory=list)
    teacher_forward: List[float] = field(default_factory=list)

    @property
    def overhead_ratio(self) -> float:
        """Median KD step / median (student step + teacher forward)."""
        return statistics.median(self.kd_step) / statistics.median(
            self.baseline_step)

    def medians(self) -> Dict[str, float]:
        """Median seconds of the KD step, the baseline and its two parts."""
        return dict(
            kd_step=statistics.median(self.kd_step),
            student_step=statistics.median([
                b - t
                for b, t in zip(self.baseline_step, self.teacher_forward)
            ]),
            teacher_forward=statistics.median(self.teacher_forward),
            baseline_step=statistics.median(self.baseline_step))


def build_kd_model(cfg: Config) -> Tuple[KDDetector, Optional[str]]:
    """Builds a config's KDDetector for timing, in training mode.

    A teacher checkpoint given as a local path that does not exist is
    replaced by the teacher's initial weights (timing does not depend on
    the weights). ``init_weights`` is not called: it changes no shapes, and
    ``Pretrained`` init configs would download weights.

    Args:
        cfg (Config): A full config whose ``model`` is a ``KDDetector``.

    Returns:
        tuple[KDDetector, str | None]: The model and a note for the user
        when the teacher has random weights (else None).

    Raises:
        ConfigError: The config's model is not a ``KDDetector``.
    """
    model_cfg = copy.deepcopy(cfg.model)
    if model_cfg.get('type') != 'KDDetector':
        raise ConfigError(f'{cfg.filename}: the model is a '
                          f"{model_cfg.get('type')}, not a KDDetector")
    note = None
    checkpoint = model_cfg.teacher.get('checkpoint')
    if checkpoint and '://' not in checkpoint and not osp.isfile(checkpoint):
        note = (f'teacher checkpoint {checkpoint} not found: random teacher '
                'weights (fine for timing, meaningless for losses)')
        model_cfg.teacher.checkpoint = None
    return MODELS.build(model_cfg).train(), note


def input_size_of(cfg: Config) -> Tuple[int, int]:
    """The (height, width) of the config's images.

    Reads the config's ``img_scale`` (the digits configs) or else the
    ``scale`` of the first ``Resize`` in the test pipeline; mmdet writes
    scales as (width, height).

    Raises:
        ConfigError: The config names neither.
    """
    scale = cfg.get('img_scale')
    if scale is None:
        pipeline = cfg.get('test_dataloader', {}).get('dataset', {}).get(
            'pipeline', [])
        scale = next((t['scale'] for t in pipeline
                      if t.get('type') == 'Resize' and 'scale' in t), None)
    if scale is None:
        raise ConfigError(f'{cfg.filename}: no img_scale and no Resize '
                          'scale in the test pipeline to take the input '
                          'size from')
    width, height = (scale, scale) if isinstance(scale, int) else scale
    return int(height), int(width)


def random_detection_batch(batch_size: int,
                           size: Tuple[int, int],
                           num_classes: int,
                           max_boxes: int = 5,
                           seed: int = 0) -> dict:
    """A data batch as mmdet's dataloaders give it, with random content.

    Args:
        batch_size (int): Number of images.
        size (tuple[int, int]): (height, width) of every image.
        num_classes (int): Labels are drawn from ``range(num_classes)``.
        max_boxes (int): Each image gets 1 to ``max_boxes`` boxes, each side
            10-50 % of the image's, inside the image. Defaults to 5.
        seed (int): Seed of the images, boxes and labels. Defaults to 0.

    Returns:
        dict: ``inputs`` (list of uint8 (3, H, W) tensors) and
        ``data_samples`` (DetDataSamples with ``gt_instances``).
    """
    if batch_size < 1 or num_classes < 1 or max_boxes < 1:
        raise ValueError('batch_size, num_classes and max_boxes must be '
                         f'>= 1, got {batch_size}, {num_classes}, '
                         f'{max_boxes}')
    g = torch.Generator().manual_seed(seed)
    height, width = size
    extent = torch.tensor([width, height, width, height], dtype=torch.float)
    inputs, samples = [], []
    for _ in range(batch_size):
        inputs.append(
            torch.randint(0, 256, (3, height, width), generator=g,
                          dtype=torch.uint8))
        k = int(torch.randint(1, max_boxes + 1, (1, ), generator=g))
        wh = torch.rand(k, 2, generator=g) * 0.4 + 0.1
        xy = torch.rand(k, 2, generator=g) * (1 - wh)
        boxes = torch.cat([xy, xy + wh], dim=1) * extent
        sample = DetDataSample(
            metainfo=dict(
                img_shape=(height, width),
                ori_shape=(height, width),
                scale_factor=(1.0, 1.0)))
        sample.gt_instances = InstanceData(
            bboxes=boxes,
            labels=torch.randint(0, num_classes, (k, ), generator=g))
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def student_and_teacher_step(model: KDDetector, data_batch: dict,
                             optim_wrapper: OptimWrapper) -> float:
    """The baseline step: the student's training step plus the teacher.

    Mirrors mmengine's ``BaseModel.train_step`` for the student alone, with
    all of the KD step's teacher computation (no gradients) on the
    preprocessed batch: the wrapper's :meth:`~KDDetector.forward_teacher`
    and the losses' teacher parts that need the student's outputs
    (:meth:`~KDDetector.forward_teacher_on_student`, e.g. the teacher's RoI
    head on the student's RoIs). The student records the same outputs as
    in the KD step, so the recording hooks are not counted as overhead
    either; what remains between the two steps is the distillation itself.

    Args:
        model (KDDetector): The wrapper.
        data_batch (dict): A dataloader batch.
        optim_wrapper (OptimWrapper): Over the student's parameters.

    Returns:
        float: Seconds spent in the teacher's computation.
    """
    student = model.student
    with optim_wrapper.optim_context(student):
        data = student.data_preprocessor(data_batch, True)
        with record(student, model._student_names) as student_outs:
            losses = student._run_forward(data, mode='loss')
        start = time.perf_counter()
        teacher_inputs, teacher_outs, _ = model.forward_teacher(
            data['inputs'], data['data_samples'])
        model.forward_teacher_on_student(
            model.distill_context(data['inputs'], teacher_inputs,
                                  data['data_samples'], student_outs,
                                  teacher_outs))
        teacher_seconds = time.perf_counter() - start
    parsed_losses, _ = student.parse_losses(losses)
    optim_wrapper.update_params(parsed_losses)
    return teacher_seconds


def time_kd_overhead(model: KDDetector,
                     data_batch: dict,
                     optim_wrapper_cfg: dict,
                     iters: int = 20,
                     warmup: int = 3) -> KDTimings:
    """Times KD steps and baseline steps alternately on the same batch.

    Both steps train the same student (each through its own optimizer
    built from ``optim_wrapper_cfg``), so they run on the same weights and
    memory; every step gets a fresh copy of the batch, made outside the
    timing, because steps may write into the data samples.

    Args:
        model (KDDetector): The wrapper, in training mode.
        data_batch (dict): A dataloader batch (see
            :func:`random_detection_batch`).
        optim_wrapper_cfg (dict): The config's ``optim_wrapper``.
        iters (int): Timed pairs of steps. Defaults to 20.
        warmup (int): Untimed pairs first (allocator, caches). Defaults
            to 3.

    Returns:
        KDTimings: ``iters`` values per list.
    """
    if iters < 1 or warmup < 0:
        raise ValueError(f'iters must be >= 1 and warmup >= 0, got {iters} '
                         f'and {warmup}')
    kd_optim = build_optim_wrapper(model, ConfigDict(optim_wrapper_cfg))
    student_optim = build_optim_wrapper(model.student,
                                        ConfigDict(optim_wrapper_cfg))
    timings = KDTimings()
    for i in range(warmup + iters):
        batch = copy.deepcopy(data_batch)
        start = time.perf_counter()
        model.train_step(batch, kd_optim)
        kd_seconds = time.perf_counter() - start

        batch = copy.deepcopy(data_batch)
        start = time.perf_counter()
        teacher_seconds = student_and_teacher_step(model, batch,
                                                   student_optim)
        baseline_seconds = time.perf_counter() - start
        if i >= warmup:
            timings.kd_step.append(kd_seconds)
            timings.baseline_step.append(baseline_seconds)
            timings.teacher_forward.append(teacher_seconds)
    return timings


def num_classes_of(model: KDDetector) -> int:
    """The student head's class count (for random labels)."""
    num_classes = head_num_classes(model.student)
    if num_classes is None:
        raise ValueError(f'cannot tell the class count of the student '
                         f'{type(model.student).__name__}: it has neither a '
                         'bbox_head nor a roi_head.bbox_head')
    return num_classes
