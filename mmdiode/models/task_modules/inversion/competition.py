"""Adaptive DeepInversion's competition term, for detectors.

Adaptive DeepInversion (Yin et al., "Dreaming to Distill", CVPR 2020, the
classification method DIODE builds on) adds to the inversion loss a term
that *rewards* disagreement between the teacher and the student being
trained: images drift towards what the student has not learnt yet, while
the task loss and the priors keep them images of the targets. It needs the
student, so it exists only where synthesis runs beside the training: the
on-the-fly ``DeepInversionHook`` attaches the student; ``tools/synthesize.py``
has none and refuses the option.

Decisions:

- The disagreement is a registered distillation loss (a
  :class:`~mmdiode.models.distill_base.BaseDistillLoss`), configured
  separately from the training's own: the losses declare what they record,
  so the term needs no detector-specific code, and a bounded divergence
  (e.g. ``YOLOv3OutputKDLoss`` without its box term: KL of sigmoid scores)
  can drive the images where the training uses another one (raw-map MSE,
  whose maximum is an arbitrary difference of background logits).
- The teacher's recorded outputs come from the forward of its own
  ``loss()`` that each synthesis step runs anyway (no second teacher
  forward). For losses that compare what both networks' modules output
  (the dense-head output losses ``OutputMSELoss`` and
  ``YOLOv3OutputKDLoss``) the gradient reaches the pixels through both
  networks, as in the original method. Losses that run part of the teacher
  themselves (``teacher_forward``: the RoI-head and dense-head KD losses of
  two-stage pairs) see that part without gradient, as in training, so
  their term moves the pixels through the student (and the recorded
  teacher modules) only; and a teacher whose ``loss()`` computes other
  outputs than its plain forward (DETR-style denoising queries) records
  those.
- The student runs in eval mode with frozen parameters while a batch is
  synthesized (its BatchNorm running statistics and gradients are those of
  training alone), restored afterwards.
"""
import contextlib
from typing import Dict, Iterator, List, Optional

import torch
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from torch import Tensor, nn

from mmdiode.models.distill_base import BaseDistillLoss, DistillContext
from mmdiode.models.utils.recorder import check_recording_names, record
from mmdiode.models.utils.teacher_input import (PixelNormalisation,
                                                map_to_teacher_inputs,
                                                teacher_data_samples)


class StudentCompetition:
    """The competition term of a synthesis step, ``-weight * D(T, S)``.

    ``D`` is the configured distillation loss between the teacher's and the
    student's outputs on the step's (augmented) images, summed over its
    terms; it is logged as ``loss_compete`` and subtracted, times
    ``weight``, from the step's total loss.

    Args:
        weight (float): Multiplier of the term; 0 switches it off (nothing
            of it runs). Defaults to 0.0.
        loss (dict, optional): ``MODELS`` config of the divergence, a
            :class:`BaseDistillLoss` (e.g. ``dict(type='YOLOv3OutputKDLoss',
            box_weight=0.0)``). Required when ``weight > 0``. Defaults to
            None.
    """

    def __init__(self, weight: float = 0.0,
                 loss: Optional[dict] = None) -> None:
        if weight < 0:
            raise ValueError(f'competition: weight must be >= 0, got '
                             f'{weight}')
        if weight > 0 and loss is None:
            raise ValueError(
                "competition: weight > 0 needs loss, the divergence between "
                "teacher and student (e.g. loss=dict(type="
                "'YOLOv3OutputKDLoss', box_weight=0.0))")
        self.weight = float(weight)
        self.divergence: Optional[BaseDistillLoss] = None
        if loss is not None:
            self.divergence = MODELS.build(loss)
            if not isinstance(self.divergence, BaseDistillLoss):
                raise TypeError(
                    f'competition: loss ({type(self.divergence).__name__}) '
                    'is not a BaseDistillLoss')
        self.student: Optional[nn.Module] = None
        self._student_space: Optional[PixelNormalisation] = None
        self._teacher_space: Optional[PixelNormalisation] = None

    @property
    def enabled(self) -> bool:
        """Whether the term is part of the loss."""
        return self.weight > 0

    def attach(self, student: nn.Module, teacher: nn.Module) -> None:
        """Gives the term the student it competes with.

        Args:
            student (nn.Module): The student detector being trained.
            teacher (nn.Module): The synthesizer's teacher.

        Raises:
            ConfigError: The divergence cannot compare this pair (its
                ``check_pair``).
            ValueError: The term is off (no divergence to attach), or the
                divergence names modules the models lack.
        """
        if self.divergence is None:
            raise ValueError('competition: no loss to compete with; set '
                             'competition.loss (and a weight > 0)')
        self.divergence.check_pair(student, teacher)
        check_recording_names(student, self.divergence.student_modules,
                              'student')
        check_recording_names(teacher, self.divergence.teacher_modules,
                              'teacher')
        self.student = student
        self._student_space = PixelNormalisation.of(student.data_preprocessor)
        self._teacher_space = PixelNormalisation.of(teacher.data_preprocessor)

    def check_ready(self) -> None:
        """Raises ``ValueError`` when the term is on without a student."""
        if self.enabled and self.student is None:
            raise ValueError(
                'competition: weight > 0 needs the student being trained, '
                'which only DeepInversionHook (synthesis during '
                'distillation) gives; set competition.weight=0 for '
                'tools/synthesize.py')

    @contextlib.contextmanager
    def recording(self, teacher: nn.Module) -> Iterator[Dict]:
        """Records the teacher modules the divergence reads during the
        block (the step's ``teacher.loss()``); nothing when off.

        Args:
            teacher (nn.Module): The synthesizer's teacher.

        Yields:
            dict: Recording name -> output, filled in as the block runs
            (empty when the term is off).
        """
        if not self.enabled:
            yield {}
            return
        with record(teacher, self.divergence.teacher_modules) as outs:
            yield outs

    @contextlib.contextmanager
    def frozen_student(self) -> Iterator[None]:
        """The student in eval mode without parameter gradients for the
        block (a synthesized batch), restored after it; nothing when off.

        Yields:
            None
        """
        if not self.enabled:
            yield
            return
        student = self.student
        was_training = student.training
        grad_flags = [(p, p.requires_grad) for p in student.parameters()]
        student.eval()
        student.requires_grad_(False)
        try:
            yield
        finally:
            for p, flag in grad_flags:
                p.requires_grad_(flag)
            student.train(was_training)

    def disagreement(self, teacher: nn.Module, teacher_inputs: Tensor,
                     samples: List[DetDataSample],
                     teacher_outs: Dict) -> Tensor:
        """``D(T, S)`` on the step's images, differentiable in the pixels.

        Args:
            teacher (nn.Module): The teacher whose outputs were recorded.
            teacher_inputs (Tensor): The step's images in the teacher's
                model space, (N, C, H, W).
            samples (list[DetDataSample]): Their samples (metainfo).
            teacher_outs (dict): What :meth:`recording` recorded.

        Returns:
            Tensor: 0-dim, the sum of the divergence's terms.
        """
        # The mapping between two normalisations works either way round
        # (both read once, in attach(): not per synthesis step).
        student_inputs = map_to_teacher_inputs(teacher_inputs, samples,
                                               self._teacher_space,
                                               self._student_space)
        # The student's batch geometry (its own padding divisor).
        student_samples = teacher_data_samples(
            samples, student_inputs, self._student_space.pad_size_divisor)
        with record(self.student,
                    self.divergence.student_modules) as student_outs:
            self.student._forward(student_inputs, student_samples)
        ctx = DistillContext(
            student_outs=student_outs,
            teacher_outs=teacher_outs,
            data_samples=samples,
            student=self.student,
            teacher=teacher,
            student_inputs=student_inputs,
            teacher_inputs=teacher_inputs)
        with torch.no_grad():
            self.divergence.teacher_forward(ctx)
        return sum(self.divergence(ctx).values())
