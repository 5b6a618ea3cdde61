"""Correspondence between student and teacher features.

Feature distillation compares a student feature map with a teacher feature
map. This module establishes that correspondence at three levels:

* stages: the recorded outputs of the named modules are flattened into one
  ordered list of feature maps per network (a module that returns a tuple,
  such as ``'backbone'`` or ``'neck'``, contributes one stage per element),
  and student stages are paired with teacher stages by order or by an
  explicit list of index pairs (:func:`resolve_stage_pairs`);
* channels and resolution: a :class:`CorrespondenceLayer` maps a student
  stage to its teacher stage's width (1x1 conv, optional norm) and
  resolution (bilinear resampling);
* locations: :func:`gt_box_masks` marks the feature locations that ground
  truth boxes cover.

:class:`CorrespondenceDistillLoss` bundles the first two for the losses in
:mod:`.feature_kd` and :mod:`.hgd`.
"""
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from mmdet.structures.bbox import get_box_tensor
from torch import Tensor, nn
from torch.nn.utils.rnn import pad_sequence

from ..distill_base import BaseDistillLoss, DistillContext


def collect_stages(outs: Dict[str, Any], names: Sequence[str],
                   side: str) -> List[Tensor]:
    """Flattens recorded module outputs into one ordered list of stages.

    Args:
        outs (dict): Recorded outputs by recording name.
        names (Sequence[str]): Recording names to read, in order.
        side (str): ``'student'`` or ``'teacher'``, for error messages.

    Returns:
        list[Tensor]: Feature maps, each (N, C, H, W), in the order of
        ``names`` and, within a module's tuple output, in tuple order.
    """
    stages = []
    for name in names:
        if name not in outs:
            raise KeyError(f'The {side} output of module {name!r} was not '
                           f'recorded; recorded: {sorted(outs)}')
        out = outs[name]
        items = list(out) if isinstance(out, (tuple, list)) else [out]
        for i, item in enumerate(items):
            if not isinstance(item, Tensor) or item.dim() != 4:
                raise TypeError(
                    f'The {side} output {i} of module {name!r} must be an '
                    f'(N, C, H, W) tensor, got {type(item).__name__}'
                    + (f' of shape {tuple(item.shape)}'
                       if isinstance(item, Tensor) else ''))
            stages.append(item)
    return stages


def resolve_stage_pairs(
        num_student: int, num_teacher: int,
        stage_pairs: Optional[Sequence[Sequence[int]]] = None
) -> List[Tuple[int, int]]:
    """Pairs student stages with teacher stages.

    Args:
        num_student (int): Number of student stages.
        num_teacher (int): Number of teacher stages.
        stage_pairs (Sequence[Sequence[int]], optional): Explicit
            ``(student_index, teacher_index)`` pairs. Defaults to None:
            stage ``i`` of the student with stage ``i`` of the teacher,
            which needs equal stage counts.

    Returns:
        list[tuple[int, int]]: The (student, teacher) index pairs.
    """
    if stage_pairs is None:
        if num_student != num_teacher:
            raise ValueError(
                f'The student has {num_student} stages and the teacher '
                f'{num_teacher}: pairing by order needs equal counts; give '
                'stage_pairs=[(student_index, teacher_index), ...] to map '
                'them explicitly')
        return [(i, i) for i in range(num_student)]
    pairs = []
    for pair in stage_pairs:
        if len(pair) != 2:
            raise ValueError(f'A stage pair must be (student_index, '
                             f'teacher_index), got {pair!r}')
        s, t = int(pair[0]), int(pair[1])
        if not (0 <= s < num_student and 0 <= t < num_teacher):
            raise ValueError(
                f'Stage pair {(s, t)} is out of range: the student has '
                f'{num_student} stages and the teacher {num_teacher}')
        pairs.append((s, t))
    if not pairs:
        raise ValueError('stage_pairs is empty: nothing to distil')
    return pairs


class CorrespondenceLayer(nn.Module):
    """Maps a student feature map onto its teacher's width and resolution.

    A 1x1 conv (followed by ``norm_cfg`` if given) adapts the channels when
    they differ (or always, with ``always_adapt``); otherwise the channels
    pass unchanged. The result is resampled bilinearly to the teacher's
    spatial size when the two differ (different strides or input sizes).

    Args:
        in_channels (int): Student channels.
        out_channels (int): Teacher channels.
        norm_cfg (dict, optional): Norm after the 1x1 conv, e.g.
            ``dict(type='BN')``. Defaults to None (plain conv with bias).
        always_adapt (bool): Use the 1x1 conv even when the channels match.
            Defaults to False.
    """

    def __init__(self, in_channels: int, out_channels: int,
                 norm_cfg: Optional[dict] = None,
                 always_adapt: bool = False) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        if in_channels != out_channels or always_adapt:
            self.adapt = ConvModule(in_channels, out_channels, 1,
                                    norm_cfg=norm_cfg, act_cfg=None)
        else:
            self.adapt = nn.Identity()

    def forward(self, x: Tensor, size: Tuple[int, int]) -> Tensor:
        """Adapts ``x`` (N, C_s, h, w) to (N, C_t, *size)."""
        if x.size(1) != self.in_channels:
            raise ValueError(
                f'The correspondence layer expects {self.in_channels} '
                f'student channels, the feature has {x.size(1)}: check '
                'student_channels')
        x = self.adapt(x)
        if tuple(x.shape[-2:]) != tuple(size):
            x = F.interpolate(x, size=tuple(size), mode='bilinear',
                              align_corners=False)
        return x


class CorrespondenceDistillLoss(BaseDistillLoss):
    """Base of the losses that compare paired student/teacher stages.

    Subclasses call :meth:`paired_features` to get, for every stage pair,
    the student feature mapped by its :class:`CorrespondenceLayer` and the
    detached teacher feature, both (N, C_t, h_t, w_t).

    Args:
        student_channels (Sequence[int]): Channels of every student stage
            (every element of the flattened recorded outputs, in order).
        teacher_channels (Sequence[int]): Channels of every teacher stage.
        student_modules (Sequence[str]): Student recording names.
        teacher_modules (Sequence[str]): Teacher recording names.
        stage_pairs (Sequence[Sequence[int]], optional): Explicit
            ``(student_index, teacher_index)`` pairs; None pairs by order.
        norm_cfg (dict, optional): Norm of the correspondence 1x1 convs.
        always_adapt (bool): Use the 1x1 conv even when channels match.
        loss_weight (float): Multiplier of the returned loss.
    """

    def __init__(self,
                 student_channels: Sequence[int],
                 teacher_channels: Sequence[int],
                 student_modules: Sequence[str],
                 teacher_modules: Sequence[str],
                 stage_pairs: Optional[Sequence[Sequence[int]]] = None,
                 norm_cfg: Optional[dict] = None,
                 always_adapt: bool = False,
                 loss_weight: float = 1.0) -> None:
        super().__init__(loss_weight=loss_weight)
        self.student_modules = list(student_modules)
        self.teacher_modules = list(teacher_modules)
        self.student_channels = [int(c) for c in student_channels]
        self.teacher_channels = [int(c) for c in teacher_channels]
        self.stage_pairs = resolve_stage_pairs(
            len(self.student_channels), len(self.teacher_channels),
            stage_pairs)
        self.correspondences = nn.ModuleList(
            CorrespondenceLayer(self.student_channels[s],
                                self.teacher_channels[t], norm_cfg,
                                always_adapt) for s, t in self.stage_pairs)

    def paired_features(self,
                        ctx: DistillContext) -> List[Tuple[Tensor, Tensor]]:
        """Student features mapped onto their paired teacher features.

        Args:
            ctx (DistillContext): The step's recorded outputs.

        Returns:
            list[tuple[Tensor, Tensor]]: Per stage pair, the adapted student
            feature (with gradient) and the detached teacher feature, both
            (N, C_t, h_t, w_t).
        """
        student = collect_stages(ctx.student_outs, self.student_modules,
                                 'student')
        teacher = collect_stages(ctx.teacher_outs, self.teacher_modules,
                                 'teacher')
        self._check_counts(student, self.student_channels, 'student')
        self._check_counts(teacher, self.teacher_channels, 'teacher')
        pairs = []
        for (s, t), layer in zip(self.stage_pairs, self.correspondences):
            t_feat = teacher[t].detach()
            if t_feat.size(1) != self.teacher_channels[t]:
                raise ValueError(
                    f'Teacher stage {t} has {t_feat.size(1)} channels, '
                    f'teacher_channels says {self.teacher_channels[t]}')
            if student[s].size(0) != t_feat.size(0):
                raise ValueError(
                    f'Student stage {s} has batch size {student[s].size(0)}'
                    f', teacher stage {t} has {t_feat.size(0)}')
            pairs.append((layer(student[s], t_feat.shape[-2:]), t_feat))
        return pairs

    @staticmethod
    def _check_counts(stages: List[Tensor], channels: List[int],
                      side: str) -> None:
        if len(stages) != len(channels):
            raise ValueError(
                f'The recorded {side} modules give {len(stages)} stages but '
                f'{side}_channels lists {len(channels)}: list the channels '
                'of every stage (every element of tuple outputs)')


def gt_box_masks(data_samples: Sequence[Any], featmap_size: Tuple[int, int],
                 device: torch.device) -> Tensor:
    """Marks the feature locations that ground-truth boxes overlap.

    Location ``(i, j)`` of an (h, w) map covers the image cell
    ``[j * W / w, (j + 1) * W / w) x [i * H / h, (i + 1) * H / h)`` of the
    batch input frame (H, W) = ``metainfo['batch_input_shape']``; it is
    foreground when any box of its image overlaps that cell. Using the
    fraction of the frame (not a stride) keeps the mapping right for a
    teacher fed a resized copy of the batch.

    Args:
        data_samples (Sequence[DetDataSample]): Samples whose
            ``gt_instances.bboxes`` are xyxy pixels in the batch frame.
        featmap_size (tuple[int, int]): (h, w) of the feature map.
        device (torch.device): Device of the returned mask.

    Returns:
        Tensor: (N, 1, h, w) float mask of 0/1.
    """
    h, w = featmap_size
    n = len(data_samples)
    boxes = [sample_boxes(sample, device) for sample in data_samples]
    counts = torch.tensor([len(b) for b in boxes], device=device)
    if n == 0 or int(counts.max()) == 0:
        return torch.zeros(n, 1, h, w, device=device)
    # One vectorised pass over the batch: boxes padded to (N, K, 4), the
    # padding masked out by `valid`.
    padded = pad_sequence(boxes, batch_first=True)
    valid = torch.arange(padded.size(1), device=device) < counts[:, None]
    frames = torch.tensor([batch_input_shape(s) for s in data_samples],
                          dtype=torch.float32, device=device)  # (N, 2)
    y_edges = torch.arange(h + 1, device=device) * (frames[:, :1] / h)
    x_edges = torch.arange(w + 1, device=device) * (frames[:, 1:] / w)
    # (N, K, w) / (N, K, h): does box k of image n overlap column j / row i?
    in_x = (padded[..., :1] < x_edges[:, None, 1:]) & (
        padded[..., 2:3] > x_edges[:, None, :-1]) & valid[..., None]
    in_y = (padded[..., 1:2] < y_edges[:, None, 1:]) & (
        padded[..., 3:4] > y_edges[:, None, :-1])
    masks = (in_y[..., :, None] & in_x[..., None, :]).any(1)  # (N, h, w)
    return masks[:, None].float()


def sample_boxes(sample: Any, device: torch.device) -> Tensor:
    """The (K, 4) xyxy ground-truth boxes of one sample on ``device``."""
    return get_box_tensor(sample.gt_instances.bboxes).to(device).float()


def batch_input_shape(sample: Any) -> Tuple[int, int]:
    """The (H, W) batch input frame of one sample."""
    shape = sample.metainfo.get('batch_input_shape')
    if shape is None:
        raise KeyError('Box-guided distillation needs '
                       "metainfo['batch_input_shape'] in the data samples "
                       '(the data preprocessor sets it)')
    return int(shape[0]), int(shape[1])
