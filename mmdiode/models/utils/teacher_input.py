"""Feeding the teacher the student's batch in the teacher's own normalisation.

mmdet's data preprocessors (``DetDataPreprocessor`` /
``ImgDataPreprocessor``) turn a raw image ``x`` (dataset channel order,
usually BGR) into ``(P(x) - mean) / std`` where ``P`` reverses the channel
order when ``bgr_to_rgb`` or ``rgb_to_bgr`` is set, then pad every image at
the bottom/right with ``pad_value`` up to the batch size rounded up to
``pad_size_divisor``. Both steps are invertible per pixel, so the student's
batch ``s`` maps to the teacher's with::

    raw_in_student_order = s * std_s + mean_s
    t = (R(raw_in_student_order) - mean_t) / std_t

where ``R`` reverses the channels when exactly one of the two preprocessors
converts channel order. This is exact (up to float rounding) for every pixel
inside each image's ``img_shape``, i.e. every real pixel; everything outside
(padding) is set to the teacher's ``pad_value``, as the teacher's
preprocessor pads. The batch is then padded at the bottom/right to a
multiple of the teacher's ``pad_size_divisor``: when that divides the
student's padded size (e.g. both 32) the result equals, element for element,
the teacher's preprocessor applied to the raw images; otherwise it only has
extra padding. Batch augmentations of the student's preprocessor (which act
after normalisation) are seen by the teacher as they are; the teacher's own
``batch_augments`` are not applied.
"""
import math
from dataclasses import dataclass
from typing import List, Optional

import torch
import torch.nn.functional as F
from mmdet.structures import DetDataSample
from torch import Tensor, nn


@dataclass
class PixelNormalisation:
    """The per-pixel settings of an mmdet/mmengine image preprocessor.

    Attributes:
        mean (Tensor): Per-channel mean, (C, 1, 1) or (1, 1, 1).
        std (Tensor): Per-channel std, same shape as ``mean``.
        swap_channels (bool): Whether the channel order is reversed before
            normalising (``bgr_to_rgb`` or ``rgb_to_bgr``).
        pad_size_divisor (int): Batch sides are padded to multiples of this.
        pad_value (float): Value of padded pixels (after normalisation).
    """
    mean: Tensor
    std: Tensor
    swap_channels: bool
    pad_size_divisor: int
    pad_value: float

    @classmethod
    def of(cls, preprocessor: nn.Module) -> 'PixelNormalisation':
        """Reads the settings of a (Det/Img)DataPreprocessor.

        A preprocessor without normalisation (mmengine's plain
        ``BaseDataPreprocessor``, or ``mean=None``) maps with mean 0, std 1.
        """
        device = next(iter(preprocessor.buffers()), torch.zeros(0)).device
        if getattr(preprocessor, '_enable_normalize', False):
            mean = preprocessor.mean.float()
            std = preprocessor.std.float()
        else:
            mean = torch.zeros(1, 1, 1, device=device)
            std = torch.ones(1, 1, 1, device=device)
        return cls(
            mean=mean,
            std=std,
            swap_channels=bool(
                getattr(preprocessor, '_channel_conversion', False)),
            pad_size_divisor=int(getattr(preprocessor, 'pad_size_divisor', 1)),
            pad_value=float(getattr(preprocessor, 'pad_value', 0)))

    def same_pixels_as(self, other: 'PixelNormalisation') -> bool:
        """Whether both map raw pixels to the same normalised values."""
        return (self.swap_channels == other.swap_channels
                and self.mean.shape == other.mean.shape and bool(
                    (self.mean == other.mean).all()) and bool(
                        (self.std == other.std).all()))


def _round_up(size: int, divisor: int) -> int:
    return int(math.ceil(size / divisor)) * divisor


def _image_shapes(data_samples: Optional[List[DetDataSample]],
                  inputs: Tensor) -> List[tuple]:
    """Each image's valid (h, w) in the batch; the whole batch if unknown."""
    full = tuple(inputs.shape[-2:])
    if data_samples is None:
        return [full] * inputs.shape[0]
    return [tuple(s.metainfo.get('img_shape', full))[:2] for s in data_samples]


def map_to_teacher_inputs(inputs: Tensor,
                          data_samples: Optional[List[DetDataSample]],
                          student: PixelNormalisation,
                          teacher: PixelNormalisation) -> Tensor:
    """Re-normalises a student batch for the teacher (see module docstring).

    Args:
        inputs (Tensor): Student-normalised batch, (N, C, H, W).
        data_samples (list[DetDataSample], optional): The batch's samples;
            their ``img_shape`` marks each image's real pixels.
        student (PixelNormalisation): The student preprocessor's settings.
        teacher (PixelNormalisation): The teacher preprocessor's settings.

    Returns:
        Tensor: Teacher-normalised batch, (N, C, H', W') with H' >= H and
        W' >= W multiples of the teacher's ``pad_size_divisor``.
    """
    if data_samples is not None and len(data_samples) != inputs.shape[0]:
        raise ValueError(f'{len(data_samples)} data samples for a batch of '
                         f'{inputs.shape[0]} images')
    if student.same_pixels_as(teacher):
        out = inputs  # exactly the student's values, no rounding
    else:
        raw = inputs * student.std + student.mean
        if student.swap_channels != teacher.swap_channels:
            raw = raw.flip(1)
        out = (raw - teacher.mean) / teacher.std
    shapes = _image_shapes(data_samples, inputs)
    if any(shape != tuple(out.shape[-2:]) for shape in shapes):
        # Only a batch with padding needs it re-set (and a copy).
        valid = torch.zeros_like(out[:, :1], dtype=torch.bool)
        for i, (h, w) in enumerate(shapes):
            valid[i, :, :h, :w] = True
        out = torch.where(valid, out, out.new_tensor(teacher.pad_value))
    height, width = out.shape[-2:]
    pad_h = _round_up(height, teacher.pad_size_divisor) - height
    pad_w = _round_up(width, teacher.pad_size_divisor) - width
    if pad_h or pad_w:
        out = F.pad(out, (0, pad_w, 0, pad_h), value=teacher.pad_value)
    return out


def teacher_data_samples(data_samples: List[DetDataSample],
                         teacher_inputs: Tensor,
                         pad_size_divisor: int) -> List[DetDataSample]:
    """Target-free copies of the samples with the teacher's batch geometry.

    ``img_shape``, ``ori_shape`` and ``scale_factor`` are unchanged (the
    teacher sees the same pixels at the same scale); ``batch_input_shape``
    and ``pad_shape`` are set as the teacher's preprocessor would set them.

    Args:
        data_samples (list[DetDataSample]): The student's samples.
        teacher_inputs (Tensor): Teacher batch, (N, C, H', W').
        pad_size_divisor (int): The teacher's divisor.

    Returns:
        list[DetDataSample]: New samples holding metainfo only.
    """
    batch_shape = tuple(teacher_inputs.shape[-2:])
    samples = []
    for sample, (h, w) in zip(data_samples,
                              _image_shapes(data_samples, teacher_inputs)):
        meta = dict(sample.metainfo)
        meta['batch_input_shape'] = batch_shape
        meta['pad_shape'] = (_round_up(h, pad_size_divisor),
                             _round_up(w, pad_size_divisor))
        samples.append(DetDataSample(metainfo=meta))
    return samples
