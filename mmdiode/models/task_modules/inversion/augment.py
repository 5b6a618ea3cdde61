"""DIODE's differentiable augmentations that keep the target boxes in step.

Every synthesis iteration shows the teacher a randomly augmented view of the
images being optimised, so the pixels must explain the targets under shifts,
flips, photometric changes and occlusion rather than overfit one view.
Geometric operations move the boxes with the pixels.
"""
import math
from typing import List, Optional, Sequence, Tuple

import kornia.augmentation as K
import torch
import torch.nn.functional as F
from kornia.geometry.bbox import bbox_generator, bbox_to_mask
from torch import Tensor

from .input_space import PixelSpace

_JITTER_MODES = ('roll', 'translate')


class BoxConsistentAugment:
    """Random augmentation of model-space images together with their boxes.

    Operations, in order (each one off with its probability / magnitude 0):

    1. Random resized crop: a region of ``crop_scale`` times the image area
       and aspect ratio in ``crop_ratio`` is resampled (bilinear) to the image
       size; an area above 1 zooms out, padding with the mean colour.
    2. Jitter: the whole batch is shifted by (dy, dx) ~ U{-jitter..jitter}.
       ``'roll'`` wraps pixels around like DIODE (``torch.roll``; the part of a
       box that wraps is cut off), ``'translate'`` pads with the mean colour.
    3. Horizontal flip of each image with probability ``flip_prob``.
    4. Brightness and contrast per image: ``x' = (1 + c) * x + b`` with
       ``c ~ N(0, contrast)`` and ``b ~ N(0, brightness)``; ``b`` is in [0, 1]
       intensity units (as in DIODE, whose teacher took [0, 1] input) and the
       contrast scales around the mean colour (model-space 0).
    5. Random erasing of one rectangle per image with the mean colour, as
       ``kornia.augmentation.RandomErasing`` draws and places it; boxes are
       kept (occlusion).

    Boxes are then clipped to the image and those narrower or lower than
    ``min_box_size`` pixels are dropped with their labels.

    All random choices come from the given ``torch.Generator`` (on the CPU),
    so a seeded generator reproduces the augmentations exactly.

    Args:
        jitter (int): Maximal shift in pixels. Defaults to 0 (off); the
            synthesis engine sets it per stage (DIODE: 20, then 40).
        jitter_mode (str): ``'roll'`` or ``'translate'``. Defaults to 'roll'.
        flip_prob (float): Probability of a horizontal flip. Defaults to 0.5
            (DIODE); set 0 for classes that are not mirror-symmetric.
        brightness (float): Std of the additive brightness change in [0, 1]
            intensity units. Defaults to 0.2 (DIODE).
        contrast (float): Std of the relative contrast change. Defaults to
            0.1 (DIODE).
        erase_prob (float): Probability of erasing a rectangle. Defaults to
            0.5 (DIODE).
        erase_scale (tuple[float, float]): Range of the erased area fraction.
            Defaults to (0.02, 0.2).
        erase_ratio (tuple[float, float]): Range of the erased aspect ratio.
            Defaults to (0.3, 3.3).
        crop_prob (float): Probability of a random resized crop. Defaults to
            0 (off, as in DIODE).
        crop_scale (tuple[float, float]): Range of the crop's area fraction.
            Defaults to (0.5, 1.0).
        crop_ratio (tuple[float, float]): Range of the crop's aspect ratio
            (sampled log-uniformly). Defaults to (3/4, 4/3).
        min_box_size (float): Boxes with a side below this (pixels) are
            dropped. Defaults to 1.0 (DIODE).
        pixel_space (PixelSpace, optional): The images' space, to express
            ``brightness`` in model units. Defaults to None: model space is
            [0, 1] intensity.
    """

    def __init__(self,
                 jitter: int = 0,
                 jitter_mode: str = 'roll',
                 flip_prob: float = 0.5,
                 brightness: float = 0.2,
                 contrast: float = 0.1,
                 erase_prob: float = 0.5,
                 erase_scale: Sequence[float] = (0.02, 0.2),
                 erase_ratio: Sequence[float] = (0.3, 3.3),
                 crop_prob: float = 0.0,
                 crop_scale: Sequence[float] = (0.5, 1.0),
                 crop_ratio: Sequence[float] = (3 / 4, 4 / 3),
                 min_box_size: float = 1.0,
                 pixel_space: Optional[PixelSpace] = None) -> None:
        if jitter_mode not in _JITTER_MODES:
            raise ValueError(f'jitter_mode must be one of {_JITTER_MODES}, '
                             f'got {jitter_mode!r}')
        for name, prob in (('flip_prob', flip_prob),
                           ('erase_prob', erase_prob), ('crop_prob',
                                                        crop_prob)):
            if not 0.0 <= prob <= 1.0:
                raise ValueError(f'{name} must be in [0, 1], got {prob}')
        if jitter < 0 or brightness < 0 or contrast < 0:
            raise ValueError('jitter, brightness and contrast must be >= 0, '
                             f'got {jitter}, {brightness}, {contrast}')
        self.jitter = int(jitter)
        self.jitter_mode = jitter_mode
        self.flip_prob = flip_prob
        self.brightness = brightness
        self.contrast = contrast
        self.crop_prob = crop_prob
        self.crop_scale = tuple(crop_scale)
        self.crop_log_ratio = (math.log(crop_ratio[0]),
                               math.log(crop_ratio[1]))
        self.min_box_size = min_box_size
        space = pixel_space or PixelSpace()
        # Brightness offset in model units per channel, (1, 3, 1, 1).
        self._unit_to_model = space.unit_to_model
        self._eraser = (
            K.RandomErasing(
                scale=tuple(erase_scale),
                ratio=tuple(erase_ratio),
                value=0.0,
                p=erase_prob) if erase_prob > 0 else None)

    def __call__(
        self,
        images: Tensor,
        boxes: List[Tensor],
        labels: List[Tensor],
        generator: Optional[torch.Generator] = None
    ) -> Tuple[Tensor, List[Tensor], List[Tensor]]:
        """Augments a batch.

        Args:
            images (Tensor): (N, C, H, W) model-space images.
            boxes (list[Tensor]): Per image (K_i, 4) xyxy boxes in pixels.
            labels (list[Tensor]): Per image (K_i,) labels.
            generator (torch.Generator, optional): CPU generator for every
                random choice. Defaults to torch's global generator.

        Returns:
            tuple: The augmented (N, C, H, W) images (differentiable w.r.t.
            ``images``), and the per-image boxes (K'_i, 4) and labels (K'_i,)
            that survived clipping.
        """
        n, _, h, w = images.shape
        if len(boxes) != n or len(labels) != n:
            raise ValueError(f'Got {n} images but {len(boxes)} box and '
                             f'{len(labels)} label tensors')
        counts = [len(b) for b in boxes]
        # Boxes of the whole batch in one (M, 4) tensor, with their image.
        packed = torch.cat(boxes).float().reshape(-1, 4)
        image_of_box = torch.repeat_interleave(
            torch.arange(n), torch.tensor(counts)).to(packed.device)
        x = images
        if self.crop_prob > 0:
            x, packed = self._resized_crop(x, packed, image_of_box, generator)
        if self.jitter > 0:
            x, packed = self._jitter(x, packed, generator)
        if self.flip_prob > 0:
            x, packed = self._flip(x, packed, image_of_box, generator)
        if self.brightness > 0 or self.contrast > 0:
            x = self._brightness_contrast(x, generator)
        if self._eraser is not None:
            x = self._erase(x, generator)
        return (x, *self._clip_and_split(packed, torch.cat(labels),
                                         image_of_box, n, h, w))

    def _resized_crop(
            self, x: Tensor, packed: Tensor, image_of_box: Tensor,
            generator: Optional[torch.Generator]) -> Tuple[Tensor, Tensor]:
        n, _, h, w = x.shape
        chosen = torch.rand(n, generator=generator) < self.crop_prob
        if not bool(chosen.any()):
            return x, packed
        area = torch.empty(n).uniform_(*self.crop_scale, generator=generator)
        log_ratio = torch.empty(n).uniform_(
            *self.crop_log_ratio, generator=generator)
        ratio = log_ratio.exp()
        # Crop size relative to the image; unchosen images keep the identity.
        cw = torch.where(chosen, (area * ratio).sqrt(), torch.ones(n))
        ch = torch.where(chosen, (area / ratio).sqrt(), torch.ones(n))
        # The crop's left/top edge (relative): inside the image when the crop
        # is smaller, such that the crop covers the image when it is larger.
        x0 = self._uniform_between(torch.zeros(n), 1 - cw, generator)
        y0 = self._uniform_between(torch.zeros(n), 1 - ch, generator)
        # affine_grid (align_corners=False) maps output [-1, 1] onto the crop
        # region [2*x0 - 1, 2*(x0 + cw) - 1] of the input.
        theta = torch.zeros(n, 2, 3)
        theta[:, 0, 0], theta[:, 0, 2] = cw, 2 * x0 + cw - 1
        theta[:, 1, 1], theta[:, 1, 2] = ch, 2 * y0 + ch - 1
        theta = theta.to(device=x.device, dtype=x.dtype)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        x = F.grid_sample(
            x,
            grid,
            mode='bilinear',
            padding_mode='zeros',
            align_corners=False)
        # Boxes follow: b' = (b - origin) / crop size, in pixels.
        origin = torch.stack([x0 * w, y0 * h, x0 * w, y0 * h], 1)
        size = torch.stack([cw, ch, cw, ch], 1)
        origin, size = (
            t.to(packed.device)[image_of_box] for t in (origin, size))
        return x, self._clip((packed - origin) / size, h, w)

    @staticmethod
    def _uniform_between(a: Tensor, b: Tensor,
                         generator: Optional[torch.Generator]) -> Tensor:
        """Samples U(min(a, b), max(a, b)) elementwise."""
        return torch.lerp(a, b, torch.rand(a.shape, generator=generator))

    def _jitter(self, x: Tensor, packed: Tensor,
                generator: Optional[torch.Generator]) -> Tuple[Tensor, Tensor]:
        _, _, h, w = x.shape
        dy, dx = torch.randint(
            -self.jitter, self.jitter + 1, (2, ),
            generator=generator).tolist()
        if self.jitter_mode == 'roll':
            x = torch.roll(x, shifts=(dy, dx), dims=(2, 3))
        else:
            # Keep the part that stays inside, pad the rest with zeros (the
            # mean colour in model space).
            kept = x[...,
                     max(0, -dy):h - max(0, dy),
                     max(0, -dx):w - max(0, dx)]
            x = F.pad(kept, (max(0, dx), max(0, -dx), max(0, dy), max(0, -dy)))
        return x, self._clip(packed + packed.new_tensor([dx, dy, dx, dy]), h,
                             w)

    def _flip(self, x: Tensor, packed: Tensor, image_of_box: Tensor,
              generator: Optional[torch.Generator]) -> Tuple[Tensor, Tensor]:
        n, _, _, w = x.shape
        flipped = torch.rand(n, generator=generator) < self.flip_prob
        if not bool(flipped.any()):
            return x, packed
        # One gather with per-image column order (reversed where flipped):
        # cheaper forward and backward than blending a flipped copy.
        columns = torch.arange(w, device=x.device)
        order = torch.where(
            flipped.to(x.device).view(n, 1), columns.flip(0), columns)
        x = torch.gather(x, 3, order.view(n, 1, 1, w).expand_as(x))
        box_flipped = flipped.to(packed.device)[image_of_box].unsqueeze(1)
        mirrored = torch.stack(
            [w - packed[:, 2], packed[:, 1], w - packed[:, 0], packed[:, 3]],
            1)
        return x, torch.where(box_flipped, mirrored, packed)

    def _brightness_contrast(self, x: Tensor,
                             generator: Optional[torch.Generator]) -> Tensor:
        n = x.shape[0]
        gains = torch.randn(2, n, generator=generator)
        contrast = (1 + self.contrast * gains[0]).to(x).view(n, 1, 1, 1)
        offset = (self.brightness * gains[1]).to(x).view(n, 1, 1, 1)
        return torch.addcmul(offset * self._unit_to_model.to(x), x, contrast)

    def _erase(self, x: Tensor,
               generator: Optional[torch.Generator]) -> Tensor:
        # kornia draws its parameters from torch's global generator: seed a
        # forked global state from ours so the result is reproducible
        # without disturbing the caller's random state.
        seed = int(torch.randint(0, 2**62, (1, ), generator=generator))
        devices = [x.device.index or 0] if x.device.type == 'cuda' else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            params = self._eraser.forward_parameters(x.shape)
        # kornia's own forward computes the same fill and then blends it
        # with the input by image (two image-sized selects forward and
        # backward); one masked fill of the chosen images' rectangles is
        # the identical result at half the cost.
        return x.masked_fill(self._erased_pixels(params, x), 0.0)

    @staticmethod
    def _erased_pixels(params: dict, x: Tensor) -> Tensor:
        """(N, 1, H, W) bool mask of the rectangles that kornia's
        ``RandomErasing`` fills, with its parameters and box helpers."""
        n, _, h, w = x.shape
        rects = bbox_generator(params['xs'], params['ys'], params['widths'],
                               params['heights']).to(x.device)
        inside = bbox_to_mask(rects, w, h) == 1.0
        chosen = (params['batch_prob'] > 0.5).to(x.device)
        return inside.unsqueeze(1) & chosen.view(n, 1, 1, 1)

    @staticmethod
    def _clip(packed: Tensor, h: int, w: int) -> Tensor:
        """Clips (M, 4) xyxy boxes to a (h, w) image."""
        return packed.clamp(
            min=packed.new_zeros(4), max=packed.new_tensor([w, h, w, h]))

    def _clip_and_split(self, packed: Tensor, labels: Tensor,
                        image_of_box: Tensor, n: int, h: int,
                        w: int) -> Tuple[List[Tensor], List[Tensor]]:
        packed = self._clip(packed, h, w)
        wh = packed[:, 2:] - packed[:, :2]
        keep = (wh >= self.min_box_size).all(1)
        packed, labels, image_of_box = (packed[keep], labels[keep],
                                        image_of_box[keep])
        counts = torch.bincount(image_of_box, minlength=n).tolist()
        return list(packed.split(counts)), list(labels.split(counts))
