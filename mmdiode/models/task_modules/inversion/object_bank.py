"""Warm starts: new batches begin from objects of earlier ones.

A synthesized image costs hundreds of teacher passes, most of them spent
turning noise into objects the teacher recognises. Once some batches
exist, their objects can be reused: a new batch starts from crops of
earlier objects pasted at its own target boxes (each crop of the target's
class, resized to the box) on fresh noise, and a short schedule blends
them into an image the BN-statistics prior accepts. :class:`ObjectBank`
holds the crops; :class:`DeepInversion` composes a batch's start from it
(``recombine`` argument).

Decisions:

- **Only objects the teacher finds.** A crop enters the bank only when the
  teacher, on the finished image, detects its target (a prediction of its
  label with score >= ``score_thr`` and IoU >= ``iou_thr``,
  :func:`~.early_exit.found_targets`); targets it does not recognise would
  start a new batch from a non-object.
- **Determinism.** The bank is a function of the images added, in their
  order (each class keeps its last ``max_per_class`` crops), and a
  composition draws its crops from the batch's own generator, so a job that
  fills the bank from the same batches (on disk, when resumed) makes the
  same images.
- **Background.** Fresh noise, as a cold batch starts from: pasting whole
  earlier images would carry their other objects in, unlabelled.
- **No pixels of the layout are copied when the class is missing**: a
  target whose class has no crop yet starts from noise, as in a cold batch.
- **Diversity, optional** (``recombine`` of the synthesizer): with
  ``refill`` every batch, warm ones too, offers its found objects to the
  bank (the caller's part: :func:`~mmdiode.apis.synthesis.fill_object_bank`,
  the hook), so the crops move on from those of the first batches; with
  ``recolour`` each pasted crop gets a random order of its RGB channels, for
  classes whose identity does not depend on colour (digits drawn in any
  colour; not fruit). Both are off by default: warm starts from a few
  hundred crops taught a student less than cold images did, and these are
  the measured attempts to widen them (docs/en/benchmarks.md).
- **Feathered pastes, optional** (``feather``): a crop is a rectangle of
  its earlier image, border and background included, and a short warm
  schedule does not dissolve the border, so a student may learn "a patch"
  rather than the class. With ``feather=f`` the crop's weight falls from 1
  to 0 over the outer fraction ``f`` of each side (a raised-cosine ramp) and
  the noise underneath shows through there; ``0`` pastes the hard
  rectangle, as before.
- **Saved with the run**: :meth:`ObjectBank.save` writes the crops (and how
  many batches filled them) atomically, so on-the-fly synthesis
  (``DeepInversionHook``) resumes with the bank it had, even after its
  pool has dropped the images the crops came from.
"""
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmdet.structures import DetDataSample
from torch import Tensor, nn

from mmdiode.utils.fileio import atomic_open
from .early_exit import found_targets
from .fp_sampling import predict_instances
from .input_space import PixelSpace


class ObjectBank:
    """Crops of synthesized objects by class, to start new batches from.

    Args:
        max_per_class (int): Crops kept per class, the newest. Defaults to
            64.
        score_thr (float): Smallest teacher score for a target to count as
            found (and its crop to enter the bank). Defaults to 0.3.
        iou_thr (float): Smallest IoU of that prediction with the target.
            Defaults to 0.5.
        recolour (bool): Paste each crop with its RGB channels in a random
            order (drawn from the composition's generator). Defaults to
            False.
        feather (float): Fraction of each side of a pasted crop over which
            it blends into the noise underneath, in [0, 0.5]. Defaults to
            0.0 (a hard rectangle).
    """

    def __init__(self,
                 max_per_class: int = 64,
                 score_thr: float = 0.3,
                 iou_thr: float = 0.5,
                 recolour: bool = False,
                 feather: float = 0.0) -> None:
        if not isinstance(max_per_class, int) or max_per_class < 1:
            raise ValueError('recombine: max_per_class must be an int >= 1, '
                             f'got {max_per_class!r}')
        for key, value in (('score_thr', score_thr), ('iou_thr', iou_thr)):
            if not 0 <= value <= 1:
                raise ValueError(f'recombine: {key} must be in [0, 1], got '
                                 f'{value!r}')
        self.max_per_class = max_per_class
        self.score_thr = float(score_thr)
        self.iou_thr = float(iou_thr)
        if not isinstance(recolour, bool):
            raise ValueError('recombine: recolour must be True or False, got '
                             f'{recolour!r}')
        self.recolour = recolour
        if isinstance(feather, bool) or \
                not isinstance(feather, (int, float)) or \
                not 0 <= feather <= 0.5:
            raise ValueError('recombine: feather must be a number in '
                             f'[0, 0.5], got {feather!r}')
        self.feather = float(feather)
        self._crops: Dict[int, List[Tensor]] = {}
        #: Batches whose objects were offered to the bank (callers count).
        self.batches = 0

    def __len__(self) -> int:
        """Number of crops held, over all classes."""
        return sum(len(crops) for crops in self._crops.values())

    def classes(self) -> List[int]:
        """The labels that have at least one crop, sorted."""
        return sorted(k for k, v in self._crops.items() if v)

    def describe(self) -> str:
        """What the bank holds, for a log line."""
        return (f'{len(self)} objects of classes {self.classes()} from '
                f'{self.batches} batches')

    @torch.no_grad()
    def add_found(self, teacher: nn.Module, images: Tensor,
                  boxes: Sequence[Tensor], labels: Sequence[Tensor]) -> int:
        """Adds the crops of the targets the teacher finds in ``images``.

        Args:
            teacher (nn.Module): The mmdet teacher the images were made for
                (put in eval mode for the call, restored after).
            images (Tensor): (N, H, W, 3) uint8 RGB images.
            boxes (Sequence[Tensor]): Per image (K_i, 4) xyxy targets in
                pixels of ``images``.
            labels (Sequence[Tensor]): Per image (K_i,) int64 labels.

        Returns:
            int: The number of crops added.
        """
        check_rgb_uint8(images)
        chw = images.permute(0, 3, 1, 2)
        found = self._found_masks(teacher, chw, boxes, labels)
        added = 0
        for img, b, lb, keep in zip(chw, boxes, labels, found):
            for box, label in zip(b[keep], lb[keep]):
                crop = _crop(img, box)
                if crop is not None:
                    self._push(int(label), crop)
                    added += 1
        return added

    def compose(self, background: Tensor, boxes: Sequence[Tensor],
                labels: Sequence[Tensor], space: PixelSpace,
                generator: Optional[torch.Generator] = None) -> Tensor:
        """Pastes a crop of each target's class at its box.

        Args:
            background (Tensor): (N, 3, h, w) model-space images (the
                noise a cold batch starts from); pasted in place and
                returned.
            boxes (Sequence[Tensor]): Per image (K_i, 4) xyxy boxes in
                pixels of ``background``.
            labels (Sequence[Tensor]): Per image (K_i,) int64 labels.
            space (PixelSpace): The teacher's input space (uint8 crops are
                converted with it).
            generator (torch.Generator, optional): Draws the crop of each
                box. Defaults to None (torch's global generator).

        Returns:
            Tensor: ``background`` with the crops, in model space.
        """
        h, w = background.shape[-2:]
        for i, (b, lb) in enumerate(zip(boxes, labels)):
            for box, label in zip(b.tolist(), lb.tolist()):
                crops = self._crops.get(int(label))
                if not crops:
                    continue
                pick = int(torch.randint(len(crops), (1, ),
                                         generator=generator))
                crop = crops[pick]
                if self.recolour:
                    crop = crop[torch.randperm(3, generator=generator)]
                x0, y0, x1, y1 = pixel_box(box, w, h)
                patch = F.interpolate(
                    crop[None].float(),
                    size=(y1 - y0, x1 - x0),
                    mode='bilinear',
                    align_corners=False)
                patch = space.to_model(patch).to(background)[0]
                if self.feather > 0:
                    alpha = feather_mask(y1 - y0, x1 - x0,
                                         self.feather).to(background)
                    under = background[i, :, y0:y1, x0:x1]
                    patch = alpha * patch + (1 - alpha) * under
                background[i, :, y0:y1, x0:x1] = patch
        return space.clamp_(background)

    def save(self, path: str) -> None:
        """Writes the bank (crops, settings, ``batches``) to ``path``,
        under a temporary name first."""
        state = dict(
            max_per_class=self.max_per_class,
            score_thr=self.score_thr,
            iou_thr=self.iou_thr,
            batches=self.batches,
            crops=self._crops)
        with atomic_open(path) as f:
            torch.save(state, f)

    def load(self, path: str) -> None:
        """Replaces the crops and ``batches`` with those saved at ``path``.

        Raises:
            ValueError: The file was saved with other bank settings.
        """
        state = torch.load(path, map_location='cpu', weights_only=True)
        if 'crops' not in state:
            raise ValueError(
                f'{path} holds no object bank (a generator of '
                "recombine.source='amortised'?); delete it to refill the "
                'bank, or restore that source')
        saved = tuple(state[k] for k in ('max_per_class', 'score_thr',
                                         'iou_thr'))
        if saved != (self.max_per_class, self.score_thr, self.iou_thr):
            raise ValueError(
                f'{path} holds an object bank of other settings '
                f'(max_per_class, score_thr, iou_thr = {saved}); delete it '
                'to refill the bank, or restore those settings')
        self._crops = {int(k): list(v) for k, v in state['crops'].items()}
        self.batches = int(state['batches'])

    def _push(self, label: int, crop: Tensor) -> None:
        crops = self._crops.setdefault(label, [])
        crops.append(crop.clone())
        del crops[:-self.max_per_class]

    def _found_masks(self, teacher: nn.Module, chw: Tensor,
                     boxes: Sequence[Tensor],
                     labels: Sequence[Tensor]) -> List[Tensor]:
        """Per image (K_i,) bool: targets the teacher detects."""
        device = next(teacher.parameters()).device
        space = PixelSpace.from_preprocessor(teacher.data_preprocessor).to(
            device)
        h, w = chw.shape[-2:]
        meta = dict(img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w),
                    batch_input_shape=(h, w), scale_factor=(1.0, 1.0))
        samples = [DetDataSample(metainfo=meta) for _ in range(len(chw))]
        was_training = teacher.training
        teacher.eval()
        try:
            preds = predict_instances(teacher, space.to_model(chw.to(device)),
                                      samples)
        finally:
            teacher.train(was_training)
        return [
            found_targets(p, torch.as_tensor(b).reshape(-1, 4),
                          torch.as_tensor(lb), self.score_thr, self.iou_thr)
            for p, b, lb in zip(preds, boxes, labels)
        ]


def check_rgb_uint8(images: Tensor) -> None:
    """Raises ``ValueError`` unless ``images`` is (N, H, W, 3) uint8 (the
    written images a warm-start source is offered)."""
    if images.dtype != torch.uint8 or images.dim() != 4 or \
            images.shape[-1] != 3:
        raise ValueError('images must be (N, H, W, 3) uint8, got '
                         f'{images.dtype} {tuple(images.shape)}')


def feather_mask(h: int, w: int, feather: float) -> Tensor:
    """Weights of a pasted crop: 1 inside, falling to 0 towards its sides.

    Each side's outer ``feather`` fraction ramps with a raised cosine,
    ``(1 - cos(pi * d / (feather * n))) / 2`` at distance ``d`` (pixel
    centres) from a side of length ``n``; the mask is the product of the
    row and column ramps.

    Args:
        h (int): Crop height in pixels.
        w (int): Crop width in pixels.
        feather (float): Ramp width as a fraction of each side, in
            (0, 0.5].

    Returns:
        Tensor: (h, w) float weights in [0, 1].
    """
    def ramp(n: int) -> Tensor:
        centre = torch.arange(n, dtype=torch.float32) + 0.5
        dist = torch.minimum(centre, n - centre)
        t = (dist / (feather * n)).clamp(max=1.0)
        return 0.5 - 0.5 * torch.cos(torch.pi * t)

    return ramp(h)[:, None] * ramp(w)[None, :]


def pixel_box(box: Sequence[float], w: int,
              h: int) -> Tuple[int, int, int, int]:
    """Integer pixel box (x0, y0, x1, y1) inside (w, h), at least 1x1."""
    x0 = min(max(int(box[0]), 0), w - 1)
    y0 = min(max(int(box[1]), 0), h - 1)
    x1 = min(max(int(round(box[2])), x0 + 1), w)
    y1 = min(max(int(round(box[3])), y0 + 1), h)
    return x0, y0, x1, y1


def _crop(img: Tensor, box: Tensor) -> Optional[Tensor]:
    """The (3, h, w) pixels of ``img`` (3, H, W) inside ``box``; None if
    the box covers less than 2x2 pixels."""
    h, w = img.shape[-2:]
    x0, y0, x1, y1 = pixel_box(box.tolist(), w, h)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    return img[:, y0:y1, x0:x1]
