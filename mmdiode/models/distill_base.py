"""The contract between the KD detector wrapper and its distillation losses.

A distillation loss is an ``nn.Module`` registered in mmdet's ``MODELS`` that
names the student and teacher modules whose outputs it needs; the wrapper
records those outputs with forward hooks while the student's own ``loss()``
and the teacher's forward run, then calls every loss with a
:class:`DistillContext`. Losses may own trainable parameters (correspondence
or adaptation layers): the wrapper keeps them in ``distill_losses``, so the
optimizer trains them and ``tools/extract_student.py`` drops them.

Recording names are module paths as in ``model.named_modules()``
(``'backbone'``, ``'neck'``, ``'bbox_head'``, ``'backbone.layer2'``). A name
ending in ``':input'`` records the positional arguments the module was called
with instead of its output (e.g. ``'roi_head.bbox_roi_extractor:input'`` gives
``(feats, rois)``, the student's sampled RoIs).
"""
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import torch
from torch import nn


@dataclass
class DistillContext:
    """Everything a distillation loss may look at for one training step.

    Attributes:
        student_outs (dict): Recorded student outputs by recording name.
        teacher_outs (dict): Recorded teacher outputs by recording name.
        data_samples (list[DetDataSample]): The batch's samples with the
            targets the student was trained on (ground truth and/or the
            teacher's pseudo-labels) in ``gt_instances``.
        student (nn.Module): The student detector.
        teacher (nn.Module): The frozen teacher detector (eval mode).
        student_inputs (Tensor): Student-normalised images, (N, C, H, W).
        teacher_inputs (Tensor): Teacher-normalised images, (N, C, H', W').
        extra (dict): Free slot for wrapper-computed values.
    """
    student_outs: Dict[str, Any]
    teacher_outs: Dict[str, Any]
    data_samples: List[Any]
    student: Optional[nn.Module] = None
    teacher: Optional[nn.Module] = None
    student_inputs: Optional[torch.Tensor] = None
    teacher_inputs: Optional[torch.Tensor] = None
    extra: Dict[str, Any] = field(default_factory=dict)


class BaseDistillLoss(nn.Module):
    """Base class of every distillation loss.

    Subclasses set :attr:`student_modules` / :attr:`teacher_modules` (the
    recording names they read) in ``__init__`` and implement :meth:`forward`.

    Args:
        loss_weight (float): Multiplier applied to every returned term.
    """

    def __init__(self, loss_weight: float = 1.0) -> None:
        super().__init__()
        self.loss_weight = loss_weight
        self.student_modules: List[str] = []
        self.teacher_modules: List[str] = []

    def check_pair(self, student: nn.Module, teacher: nn.Module) -> None:
        """Refuses, when the wrapper is built, a pair it cannot distil.

        Called by the KD wrapper with the built student and teacher before
        their recording names are checked, so that a loss can say why a
        pair does not fit (e.g. output losses need the same head on both
        sides) and how to fix the config. Default: every pair fits.

        Args:
            student (nn.Module): The student detector.
            teacher (nn.Module): The teacher detector.

        Raises:
            ConfigError: The pair does not fit this loss.
        """

    def teacher_forward(self, ctx: DistillContext) -> None:
        """Teacher computation that needs the student's outputs.

        Called by the wrapper without gradients, after the student's
        forward and before :meth:`forward`; results go to ``ctx.extra``.
        Kept apart from :meth:`forward` so that the teacher's share of a
        step is known (``tools/benchmark.py kd`` counts it as teacher
        forward, not as distillation overhead). Default: nothing.
        """

    def forward(self, ctx: DistillContext) -> Dict[str, torch.Tensor]:
        """Returns named, weighted loss terms (keys start with ``loss_``)."""
        raise NotImplementedError
