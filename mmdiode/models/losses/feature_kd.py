"""Feature-imitation distillation losses: FitNet / Mimic, FGFI and PKD.

Each loss pairs student and teacher stages (recorded module outputs, see
:mod:`.correspondence`), maps the student stage onto the teacher's width
and resolution with a trainable :class:`~.correspondence.CorrespondenceLayer`
and compares the two; teacher features never receive gradients.
"""
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmdet.registry import MODELS, TASK_UTILS
from mmdet.structures.bbox import bbox_overlaps, get_box_tensor
from torch import Tensor

from ..distill_base import DistillContext
from .correspondence import (CorrespondenceDistillLoss, batch_input_shape,
                             gt_box_masks, sample_boxes)


class _NeckImitationLoss(CorrespondenceDistillLoss):
    """A :class:`~.correspondence.CorrespondenceDistillLoss` that pairs the
    necks' levels unless told otherwise: the recorded modules default to
    ``('neck',)``.

    Args:
        student_channels, teacher_channels, student_modules,
        teacher_modules, stage_pairs, norm_cfg, loss_weight: See
            :class:`~.correspondence.CorrespondenceDistillLoss`; the
            modules default to ``('neck',)``, ``norm_cfg`` to None (no norm
            after the adaptation 1x1 conv) and ``loss_weight`` to 1.0.
    """

    def __init__(self,
                 student_channels: Sequence[int],
                 teacher_channels: Sequence[int],
                 student_modules: Sequence[str] = ('neck',),
                 teacher_modules: Sequence[str] = ('neck',),
                 stage_pairs: Optional[Sequence[Sequence[int]]] = None,
                 norm_cfg: Optional[dict] = None,
                 loss_weight: float = 1.0) -> None:
        super().__init__(student_channels, teacher_channels, student_modules,
                         teacher_modules, stage_pairs, norm_cfg,
                         loss_weight=loss_weight)


@MODELS.register_module()
class FitNetLoss(_NeckImitationLoss):
    """FitNets hint loss: L2 between adapted student and teacher features.

    For every stage pair, with ``S`` the adapted student feature and ``T``
    the teacher feature (N, C, h, w)::

        mask='none':  L = mean over (n, c, y, x) of (S - T)^2
        mask='gt':    L = sum(M * (S - T)^2) / (C * sum(M))

    where ``M`` (N, 1, h, w) marks the locations that ground-truth boxes
    overlap (Mimic, Li et al. CVPR 2017, imitates inside regions only). The
    returned loss is ``loss_weight`` times the sum over stage pairs; a
    stage with an empty mask contributes 0.

    Args:
        mask (str): ``'none'`` (all locations) or ``'gt'`` (inside GT
            boxes). Defaults to ``'none'``.
        *args, **kwargs: ``student_channels``, ``teacher_channels``,
            ``student_modules``, ``teacher_modules``, ``stage_pairs``,
            ``norm_cfg``, ``loss_weight``: see :class:`_NeckImitationLoss`
            (the modules default to ``('neck',)``; ``norm_cfg`` to None, a
            plain conv regressor as in FitNets; ``loss_weight`` to 1.0).
    """
    loss_name = 'loss_fitnet'

    def __init__(self, *args, mask: str = 'none', **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if mask not in ('none', 'gt'):
            raise ValueError(f"mask must be 'none' or 'gt', got {mask!r}")
        self.mask = mask

    def forward(self, ctx: DistillContext) -> Dict[str, Tensor]:
        """Returns ``{loss_name: weighted loss}``."""
        total = 0.
        for student, teacher in self.paired_features(ctx):
            sq_error = (student - teacher).pow(2)
            if self.mask == 'none':
                total = total + sq_error.mean()
            else:
                mask = gt_box_masks(ctx.data_samples, teacher.shape[-2:],
                                    teacher.device)
                num = mask.sum() * teacher.size(1)
                total = total + (sq_error * mask).sum() / num.clamp(min=1)
        return {self.loss_name: self.loss_weight * total}


@MODELS.register_module()
class MimicLoss(FitNetLoss):
    """Mimic (Li et al. CVPR 2017): :class:`FitNetLoss` inside GT boxes.

    Same arguments as :class:`FitNetLoss`, with ``mask='gt'`` by default.
    """
    loss_name = 'loss_mimic'

    def __init__(self, *args, mask: str = 'gt', **kwargs) -> None:
        super().__init__(*args, mask=mask, **kwargs)


@MODELS.register_module()
class FGFILoss(CorrespondenceDistillLoss):
    """Fine-grained feature imitation (Wang et al., CVPR 2019).

    Imitation mask: for each GT box ``g`` let ``m_g`` be its best IoU with
    any anchor of the distilled levels; anchor ``a`` is near ``g`` when
    ``IoU(a, g) > psi * m_g``. A location is imitated when any of its anchors
    is near any GT box of its image. With ``S`` the adapted student feature,
    ``T`` the teacher feature and ``M`` the mask over all levels::

        L = sum_levels sum(M * (S - T)^2) / (2 * N_p)
        N_p = sum_levels sum(M)

    (the squared error is summed over channels and normalised by the number
    of imitated locations). Without GT boxes the mask is empty and L = 0.
    The best IoU is taken over all distilled levels, so each box is imitated
    on the levels whose anchors fit it, as the detector assigns it.

    Args:
        student_channels (Sequence[int]): Channels of every student stage.
        teacher_channels (Sequence[int]): Channels of every teacher stage.
        anchor_generator (dict): Config of an mmdet anchor generator (built
            by ``TASK_UTILS``) with one level per stage pair, in pair order
            and with the strides of the teacher stages, e.g. the teacher
            head's ``anchor_generator``.
        student_modules (Sequence[str]): Student recording names.
            Defaults to ``('neck',)``.
        teacher_modules (Sequence[str]): Teacher recording names.
            Defaults to ``('neck',)``.
        stage_pairs (Sequence[Sequence[int]], optional): Explicit
            (student_index, teacher_index) pairs. Defaults to None.
        psi (float): Fraction of a box's best anchor IoU above which an
            anchor is near it. Defaults to 0.5 (the paper's value).
        always_adapt (bool): Adapt the student with a 1x1 conv even when
            the channels match; the paper always uses an adaptation layer.
            Defaults to True.
        norm_cfg (dict, optional): Norm after the adaptation conv.
            Defaults to None.
        loss_weight (float): Multiplier of the loss. Defaults to 1.0.
    """

    def __init__(self,
                 student_channels: Sequence[int],
                 teacher_channels: Sequence[int],
                 anchor_generator: dict,
                 student_modules: Sequence[str] = ('neck',),
                 teacher_modules: Sequence[str] = ('neck',),
                 stage_pairs: Optional[Sequence[Sequence[int]]] = None,
                 psi: float = 0.5,
                 always_adapt: bool = True,
                 norm_cfg: Optional[dict] = None,
                 loss_weight: float = 1.0) -> None:
        super().__init__(student_channels, teacher_channels, student_modules,
                         teacher_modules, stage_pairs, norm_cfg, always_adapt,
                         loss_weight)
        if not 0 < psi <= 1:
            raise ValueError(f'psi must be in (0, 1], got {psi}')
        self.psi = psi
        self.prior_generator = TASK_UTILS.build(anchor_generator)
        if self.prior_generator.num_levels != len(self.stage_pairs):
            raise ValueError(
                f'The anchor generator has {self.prior_generator.num_levels} '
                f'levels but {len(self.stage_pairs)} stages are distilled')

    def forward(self, ctx: DistillContext) -> Dict[str, Tensor]:
        """Returns ``{'loss_fgfi': weighted loss}``."""
        pairs = self.paired_features(ctx)
        masks = self.imitation_masks(ctx.data_samples,
                                     [t.shape[-2:] for _, t in pairs],
                                     pairs[0][1].device)
        error = sum((m * (s - t).pow(2)).sum()
                    for (s, t), m in zip(pairs, masks))
        num_locations = sum(m.sum() for m in masks)
        loss = error / (2 * num_locations.clamp(min=1))
        return {'loss_fgfi': self.loss_weight * loss}

    def imitation_masks(self, data_samples: Sequence,
                        featmap_sizes: List[Tuple[int, int]],
                        device: torch.device) -> List[Tensor]:
        """FGFI imitation masks of every distilled level.

        Args:
            data_samples (Sequence[DetDataSample]): Samples with
                ``gt_instances.bboxes`` (xyxy, batch frame).
            featmap_sizes (list[tuple[int, int]]): (h, w) of every level.
            device (torch.device): Device of the masks.

        Returns:
            list[Tensor]: Per level, an (N, 1, h, w) 0/1 float mask.
        """
        featmap_sizes = [tuple(int(v) for v in s) for s in featmap_sizes]
        self._check_strides(data_samples, featmap_sizes)
        anchors = [
            get_box_tensor(a) for a in self.prior_generator.grid_priors(
                featmap_sizes, device=device)
        ]
        num_per_level = [a.size(0) for a in anchors]
        all_anchors = torch.cat(anchors)
        masks = [
            torch.zeros(len(data_samples), 1, h, w, device=device)
            for h, w in featmap_sizes
        ]
        for n, sample in enumerate(data_samples):
            boxes = sample_boxes(sample, device)
            if boxes.numel() == 0:
                continue
            ious = bbox_overlaps(boxes, all_anchors)  # (K, total anchors)
            best = ious.max(dim=1, keepdim=True).values
            near = ((ious > self.psi * best) & (best > 0)).any(0)
            for level, (hits, (h, w)) in enumerate(
                    zip(near.split(num_per_level), featmap_sizes)):
                # Anchors are ordered location-major: (h * w, A).
                masks[level][n, 0] = hits.view(h, w, -1).any(-1).float()
        return masks

    def _check_strides(self, data_samples: Sequence,
                       featmap_sizes: List[Tuple[int, int]]) -> None:
        """Catches anchor levels that do not match the features' strides."""
        in_h, in_w = batch_input_shape(data_samples[0])
        for level, ((h, w), (stride_w, stride_h)) in enumerate(
                zip(featmap_sizes, self.prior_generator.strides)):
            expected = (-(-in_h // int(stride_h)), -(-in_w // int(stride_w)))
            if (h, w) != expected:
                raise ValueError(
                    f'Distilled level {level} is {h}x{w}, but anchor stride '
                    f'{(stride_w, stride_h)} on a {in_h}x{in_w} input gives '
                    f'{expected[0]}x{expected[1]}: the anchor generator '
                    'levels must follow the stage pairs in order')


@MODELS.register_module()
class PKDLoss(_NeckImitationLoss):
    """PKD: feature imitation with the Pearson correlation coefficient.

    Each feature map is standardised per channel over (N, H, W) (zero mean,
    unit biased variance), then::

        L = sum_levels MSE(std(S), std(T)) / 2 = sum_levels mean_c (1 - r_c)

    where ``r_c`` is the Pearson correlation between the student's and the
    teacher's channel ``c`` over the batch and locations. Standardising per
    channel over the batch (rather than per sample over (C, H, W)) matches
    the published loss and keeps small maps (1x1 top FPN levels) meaningful.
    The loss ignores the features' scale and offset, so no norm is needed
    in the adaptation; the student is only adapted (1x1 conv) when channels
    differ.

    Args:
        eps (float): Added to the standard deviation. Defaults to 1e-6.
        loss_weight (float): Multiplier of the loss. Defaults to 6.0 (the
            published value).
        *args, **kwargs: ``student_channels``, ``teacher_channels``,
            ``student_modules``, ``teacher_modules``, ``stage_pairs``,
            ``norm_cfg``: see :class:`_NeckImitationLoss` (the modules
            default to ``('neck',)``; ``norm_cfg`` to None, see above).
    """

    def __init__(self,
                 *args,
                 eps: float = 1e-6,
                 loss_weight: float = 6.0,
                 **kwargs) -> None:
        super().__init__(*args, loss_weight=loss_weight, **kwargs)
        self.eps = eps

    def standardise(self, x: Tensor) -> Tensor:
        """Standardises (N, C, H, W) per channel over (N, H, W)."""
        mean = x.mean(dim=(0, 2, 3), keepdim=True)
        std = x.std(dim=(0, 2, 3), keepdim=True, unbiased=False)
        return (x - mean) / (std + self.eps)

    def forward(self, ctx: DistillContext) -> Dict[str, Tensor]:
        """Returns ``{'loss_pkd': weighted loss}``."""
        loss = sum(
            F.mse_loss(self.standardise(s), self.standardise(t)) / 2
            for s, t in self.paired_features(ctx))
        return {'loss_pkd': self.loss_weight * loss}
