"""Target layouts (boxes and classes) for synthesizing detection images.

A *layout* is what the synthesized image should contain: boxes (xyxy,
pixels) and class labels. The sampler is indexed: ``sample(index)`` is a pure
function of ``(seed, index)``, so a resumed or sharded generation job
regenerates exactly the same layout for a given global image index.
"""
import json
import numbers
from typing import (TYPE_CHECKING, Dict, List, NamedTuple, Optional, Sequence,
                    Tuple, Union)

import numpy as np

if TYPE_CHECKING:
    import torch

from mmdet.registry import TASK_UTILS

STRATEGIES = ('one-box', 'multi-box', 'tiling', 'from-annotations')

# Streams of the seed sequence: per-image draws use the entropy
# ``[seed, index]``; the class-balanced cycle uses ``[seed, epoch]`` with this
# spawn key, so the two never share a stream.
_LABEL_CYCLE_KEY = (1, )


class Layout(NamedTuple):
    """Targets of one synthesized image.

    Attributes:
        bboxes (np.ndarray): float32 boxes (x0, y0, x1, y1) in pixels,
            shape (K, 4).
        labels (np.ndarray): int64 class indices into the sampler's
            ``classes``, shape (K,).
    """
    bboxes: np.ndarray
    labels: np.ndarray

    def as_tensors(self) -> Tuple['torch.Tensor', 'torch.Tensor']:
        """(boxes, labels) as torch tensors, the synthesizers' layout form."""
        import torch
        return torch.from_numpy(self.bboxes), torch.from_numpy(self.labels)


def box_iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one xyxy box with each of ``boxes``.

    Args:
        box (np.ndarray): Shape (4,).
        boxes (np.ndarray): Shape (M, 4).

    Returns:
        np.ndarray: Shape (M,).
    """
    x0 = np.maximum(box[0], boxes[:, 0])
    y0 = np.maximum(box[1], boxes[:, 1])
    x1 = np.minimum(box[2], boxes[:, 2])
    y1 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / (area + areas - inter)


@TASK_UTILS.register_module()
class BoxLayoutSampler:
    """Samples target layouts for square synthesized images.

    Strategies:

    - ``one-box`` (DIODE): one box per image, class uniform, width and
      height drawn independently from ``U(min_size, max_size)`` (fractions of
      the image side), position uniform among those keeping the box inside.
    - ``multi-box``: N boxes, N uniform in ``[min_boxes, max_boxes]``, sizes
      as above, each placed by rejection sampling (at most ``max_attempts``
      tries per box) so that every pair has IoU <= ``max_iou``. A box that
      finds no place ends the layout early; fewer than ``min_boxes`` placed
      boxes is an error.
    - ``tiling``: the image is cut into ``tiles_per_side`` x
      ``tiles_per_side`` cells; each cell holds one one-box layout drawn at
      the cell's size (``min_size``/``max_size`` are then fractions of the
      cell) and offset into it. With several ``tiles_per_side`` values,
      each image draws its grid from them, uniformly: layouts of varying
      density, whose box sizes span the union of the grids' ranges (e.g.
      ``(2, 3)`` at 128 px with sizes 0.26-1.0: 11-43 px boxes in 3x3
      images, 17-64 px in 2x2 ones).
    - ``from-annotations``: the boxes and labels of a COCO json's images,
      rescaled to ``img_size`` (a non-square image is stretched); images are
      never read. Image ``index % num_images`` (images sorted by id) gives
      layout ``index``. Crowd boxes and boxes under 1 px after rescaling are
      dropped, images left without boxes are skipped. Labels are mapped from
      category names to positions in ``classes``.

    Sizes are fractions of the image side (of the cell for ``tiling``) so one
    config serves every resolution, as DIODE's 0.2-0.8 does.

    With ``class_balanced``, labels are read from a cycle over the classes:
    global label slot ``s`` takes position ``s % C`` of a permutation drawn
    for epoch ``s // C``. Image ``index`` owns the slots
    ``[index * S, (index + 1) * S)`` where S is the most boxes an image can
    hold (1, ``max_boxes`` or the largest ``tiles_per_side``, squared); its
    boxes use the first slots. Over images ``0..n-1`` class counts then
    differ by at most one whenever every image fills its slots (``one-box``,
    ``tiling`` with one grid, ``multi-box`` with ``min_boxes ==
    max_boxes``), and are balanced in expectation otherwise.

    Args:
        classes (Sequence[str]): The teacher's class names, in its label
            order (take them from the teacher's ``dataset_meta``).
        img_size (int): Side of the square images in pixels. Defaults to 160
            (DIODE's first stage).
        strategy (str): One of ``STRATEGIES``. Defaults to ``'one-box'``.
        min_size (float): Smallest box side as a fraction of the image (or
            cell) side. Defaults to 0.2 (DIODE).
        max_size (float): Largest box side, same unit. Defaults to 0.8
            (DIODE).
        max_aspect_ratio (float, optional): If given, the height is drawn
            within ``[w / r, w * r]`` (intersected with the size range) so no
            box is more elongated than ``r``. None draws width and height
            independently (DIODE). Defaults to None.
        min_boxes (int): Fewest boxes for ``multi-box``. Defaults to 1.
        max_boxes (int): Most boxes for ``multi-box``. Defaults to 4.
        max_iou (float): Largest pairwise IoU for ``multi-box``. Defaults to
            0.35 (DIODE's overlap limit for added false positives).
        max_attempts (int): Placement tries per box for ``multi-box``.
            Defaults to 100.
        tiles_per_side (int | Sequence[int]): Cells per side for
            ``tiling``, or the grids an image draws its own from.
            Defaults to 2.
        ann_file (str, optional): COCO json for ``from-annotations``.
        class_balanced (bool): Cycle the classes instead of drawing them
            uniformly (not for ``from-annotations``). Defaults to False.
        seed (int): Seed of every random draw. Defaults to 0.
    """

    def __init__(self,
                 classes: Sequence[str],
                 img_size: int = 160,
                 strategy: str = 'one-box',
                 min_size: float = 0.2,
                 max_size: float = 0.8,
                 max_aspect_ratio: Optional[float] = None,
                 min_boxes: int = 1,
                 max_boxes: int = 4,
                 max_iou: float = 0.35,
                 max_attempts: int = 100,
                 tiles_per_side: Union[int, Sequence[int]] = 2,
                 ann_file: Optional[str] = None,
                 class_balanced: bool = False,
                 seed: int = 0) -> None:
        self.classes = tuple(classes)
        self.img_size = img_size
        self.strategy = strategy
        self.min_size = min_size
        self.max_size = max_size
        self.max_aspect_ratio = max_aspect_ratio
        self.min_boxes = min_boxes
        self.max_boxes = max_boxes
        self.max_iou = max_iou
        self.max_attempts = max_attempts
        self.tiles_per_side = tiles_per_side
        self._grids = tuple(tiles_per_side) if isinstance(
            tiles_per_side, (list, tuple, np.ndarray)) else (
                tiles_per_side, )
        self.ann_file = ann_file
        self.class_balanced = class_balanced
        self.seed = seed
        self._check_settings()
        self._annotated: List[Layout] = []
        if strategy == 'from-annotations':
            self._annotated = load_annotation_layouts(ann_file, self.classes,
                                                      img_size)

    @property
    def num_classes(self) -> int:
        """Number of classes C."""
        return len(self.classes)

    @property
    def slots_per_image(self) -> int:
        """Most boxes one layout can hold."""
        if self.strategy == 'multi-box':
            return self.max_boxes
        if self.strategy == 'tiling':
            return max(self._grids)**2
        return 1

    def _check_settings(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f'unknown layout strategy {self.strategy!r}; '
                             f'choose one of {STRATEGIES}')
        if not self.classes:
            raise ValueError('classes is empty: pass the teacher\'s class '
                             'names (its dataset_meta["classes"])')
        if self.img_size < 1:
            raise ValueError(f'img_size must be positive, got {self.img_size}')
        if not 0 < self.min_size <= self.max_size <= 1:
            raise ValueError(
                'box sizes are fractions of the image side and need '
                f'0 < min_size <= max_size <= 1, got '
                f'min_size={self.min_size}, max_size={self.max_size}')
        if self.max_aspect_ratio is not None and self.max_aspect_ratio < 1:
            raise ValueError('max_aspect_ratio must be >= 1, got '
                             f'{self.max_aspect_ratio}')
        if self.strategy == 'multi-box' and not (1 <= self.min_boxes <=
                                                 self.max_boxes):
            raise ValueError('multi-box needs 1 <= min_boxes <= max_boxes, '
                             f'got min_boxes={self.min_boxes}, '
                             f'max_boxes={self.max_boxes}')
        if self.max_attempts < 1:
            raise ValueError(
                f'max_attempts must be >= 1, got {self.max_attempts}')
        if not self._grids or any(
                not isinstance(k, numbers.Integral) or isinstance(k, bool)
                or k < 1 for k in self._grids):
            raise ValueError('tiles_per_side must be an integer >= 1 or a '
                             f'list of them, got {self.tiles_per_side!r}')
        if self.strategy == 'from-annotations':
            if self.ann_file is None:
                raise ValueError('strategy from-annotations needs ann_file')
            if self.class_balanced:
                raise ValueError(
                    'class_balanced does not apply to from-annotations: the '
                    'labels come from the annotation file')

    def sample(self, index: int) -> Layout:
        """The layout of global image ``index``.

        A pure function of ``(seed, index)``: the same index gives the same
        layout in any process, order or shard.

        Args:
            index (int): Global image index, >= 0.

        Returns:
            Layout: boxes (K, 4) float32 xyxy pixels, labels (K,) int64.
        """
        if index < 0:
            raise ValueError(f'layout index must be >= 0, got {index}')
        if self.strategy == 'from-annotations':
            # A copy, so a caller editing its targets cannot change later
            # samples.
            bboxes, labels = self._annotated[index % len(self._annotated)]
            return Layout(bboxes.copy(), labels.copy())
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, index]))
        if self.strategy == 'one-box':
            boxes = self._draw_box(rng, float(self.img_size))[None]
        elif self.strategy == 'multi-box':
            boxes = self._place_boxes(rng, index)
        else:
            boxes = self._tile_boxes(rng)
        labels = self._draw_labels(rng, index, len(boxes))
        return Layout(boxes.astype(np.float32), labels)

    def _draw_box(self, rng: np.random.Generator, side: float) -> np.ndarray:
        """One box inside a ``side`` x ``side`` square, shape (4,)."""
        w = rng.uniform(self.min_size, self.max_size)
        lo, hi = self.min_size, self.max_size
        if self.max_aspect_ratio is not None:
            # The interval always contains w, so it is never empty.
            lo = max(lo, w / self.max_aspect_ratio)
            hi = min(hi, w * self.max_aspect_ratio)
        h = rng.uniform(lo, hi)
        w, h = w * side, h * side
        x0 = rng.uniform(0.0, side - w)
        y0 = rng.uniform(0.0, side - h)
        return np.array([x0, y0, x0 + w, y0 + h], dtype=np.float64)

    def _place_boxes(self, rng: np.random.Generator, index: int) -> np.ndarray:
        """Rejection-samples boxes with pairwise IoU <= max_iou, (K, 4)."""
        num = int(rng.integers(self.min_boxes, self.max_boxes + 1))
        placed = np.zeros((0, 4))
        for _ in range(num):
            box = self._find_free_box(rng, placed)
            if box is None:
                break
            placed = np.concatenate([placed, box[None]])
        if len(placed) < self.min_boxes:
            raise ValueError(
                f'multi-box layout {index}: only {len(placed)} boxes fit but '
                f'min_boxes={self.min_boxes}, with max_iou={self.max_iou}, '
                f'min_size={self.min_size}, max_size={self.max_size}, '
                f'img_size={self.img_size} after max_attempts='
                f'{self.max_attempts} tries per box; lower min_boxes or the '
                'box sizes, or raise max_iou')
        return placed

    def _find_free_box(self, rng: np.random.Generator,
                       placed: np.ndarray) -> Optional[np.ndarray]:
        for _ in range(self.max_attempts):
            box = self._draw_box(rng, float(self.img_size))
            if not len(placed) or box_iou(box, placed).max() <= self.max_iou:
                return box
        return None

    def _tile_boxes(self, rng: np.random.Generator) -> np.ndarray:
        """One box per cell of a k x k grid, row-major, shape (k*k, 4); k
        drawn from the grids when there are several (one grid draws
        nothing, so its layouts stay those of an integer
        ``tiles_per_side``)."""
        k = self._grids[0] if len(self._grids) == 1 else int(
            rng.choice(self._grids))
        cell = self.img_size / k
        boxes = []
        for row in range(k):
            for col in range(k):
                offset = np.array([col, row, col, row]) * cell
                boxes.append(self._draw_box(rng, cell) + offset)
        return np.stack(boxes)

    def _draw_labels(self, rng: np.random.Generator, index: int,
                     num: int) -> np.ndarray:
        if not self.class_balanced:
            return rng.integers(0, self.num_classes, size=num, dtype=np.int64)
        first = index * self.slots_per_image
        return np.array(
            [self._cycled_label(s) for s in range(first, first + num)],
            dtype=np.int64)

    def _cycled_label(self, slot: int) -> int:
        epoch, pos = divmod(slot, self.num_classes)
        seq = np.random.SeedSequence([self.seed, epoch],
                                     spawn_key=_LABEL_CYCLE_KEY)
        return int(
            np.random.default_rng(seq).permutation(self.num_classes)[pos])


def load_annotation_layouts(ann_file: str, classes: Sequence[str],
                            img_size: int) -> List[Layout]:
    """Layouts of a COCO json's images, rescaled to ``img_size``.

    Args:
        ann_file (str): COCO json path (images are never read).
        classes (Sequence[str]): Class names; a label is the position of the
            category's name in it.
        img_size (int): Side of the square target images in pixels.

    Returns:
        list[Layout]: One layout per image that keeps a box, images sorted
        by id.
    """
    with open(ann_file, encoding='utf-8') as f:
        coco = json.load(f)
    names = {c['id']: c['name'] for c in coco.get('categories', [])}
    anns = [a for a in coco.get('annotations', []) if not a.get('iscrowd')]
    label_of = _category_labels(names, {a['category_id']
                                        for a in anns}, classes, ann_file)
    by_image: Dict[int, List[dict]] = {}
    for ann in anns:
        by_image.setdefault(ann['image_id'], []).append(ann)
    layouts = []
    for img in sorted(coco.get('images', []), key=lambda i: i['id']):
        layout = _rescaled_layout(
            by_image.get(img['id'], []), label_of,
            (img_size / img['width'], img_size / img['height']))
        if len(layout.labels):
            layouts.append(layout)
    if not layouts:
        raise ValueError(f'{ann_file} has no image with a non-crowd box of '
                         f'at least 1 px at img_size={img_size}')
    return layouts


def _category_labels(names: Dict[int, str], used_ids: set,
                     classes: Sequence[str], ann_file: str) -> Dict[int, int]:
    """Maps the used category ids to positions in ``classes`` by name."""
    unnamed = sorted(used_ids - set(names))
    if unnamed:
        raise ValueError(f'{ann_file}: annotations use category ids '
                         f'{unnamed} that its categories do not define')
    unknown = sorted({names[i] for i in used_ids} - set(classes))
    if unknown:
        raise ValueError(f'{ann_file}: categories {unknown} are not among '
                         f"the teacher's classes {tuple(classes)}")
    return {i: list(classes).index(names[i]) for i in used_ids}


def _rescaled_layout(anns: List[dict], label_of: Dict[int, int],
                     scale: Tuple[float, float]) -> Layout:
    boxes, labels = [], []
    sx, sy = scale
    for ann in anns:
        x, y, w, h = ann['bbox']
        w, h = w * sx, h * sy
        if w < 1 or h < 1:  # too small to be drawn at this resolution
            continue
        boxes.append([x * sx, y * sy, x * sx + w, y * sy + h])
        labels.append(label_of[ann['category_id']])
    return Layout(
        np.array(boxes, dtype=np.float32).reshape(-1, 4),
        np.array(labels, dtype=np.int64))
