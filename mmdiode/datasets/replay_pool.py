"""A bounded pool of synthesized detection images on disk (a replay buffer).

On-the-fly data-free distillation synthesizes images while the student
trains; the pool keeps the most recent ones for the data loader. Layout of
the pool folder::

    POOL_DIR/
      meta.json                     # {"classes": [...]}, the teacher's names
      index_rank{r}.json            # rank r's entries (oldest first), next_id
      images/rank{r}_{n:08d}.png    # image n written by rank r (RGB PNG)
                                    # (warm-start images are referenced)
      annotations.json              # COCO view, written by dump_coco()

Every rank writes only its own index and its own image names, so ranks never
race; readers merge the indexes of all ranks. Each file is written under a
temporary name and renamed (``os.replace`` is atomic on POSIX): images before
the index that references them, and evicted images are deleted only after an
index without them was written. A reader therefore never sees a half-written
file; a reader holding an index read before an eviction may find one of its
images gone and must re-read the index (:class:`BoxSamplerDataset` does).
"""
import glob
import json
import os
import os.path as osp
import re
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

from ..utils.cli import ConfigError
from ..utils.fileio import atomic_open, dump_json_atomic

_INDEX_RE = re.compile(r'^index_rank(\d+)\.json$')
# Pixels a box may overshoot the image border before it is an error.
_BORDER_TOLERANCE = 0.5


class PoolEntry(NamedTuple):
    """One image of the pool.

    Attributes:
        file (str): Path of the RGB PNG (inside the pool folder).
        bboxes (np.ndarray): float32 xyxy targets in pixels, shape (K, 4).
        labels (np.ndarray): int64 class indices, shape (K,).
    """
    file: str
    bboxes: np.ndarray
    labels: np.ndarray


class ReplayPool:
    """Synthesized images and their final targets, evicting the oldest.

    Writers (one per rank) call :meth:`add` or :meth:`warm_start` with their
    rank; readers (any process, e.g. data loader workers) call
    :meth:`entries` or ``len()``, which re-read an index only when its file
    changed on disk (its mtime, inode or size), so they see the writers'
    new images without being told.

    Args:
        pool_dir (str): The pool folder (created if missing).
        max_size (int): Most images one rank's index keeps; :meth:`add`
            evicts that rank's oldest images beyond it (the pool holds up to
            ``max_size`` x ranks images). Defaults to 2000.
        classes (Sequence[str], optional): The teacher's class names, in its
            label order. Recorded in ``meta.json`` on first use and checked
            against the recorded ones later; None reads them from
            ``meta.json`` when a writer has recorded them (readers).
            Defaults to None.
    """

    def __init__(self,
                 pool_dir: str,
                 max_size: int = 2000,
                 classes: Optional[Sequence[str]] = None) -> None:
        if max_size < 1:
            raise ValueError(f'max_size must be >= 1, got {max_size}')
        self.pool_dir = pool_dir
        self.max_size = max_size
        os.makedirs(osp.join(pool_dir, 'images'), exist_ok=True)
        self._classes: Optional[Tuple[str, ...]] = None
        if classes is not None:
            self._record_classes(tuple(classes))
        # Reader cache: index path -> (file signature, parsed index).
        self._indexes: Dict[str, Tuple[tuple, dict]] = {}
        self._entries: List[PoolEntry] = []
        # Lower bounds of the next image numbers, from load_state_dict().
        self._min_next_ids: Dict[int, int] = {}

    # ------------------------------------------------------------------
    # Classes

    @property
    def classes(self) -> Optional[Tuple[str, ...]]:
        """The recorded class names (None while no writer recorded them)."""
        if self._classes is None and osp.exists(self._meta_path):
            self._classes = tuple(_load_json(self._meta_path)['classes'])
        return self._classes

    @property
    def _meta_path(self) -> str:
        return osp.join(self.pool_dir, 'meta.json')

    def _record_classes(self, classes: Tuple[str, ...]) -> None:
        if not classes:
            raise ValueError('classes is empty')
        recorded = self.classes
        if recorded is None:
            # Ranks starting together write identical content; the rename
            # makes the race harmless.
            dump_json_atomic(dict(classes=list(classes)), self._meta_path)
        elif recorded != classes:
            raise ValueError(
                f'the pool {self.pool_dir} holds images of the classes '
                f'{list(recorded)}, not {list(classes)}; use another pool_dir')
        self._classes = classes

    # ------------------------------------------------------------------
    # Reading

    def refresh(self) -> bool:
        """Re-reads the rank indexes that changed on disk.

        Returns:
            bool: Whether any index was added, changed or removed.
        """
        found = {}
        for path in glob.glob(osp.join(self.pool_dir, 'index_rank*.json')):
            if _INDEX_RE.match(osp.basename(path)):
                found[path] = _signature(path)
        cached = {p: sig for p, (sig, _) in self._indexes.items()}
        if found == cached:
            return False
        # A file replaced between stat and read gives newer content under
        # the older signature: it is merely read once more next time.
        self._indexes = {
            path: (sig, self._indexes[path][1]
                   if cached.get(path) == sig else _load_json(path))
            for path, sig in found.items()
        }
        self._entries = [
            self._entry(item) for path in sorted(self._indexes, key=_rank_of)
            for item in self._indexes[path][1]['images']
        ]
        return True

    def entries(self) -> List[PoolEntry]:
        """All ranks' images, rank by rank, oldest first within a rank."""
        self.refresh()
        return list(self._entries)

    def __len__(self) -> int:
        self.refresh()
        return len(self._entries)

    @property
    def num_added(self) -> int:
        """Images ever added by all ranks (evicted ones included); it
        changes whenever the pool's content does."""
        self.refresh()
        return sum(index['next_id'] for _, index in self._indexes.values())

    def check_images(self, img_size: Optional[int] = None) -> None:
        """Checks that every indexed image exists (and has the given size).

        Called by a writer before it uses a pool it did not create: a pool
        folder edited by hand, or written by a run of another config.

        Args:
            img_size (int, optional): The side every image must have.
                Defaults to None (any size).

        Raises:
            ValueError: Naming the first missing or other-sized image.
        """
        self.refresh()
        items = [item for _, index in self._indexes.values()
                 for item in index['images']]
        missing = [item['file_name'] for item in items
                   if not osp.isfile(osp.join(self.pool_dir,
                                              item['file_name']))]
        if missing:
            raise ValueError(
                f'the pool {self.pool_dir} misses {len(missing)} of its '
                f'{len(items)} indexed images (first: {missing[0]}); it was '
                'changed by hand: move it away or use another pool_dir')
        other = [item for item in items if img_size is not None and (
            item['height'], item['width']) != (img_size, img_size)]
        if other:
            raise ValueError(
                f'the pool {self.pool_dir} holds {other[0]["width"]}x'
                f'{other[0]["height"]} images, not {img_size}x{img_size}: '
                'it was written by another config; use another pool_dir')

    def _entry(self, item: dict) -> PoolEntry:
        return PoolEntry(file=osp.join(self.pool_dir, item['file_name']),
                         bboxes=np.asarray(item['bboxes'],
                                           np.float32).reshape(-1, 4),
                         labels=np.asarray(item['labels'],
                                           np.int64).reshape(-1))

    # ------------------------------------------------------------------
    # Writing

    def add(self, images: Any, layouts: Sequence[Any], rank: int = 0) -> None:
        """Adds images with their targets to ``rank``'s index.

        Args:
            images (np.ndarray | Tensor): uint8 RGB images, (N, H, W, 3).
            layouts (Sequence): N targets, each with ``bboxes`` ((K, 4) xyxy
                pixels) and ``labels`` ((K,) class indices), arrays or
                tensors (a :class:`Layout` or a ``(bboxes, labels)`` pair).
            rank (int): The writing rank. Defaults to 0.
        """
        pixels = _as_numpy(images)
        if pixels.dtype != np.uint8 or pixels.ndim != 4 or \
                pixels.shape[-1] != 3:
            raise ValueError('images must be uint8 of shape (N, H, W, 3), got'
                             f' {pixels.dtype} {tuple(pixels.shape)}')
        if len(pixels) != len(layouts):
            raise ValueError(f'{len(pixels)} images but {len(layouts)} '
                             'layouts')
        index = self._own_index(rank)
        items = []
        for img, layout in zip(pixels, layouts):
            bboxes, labels = self._checked_targets(layout, img.shape[:2])
            item = self._new_item(index,
                                  img.shape[:2],
                                  bboxes,
                                  labels,
                                  file_name=_own_file_name(
                                      rank, index['next_id']))
            self._write_png(item['file_name'], img)
            items.append(item)
        self._commit(index, items, rank)

    def warm_start(self,
                   coco_dir: str,
                   rank: int = 0,
                   world_size: int = 1) -> int:
        """Imports this rank's share of a data set from tools/synthesize.py.

        The images are referenced, not copied: a synthesized COCO-sized set
        is not duplicated on disk, and evicting them only drops them from
        the index (the pool deletes only files it wrote). The data set must
        therefore stay in place while the pool is used. Rank ``r`` takes the
        images at positions ``p % world_size == r`` (sorted by image id), at
        most ``max_size`` of them. Category names are mapped to the pool's
        classes; crowd boxes are skipped.

        Args:
            coco_dir (str): Folder with ``annotations.json`` (file names
                relative to it), as written by ``SyntheticCocoWriter``.
            rank (int): The importing rank. Defaults to 0.
            world_size (int): Number of ranks. Defaults to 1.

        Returns:
            int: Number of images imported.
        """
        if not 0 <= rank < world_size:
            raise ValueError(f'rank {rank} is outside [0, {world_size})')
        if self.classes is None:
            raise ValueError('warm_start needs the pool\'s classes: create '
                             'the pool with classes=...')
        ann_file = osp.join(coco_dir, 'annotations.json')
        if not osp.isfile(ann_file):
            raise FileNotFoundError(
                f'warm_start: {ann_file} not found; pass the output folder '
                'of tools/synthesize.py')
        coco = _load_json(ann_file)
        label_of = self._labels_of_categories(coco, ann_file)
        targets: Dict[int, List[dict]] = {}
        for ann in coco.get('annotations', []):
            if not ann.get('iscrowd'):
                targets.setdefault(ann['image_id'], []).append(ann)
        images = sorted(coco.get('images', []), key=lambda i: i['id'])
        share = images[rank::world_size][:self.max_size]
        index = self._own_index(rank)
        items = []
        for img in share:
            path = osp.abspath(osp.join(coco_dir, img['file_name']))
            if not osp.isfile(path):
                raise FileNotFoundError(
                    f'warm_start: image {path} of {ann_file} is missing')
            anns = targets.get(img['id'], [])
            shape = (img['height'], img['width'])
            bboxes, labels = self._checked_targets(
                ([[x, y, x + w, y + h]
                  for x, y, w, h in (a['bbox'] for a in anns)
                  ], [label_of[a['category_id']] for a in anns]), shape)
            items.append(
                self._new_item(index, shape, bboxes, labels, file_name=path))
        self._commit(index, items, rank)
        return len(items)

    def remove_orphans(self, rank: int = 0) -> int:
        """Deletes ``rank``'s image files its index does not reference.

        A writer killed between writing images and their index, or between
        an eviction and the deletion, leaves such files (and temporaries).

        Args:
            rank (int): The rank whose files are checked. Defaults to 0.

        Returns:
            int: Number of files deleted.
        """
        referenced = {
            osp.basename(item['file_name'])
            for item in self._own_index(rank)['images']
        }
        folder = osp.join(self.pool_dir, 'images')
        # Temporaries are the final name with a leading dot and a suffix.
        own = (f'rank{rank}_', f'.rank{rank}_')
        orphans = [
            name for name in os.listdir(folder)
            if name.startswith(own) and name not in referenced
        ]
        for name in orphans:
            os.remove(osp.join(folder, name))
        return len(orphans)

    def _own_index(self, rank: int) -> dict:
        """``rank``'s index, fresh from disk (the writer is its only
        owner)."""
        if rank < 0:
            raise ValueError(f'rank must be >= 0, got {rank}')
        path = self._index_path(rank)
        index = _load_json(path) if osp.exists(path) else dict(
            rank=rank, next_id=0, images=[])
        index['next_id'] = max(index['next_id'],
                               self._min_next_ids.get(rank, 0))
        return index

    def _index_path(self, rank: int) -> str:
        return osp.join(self.pool_dir, f'index_rank{rank}.json')

    def _checked_targets(
            self, layout: Any,
            shape: Tuple[int, int]) -> Tuple[np.ndarray, np.ndarray]:
        """(K, 4) boxes clipped to the image and (K,) labels of a layout."""
        bboxes, labels = (layout.bboxes, layout.labels) if hasattr(
            layout, 'bboxes') else layout
        bboxes = _as_numpy(bboxes).astype(np.float64).reshape(-1, 4)
        labels = _as_numpy(labels).astype(np.int64).reshape(-1)
        if len(bboxes) != len(labels):
            raise ValueError(f'{len(bboxes)} boxes but {len(labels)} labels')
        classes = self.classes
        if classes and ((labels < 0) | (labels >= len(classes))).any():
            raise ValueError(f'labels {labels.tolist()} are outside '
                             f'[0, {len(classes)})')
        h, w = shape
        limit = np.array([w, h, w, h], np.float64)
        # Rescaled targets may overshoot the border by rounding errors.
        inside = ((bboxes >= -_BORDER_TOLERANCE) &
                  (bboxes <= limit + _BORDER_TOLERANCE)).all(1)
        bboxes = np.clip(bboxes, 0, limit)
        ok = inside & (bboxes[:, 2] > bboxes[:, 0]) & (bboxes[:, 3]
                                                       > bboxes[:, 1])
        if not ok.all():
            raise ValueError('boxes must be non-empty xyxy inside the '
                             f'{w}x{h} image, got {bboxes[~ok].tolist()}')
        return bboxes, labels

    @staticmethod
    def _new_item(index: dict, shape: Tuple[int, int], bboxes: np.ndarray,
                  labels: np.ndarray, file_name: str) -> dict:
        """A new index entry numbered ``index['next_id']`` (advanced);
        ``file_name`` is relative to the pool (own files) or absolute
        (referenced files)."""
        number = index['next_id']
        index['next_id'] += 1
        return dict(id=number,
                    file_name=file_name,
                    height=int(shape[0]),
                    width=int(shape[1]),
                    bboxes=bboxes.tolist(),
                    labels=labels.tolist())

    def _write_png(self, file_name: str, img: np.ndarray) -> None:
        path = osp.join(self.pool_dir, file_name)
        with atomic_open(path) as f:
            Image.fromarray(img).save(f, format='PNG')

    def _commit(self, index: dict, items: List[dict], rank: int) -> None:
        """Writes the index with ``items``, then deletes the evicted images
        the pool wrote itself (referenced ones stay)."""
        index['images'] += items
        evicted = index['images'][:-self.max_size]
        index['images'] = index['images'][-self.max_size:]
        dump_json_atomic(index, self._index_path(rank))
        for item in evicted:
            path = osp.join(self.pool_dir, item['file_name'])
            if not osp.isabs(item['file_name']) and osp.exists(path):
                os.remove(path)

    def _labels_of_categories(self, coco: dict, ann_file: str) -> dict:
        position = {name: i for i, name in enumerate(self.classes)}
        label_of = {}
        for cat in coco.get('categories', []):
            if cat['name'] not in position:
                raise ValueError(
                    f'{ann_file}: category {cat["name"]!r} is not one of the '
                    f'pool\'s classes {list(self.classes)}')
            label_of[cat['id']] = position[cat['name']]
        return label_of

    # ------------------------------------------------------------------
    # State and COCO view

    def state_dict(self) -> Dict[str, Dict[int, int]]:
        """The next image number of every rank (they survive a resume).

        Returns:
            dict: ``{'next_ids': {rank: next_id}}``.
        """
        self.refresh()
        return dict(
            next_ids={
                _rank_of(path): index['next_id']
                for path, (_, index) in self._indexes.items()
            })

    def load_state_dict(self, state: Dict[str, Dict[int, int]]) -> None:
        """Restores the next image numbers (from a checkpoint).

        The pool folder keeps its own counters; a checkpoint's are lower
        bounds, so names are never reused even if the folder was emptied.

        Args:
            state (dict): As returned by :meth:`state_dict`.
        """
        self._min_next_ids = {
            int(rank): int(n)
            for rank, n in state['next_ids'].items()
        }

    def to_coco(self) -> dict:
        """The merged pool as a COCO dict (ids 1..N in :meth:`entries`
        order, file names relative to ``pool_dir``, category ids 1..C)."""
        if self.classes is None:
            raise ValueError('the pool has no recorded classes')
        images, annotations = [], []
        self.refresh()
        for path in sorted(self._indexes, key=_rank_of):
            for item in self._indexes[path][1]['images']:
                image_id = len(images) + 1
                images.append(
                    dict(id=image_id,
                         file_name=item['file_name'],
                         height=item['height'],
                         width=item['width']))
                for (x0, y0, x1, y1), label in zip(item['bboxes'],
                                                   item['labels']):
                    annotations.append(
                        dict(id=len(annotations) + 1,
                             image_id=image_id,
                             category_id=label + 1,
                             bbox=[x0, y0, x1 - x0, y1 - y0],
                             area=(x1 - x0) * (y1 - y0),
                             iscrowd=0))
        categories = [
            dict(id=i + 1, name=name) for i, name in enumerate(self.classes)
        ]
        return dict(images=images,
                    annotations=annotations,
                    categories=categories)

    def dump_coco(self) -> str:
        """Writes :meth:`to_coco` to ``pool_dir/annotations.json``.

        mmdet's ``CocoDataset`` then loads a snapshot of the pool with
        ``data_root=pool_dir``, ``ann_file='annotations.json'``,
        ``data_prefix=dict(img='')`` and ``metainfo=dict(classes=...)``.

        Returns:
            str: The path written.
        """
        path = osp.join(self.pool_dir, 'annotations.json')
        dump_json_atomic(self.to_coco(), path)
        return path


def _own_file_name(rank: int, number: int) -> str:
    return f'images/rank{rank}_{number:08d}.png'


def _signature(path: str) -> tuple:
    """Changes whenever the file is replaced (a new inode) or rewritten."""
    st = os.stat(path)
    return st.st_mtime_ns, st.st_ino, st.st_size


def _rank_of(index_path: str) -> int:
    return int(_INDEX_RE.match(osp.basename(index_path)).group(1))


def _load_json(path: str) -> dict:
    """A json file of the pool; a corrupt one is a :class:`ConfigError`
    naming it (the pool writes its files atomically, so only another
    program or a hand edit leaves one)."""
    with open(path, encoding='utf-8') as f:
        text = f.read()
    try:
        content = json.loads(text)
    except ValueError as e:
        raise ConfigError(f'{path} is not valid json ({e}); it was not '
                          'written by ReplayPool: move the pool folder away '
                          'or use another pool_dir') from e
    if not isinstance(content, dict):
        raise ConfigError(f'{path} holds a {type(content).__name__}, not the '
                          'json object ReplayPool writes; use another '
                          'pool_dir')
    return content


def _as_numpy(x: Any) -> np.ndarray:
    if hasattr(x, 'detach'):  # torch.Tensor
        x = x.detach().cpu().numpy()
    return np.asarray(x)
