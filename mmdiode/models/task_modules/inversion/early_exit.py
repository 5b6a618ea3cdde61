"""Early exit from a synthesis stage once its batch is "done".

Synthesis costs teacher passes: every stage of :class:`DeepInversion` runs
its full ``iterations`` for every batch. A batch whose targets the teacher
already detects, and whose BatchNorm-statistics prior has stopped falling,
gains little from the rest of a stage; :class:`EarlyExit` tells when to
leave it.

Decisions (the engine, ``deep_inversion.py``, applies them):

- **When.** Only in the listed stages, after ``min_iterations`` iterations
  of the stage, then every ``check_interval`` iterations (counted within the
  stage; :meth:`EarlyExit.is_due`). No check after a stage's last
  iteration: the stage ends there anyway.
- **Cheap condition first.** The BN plateau is tested first (a mean over a
  few recorded losses); the teacher's ``predict()``, about the cost of one
  iteration's forward pass, runs only when the plateau holds.
- **Plateau.** The stage's ``loss_bn`` (unweighted) of its last
  ``2 * bn_window`` iterations: the mean of the last ``bn_window`` must not
  be lower than the mean of the ``bn_window`` before by more than
  ``bn_tol`` times the earlier mean's magnitude. Fewer recorded values, or a
  non-finite one, is no plateau. The history is per stage (the loss changes
  with the resolution) and starts afresh after a restart (re-initialised
  images). A stage that does not weigh the BN prior (``bn_weight`` 0, or
  Multi-Object Impressions) has no plateau to wait for: the condition holds.
- **Targets found.** ``predict()`` on the current, un-augmented images (no
  gradient, the BN prior's recording off, eval mode) as
  :class:`FalsePositiveSampler` calls it. A target box counts as found when
  a prediction of its image has the same label, a score >= ``score_thr``
  and an IoU >= ``iou_thr`` with it; one prediction may find several
  targets (no one-to-one assignment). The targets are the current ones,
  false-positive-sampled ones included (the boxes that will be written).
  The fraction is over the whole batch (found boxes / target boxes; 1.0
  for a batch without targets) and must be >= ``found_frac``.
- **Determinism.** The check draws no random number and changes neither
  the images nor the optimiser state, so a seeded run stays reproducible,
  and with the option disabled nothing of the above runs.
"""
from typing import List, Optional, Sequence, Union

import torch
from mmdet.structures.bbox import bbox_overlaps
from mmengine.structures import InstanceData
from torch import Tensor, nn

from mmdiode.utils.defaults import init_defaults
from .fp_sampling import predict_instances


class EarlyExit:
    """When a batch may leave a synthesis stage before its last iteration.

    Args:
        enable (bool): Whether to exit early at all. Defaults to False.
        stages (Sequence[int], optional): Indices of the stages that may be
            left early. Defaults to None (every stage).
        min_iterations (int): Iterations of a stage before its first check.
            Defaults to 20.
        check_interval (int): Iterations between checks. Defaults to 10.
        score_thr (float): Smallest score of a prediction that finds a
            target. Defaults to 0.3.
        iou_thr (float): Smallest IoU of a prediction with the target it
            finds. Defaults to 0.5.
        found_frac (float): Fraction of the batch's target boxes the teacher
            must find, in [0, 1]. Defaults to 0.9.
        bn_window (int): Iterations per window of the BN plateau test.
            Defaults to 10.
        bn_tol (float): Largest relative fall of the BN prior between the two
            windows that is still a plateau. Defaults to 0.02.
    """

    def __init__(self,
                 enable: bool = False,
                 stages: Optional[Sequence[int]] = None,
                 min_iterations: int = 20,
                 check_interval: int = 10,
                 score_thr: float = 0.3,
                 iou_thr: float = 0.5,
                 found_frac: float = 0.9,
                 bn_window: int = 10,
                 bn_tol: float = 0.02) -> None:
        if not isinstance(enable, bool):
            raise ValueError('early_exit: enable must be True or False, got '
                             f'{enable!r}')
        if stages is not None:
            if not isinstance(stages, (list, tuple)) or not all(
                    _is_int(s) and s >= 0 for s in stages):
                raise ValueError(
                    'early_exit: stages must be None (every stage) or a list '
                    f'of stage indices (ints >= 0), got {stages!r}')
            stages = tuple(int(s) for s in stages)
        for key, value, low in (('min_iterations', min_iterations, 0),
                                ('check_interval', check_interval, 1),
                                ('bn_window', bn_window, 1)):
            if not _is_int(value) or value < low:
                raise ValueError(f'early_exit: {key} must be an int >= {low}'
                                 f', got {value!r}')
        for key, value, closed_low in (('score_thr', score_thr, True),
                                       ('iou_thr', iou_thr, False),
                                       ('found_frac', found_frac, True)):
            low_ok = (value >= 0) if closed_low else (value > 0)
            if not (_is_number(value) and low_ok and value <= 1):
                interval = '[0, 1]' if closed_low else '(0, 1]'
                raise ValueError(
                    f'early_exit: {key} must be a number in {interval}, got '
                    f'{value!r}')
        if not _is_number(bn_tol) or bn_tol < 0:
            raise ValueError('early_exit: bn_tol must be a number >= 0 (a '
                             f'relative fall), got {bn_tol!r}')
        self.enable = enable
        self.stages = stages
        self.min_iterations = int(min_iterations)
        self.check_interval = int(check_interval)
        self.score_thr = float(score_thr)
        self.iou_thr = float(iou_thr)
        self.found_frac = float(found_frac)
        self.bn_window = int(bn_window)
        self.bn_tol = float(bn_tol)

    def applies_to(self, stage: int) -> bool:
        """Whether the stage of this index may be left early."""
        return self.enable and (self.stages is None or stage in self.stages)

    def is_due(self, step: int) -> bool:
        """Whether to check after the ``step``-th (0-based) iteration of a
        stage, i.e. once ``step + 1`` iterations of it have run."""
        done = step + 1
        return (done >= self.min_iterations
                and (done - self.min_iterations) % self.check_interval == 0)

    def bn_plateaued(self, history: Sequence[Union[Tensor, float]]) -> bool:
        """Whether the BN prior has stopped falling.

        Args:
            history (Sequence[Tensor | float]): The stage's ``loss_bn`` per
                iteration, oldest first (0-dim tensors or floats); only the
                last ``2 * bn_window`` are read.

        Returns:
            bool: True if the mean of the last ``bn_window`` values is not
            below the mean of the ``bn_window`` before by more than
            ``bn_tol`` times that earlier mean's magnitude. False with fewer
            than ``2 * bn_window`` values or a non-finite one.
        """
        w = self.bn_window
        if len(history) < 2 * w:
            return False
        # One stack on the values' device, one transfer.
        values = torch.stack([
            torch.as_tensor(v).detach().reshape(()).float()
            for v in list(history)[-2 * w:]
        ]).cpu().double()
        earlier, last = float(values[:w].mean()), float(values[w:].mean())
        # NaN or inf fail the comparison (no plateau).
        return bool(torch.isfinite(values).all()) and (
            earlier - last <= self.bn_tol * abs(earlier))

    @torch.no_grad()
    def targets_found(self, teacher: nn.Module, x: Tensor,
                      samples: Sequence, boxes: List[Tensor],
                      labels: List[Tensor]) -> float:
        """Fraction of the batch's targets the teacher detects.

        The caller switches off what must not see this forward pass (the BN
        prior's recording) and keeps the teacher in eval mode.

        Args:
            teacher (nn.Module): mmdet detector (eval mode).
            x (Tensor): (N, C, H, W) current images in model space.
            samples (Sequence[DetDataSample]): Per image metainfo
                (``img_shape`` etc.) for ``predict()``.
            boxes (list[Tensor]): Per image (K_i, 4) xyxy target boxes in
                pixels of ``x``.
            labels (list[Tensor]): Per image (K_i,) int64 target labels.

        Returns:
            float: Found targets over all targets of the batch, in [0, 1]
            (1.0 without targets).
        """
        preds = predict_instances(teacher, x.detach(), samples)
        return self.found_fraction(preds, boxes, labels)

    def found_fraction(self, preds: Sequence[InstanceData],
                       boxes: List[Tensor], labels: List[Tensor]) -> float:
        """Found targets over all targets, from given predictions.

        Args:
            preds (Sequence[InstanceData]): Per image ``bboxes`` (P_i, 4)
                xyxy, ``scores`` (P_i,) and ``labels`` (P_i,).
            boxes (list[Tensor]): Per image (K_i, 4) xyxy target boxes.
            labels (list[Tensor]): Per image (K_i,) target labels.

        Returns:
            float: In [0, 1]; 1.0 when the batch has no target.
        """
        total = sum(len(b) for b in boxes)
        if total == 0:
            return 1.0
        found = sum(
            int(self.found_mask(p, b, lb).sum())
            for p, b, lb in zip(preds, boxes, labels))
        return found / total

    def found_mask(self, preds: InstanceData, boxes: Tensor,
                   labels: Tensor) -> Tensor:
        """Which targets of one image a prediction finds.

        Args:
            preds (InstanceData): ``bboxes`` (P, 4) xyxy, ``scores`` (P,),
                ``labels`` (P,).
            boxes (Tensor): (K, 4) xyxy target boxes.
            labels (Tensor): (K,) target labels.

        Returns:
            Tensor: (K,) bool, True for a target matched by a prediction of
            its label with score >= ``score_thr`` and IoU >= ``iou_thr``.
        """
        return found_targets(preds, boxes, labels, self.score_thr,
                             self.iou_thr)


#: Defaults of :class:`DeepInversion`'s ``early_exit`` argument (off): those
#: of :class:`EarlyExit`.
EARLY_EXIT_DEFAULTS = init_defaults(EarlyExit)


def found_targets(preds: InstanceData, boxes: Tensor, labels: Tensor,
                  score_thr: float, iou_thr: float) -> Tensor:
    """Which target boxes of one image the teacher's predictions find.

    Args:
        preds (InstanceData): ``bboxes`` (P, 4) xyxy, ``scores`` (P,),
            ``labels`` (P,).
        boxes (Tensor): (K, 4) xyxy target boxes.
        labels (Tensor): (K,) target labels.
        score_thr (float): Smallest score of a prediction that counts.
        iou_thr (float): Smallest IoU of a prediction with its target.

    Returns:
        Tensor: (K,) bool on the CPU, True for a target matched by a
        prediction of its label with score >= ``score_thr`` and IoU >=
        ``iou_thr`` (one prediction may match several targets).
    """
    preds = preds[preds.scores >= score_thr]
    if len(boxes) == 0 or len(preds) == 0:
        return torch.zeros(len(boxes), dtype=torch.bool)
    boxes = boxes.detach().float().cpu()
    iou = bbox_overlaps(boxes, preds.bboxes.detach().float().cpu())
    same = labels.detach().cpu()[:, None] == preds.labels.cpu()[None, :]
    return ((iou >= iou_thr) & same).any(1)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
