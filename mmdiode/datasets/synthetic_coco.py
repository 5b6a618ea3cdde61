"""Resumable, shardable writer of a synthesized COCO detection data set.

Layout of the data root::

    DATA_ROOT/
      images/000000.png ...            # image of global index i: {i:06d}.png
      shards/job.json                  # the job's settings, checked on restart
      shards/rank{r}/batch_{b:06d}.json  # one record per finished batch
      annotations.json  meta.json      # written by merge()

The job is cut into batches of ``batch_size`` consecutive global indices;
batch ``b`` holds indices ``[b * batch_size, (b + 1) * batch_size)`` and
image ``i`` gets COCO image id ``i + 1``. A batch is finished once its record
exists. Every file is written under a temporary name and renamed
(``os.replace``, atomic on POSIX), images before the record, so a process
killed at any moment leaves either a complete record whose images all exist
or no record (the batch is redone and its images overwritten). Stray
temporary files are removed by :meth:`SyntheticCocoWriter.merge`.

Invalid images (``valid`` False, e.g. non-finite pixels) are not written:
the batch record lists their indices under ``invalid``. The caller
regenerates them (:meth:`SyntheticCocoWriter.invalid_indices`, then
:meth:`SyntheticCocoWriter.write_batch` with ``indices``; a fresh attempt
should vary the image initialisation, the layout stays that of the index).
:meth:`SyntheticCocoWriter.merge` refuses to run while any index is invalid,
so the final data set has exactly ``num_images`` images with ids
``1..num_images``.
"""
import glob
import json
import os
import os.path as osp
import re
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

from ..utils.fileio import (TMP_SUFFIX, atomic_open, dump_json_atomic,
                            load_json_object)

_RECORD_RE = re.compile(r'^batch_(\d+)\.json$')
_RANK_RE = re.compile(r'^rank(\d+)$')


def _as_numpy(x: Any) -> np.ndarray:
    if hasattr(x, 'tensor'):  # mmdet's box types (HorizontalBoxes)
        x = x.tensor
    if hasattr(x, 'detach'):  # torch.Tensor
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _to_uint8_hwc(images: Any) -> np.ndarray:
    """(N, 3, H, W) RGB, uint8 or float in [0, 1] -> uint8 (N, H, W, 3)."""
    arr = _as_numpy(images)
    if arr.ndim != 4 or arr.shape[1] != 3:
        raise ValueError('images must have shape (N, 3, H, W), got '
                         f'{tuple(arr.shape)}')
    if arr.dtype != np.uint8:
        if not np.issubdtype(arr.dtype, np.floating):
            raise ValueError('images must be uint8 or float in [0, 1], got '
                             f'dtype {arr.dtype}')
        finite = arr[np.isfinite(arr)]
        if finite.size and (finite.min() < 0 or finite.max() > 1):
            raise ValueError('float images must lie in [0, 1], got range '
                             f'[{finite.min():.3g}, {finite.max():.3g}]')
        arr = np.rint(np.nan_to_num(arr) * 255).astype(np.uint8)
    return np.ascontiguousarray(arr.transpose(0, 2, 3, 1))


class SyntheticCocoWriter:
    """Writes synthesized images and their targets as a COCO data set.

    The result loads in mmdet's ``CocoDataset`` as is, with
    ``data_root=data_root``, ``ann_file='annotations.json'``,
    ``data_prefix=dict(img='')`` and ``metainfo=dict(classes=classes)``.
    Category ids are ``1..C`` in the order of ``classes``.

    Sharding: rank ``r`` of ``world_size`` takes the batches ``b`` with
    ``b % world_size == r`` (:meth:`pending_batches`); ranks write into
    their own record folders and share ``images/``, whose names are unique
    per global index. Rank 0 calls :meth:`merge` once all ranks finished.

    Args:
        data_root (str): Output folder (created if missing).
        classes (Sequence[str]): The teacher's class names; label ``l`` is
            written as category id ``l + 1``.
        num_images (int): Images of the whole job.
        batch_size (int): Images per batch (the unit of resumption).
        seed (int): The generation seed, recorded in ``meta.json``.
            Defaults to 0.
        config (dict, optional): JSON-serialisable description of the
            generation settings, recorded in ``meta.json``. Defaults to None.

    Raises:
        ValueError: ``data_root`` already holds a job with other settings
            (its images would mix with this job's).
    """

    def __init__(self,
                 data_root: str,
                 classes: Sequence[str],
                 num_images: int,
                 batch_size: int,
                 seed: int = 0,
                 config: Optional[dict] = None) -> None:
        if not classes:
            raise ValueError('classes is empty')
        if num_images < 1 or batch_size < 1:
            raise ValueError('num_images and batch_size must be positive, '
                             f'got {num_images} and {batch_size}')
        self.data_root = data_root
        self.classes = tuple(classes)
        self.num_images = num_images
        self.batch_size = batch_size
        # The json round trip makes tuples lists, so a restarted job
        # compares equal to the recorded one.
        self.job = json.loads(
            json.dumps(
                dict(
                    classes=list(self.classes),
                    num_images=num_images,
                    batch_size=batch_size,
                    seed=seed,
                    config=config)))
        os.makedirs(osp.join(data_root, 'images'), exist_ok=True)
        os.makedirs(osp.join(data_root, 'shards'), exist_ok=True)
        self._check_or_record_job()

    @property
    def num_batches(self) -> int:
        """Batches of the job."""
        return -(-self.num_images // self.batch_size)

    @property
    def ann_file(self) -> str:
        """Path of the merged annotation file."""
        return osp.join(self.data_root, 'annotations.json')

    def batch_indices(self, batch: int) -> range:
        """Global image indices of ``batch``."""
        if not 0 <= batch < self.num_batches:
            raise ValueError(f'batch {batch} is outside [0, '
                             f'{self.num_batches}) for num_images='
                             f'{self.num_images}, batch_size='
                             f'{self.batch_size}')
        start = batch * self.batch_size
        return range(start, min(start + self.batch_size, self.num_images))

    def image_file_name(self, index: int) -> str:
        """File name of image ``index``, relative to ``data_root``."""
        return f'images/{index:06d}.png'

    def record_path(self, rank: int, batch: int) -> str:
        """Path of the record of ``batch`` written by ``rank``."""
        return osp.join(self.data_root, 'shards', f'rank{rank}',
                        f'batch_{batch:06d}.json')

    def done_batches(self, rank: Optional[int] = None) -> List[int]:
        """Finished batches recorded by ``rank`` (by any rank if None)."""
        return sorted(self._records(rank))

    def pending_batches(self, rank: int = 0, world_size: int = 1) -> List[int]:
        """Batches of ``rank`` that no rank has finished yet.

        Args:
            rank (int): This process's rank. Defaults to 0.
            world_size (int): Number of ranks. Defaults to 1.

        Returns:
            list[int]: Batch numbers ``b`` with ``b % world_size == rank``.
        """
        if not 0 <= rank < world_size:
            raise ValueError(f'rank {rank} is outside [0, {world_size})')
        done = set(self._records(None))
        return [
            b for b in range(rank, self.num_batches, world_size)
            if b not in done
        ]

    def read_batch(self, batch: int) -> Tuple[np.ndarray, List[np.ndarray],
                                              List[np.ndarray]]:
        """The written images of a finished batch, with their targets.

        Args:
            batch (int): A batch with a record.

        Returns:
            tuple: The images (N, H, W, 3) uint8 RGB in index order (invalid
            ones left out), and per image the (K_i, 4) float32 xyxy target
            boxes and (K_i,) int64 labels.
        """
        records = self._records(None)
        if batch not in records:
            raise ValueError(f'batch {batch} has no record yet')
        record = self._load(records[batch])
        entries = sorted(record['images'], key=lambda img: img['id'])
        by_image: Dict[int, List[dict]] = {img['id']: [] for img in entries}
        for ann in record['annotations']:
            by_image[ann['image_id']].append(ann)
        images, boxes, labels = [], [], []
        for img in entries:
            with Image.open(osp.join(self.data_root,
                                     img['file_name'])) as png:
                images.append(np.asarray(png.convert('RGB')))
            anns = by_image[img['id']]
            xywh = np.array([a['bbox'] for a in anns],
                            np.float64).reshape(-1, 4)
            boxes.append(
                np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]],
                               1).astype(np.float32))
            labels.append(
                np.array([a['category_id'] - 1 for a in anns], np.int64))
        return np.stack(images), boxes, labels

    def invalid_indices(self, rank: Optional[int] = None) -> List[int]:
        """Indices whose images were invalid and still await regeneration.

        Args:
            rank (int, optional): Only the records of this rank; all if None.

        Returns:
            list[int]: Sorted global indices.
        """
        out: List[int] = []
        for path in self._records(rank).values():
            out += self._load(path)['invalid']
        return sorted(out)

    def write_batch(self,
                    batch: int,
                    images: Any,
                    layouts: Sequence[Any],
                    valid: Optional[Any] = None,
                    rank: int = 0,
                    indices: Optional[Sequence[int]] = None) -> None:
        """Writes the images of a batch, then its record.

        Args:
            batch (int): Batch number.
            images (Tensor | np.ndarray): RGB images, shape (N, 3, H, W),
                uint8 or float in [0, 1].
            layouts (Sequence): N targets with ``bboxes`` ((K, 4) xyxy
                pixels) and ``labels`` ((K,) class indices), arrays or
                tensors or mmdet boxes (a :class:`Layout` or an
                ``InstanceData``).
            valid (Tensor | np.ndarray, optional): Bool mask (N,); images
                marked False are not written and are listed as invalid.
                None means all valid.
            rank (int): Rank whose folder receives a new record.
                Defaults to 0.
            indices (Sequence[int], optional): Global indices of the images.
                None means the whole batch (a first write). A batch that
                already has a record accepts only indices it lists as
                invalid (a regeneration); the record is then updated.
        """
        records = self._records(None)
        record = self._load(records[batch]) if batch in records else None
        indices = self._checked_indices(batch, indices, record)
        pixels = _to_uint8_hwc(images)
        valid = np.ones(len(indices), bool) if valid is None else \
            _as_numpy(valid).astype(bool).reshape(-1)
        if not len(pixels) == len(layouts) == len(valid) == len(indices):
            raise ValueError(
                f'batch {batch}: {len(pixels)} images, {len(layouts)} '
                f'layouts, {len(valid)} valid flags for {len(indices)} '
                'indices')
        if record is None:
            record = dict(batch=batch, images=[], annotations=[], invalid=[])
            path = self.record_path(rank, batch)
        else:
            path = records[batch]
        # Targets are checked before any file is written.
        annotations = [
            self._annotation_entries(index, layout) if ok else []
            for index, layout, ok in zip(indices, layouts, valid)
        ]
        retried = set(indices)
        record['invalid'] = [i for i in record['invalid'] if i not in retried]
        for index, img, anns, ok in zip(indices, pixels, annotations, valid):
            if not ok:
                record['invalid'].append(index)
                continue
            self._write_png(index, img)
            record['images'].append(self._image_entry(index, img))
            record['annotations'] += anns
        record['invalid'].sort()
        os.makedirs(osp.dirname(path), exist_ok=True)
        dump_json_atomic(record, path)

    def merge(self) -> str:
        """Builds ``annotations.json`` and ``meta.json`` from all records.

        Call it on one process once every rank finished. It removes stray
        temporary files, then checks that every batch has exactly one
        record, that no index is invalid, that image ids are exactly
        ``1..num_images`` and that every referenced PNG is complete.

        Returns:
            str: Path of ``annotations.json``.

        Raises:
            RuntimeError: A batch is missing or recorded twice, an index is
                still invalid, or a record disagrees with the job.
        """
        self._remove_stray_temporaries()
        records = self._records(None)
        missing = [b for b in range(self.num_batches) if b not in records]
        if missing:
            raise RuntimeError(
                f'{len(missing)} of {self.num_batches} batches are not '
                f'finished (first: {missing[:10]}); run the generation '
                'again to resume')
        invalid = self.invalid_indices()
        if invalid:
            raise RuntimeError(
                f'{len(invalid)} images are invalid and must be regenerated '
                f'first (first: {invalid[:10]}); see invalid_indices()')
        images, annotations = [], []
        for batch in range(self.num_batches):
            record = self._load(records[batch])
            self._check_record(batch, record)
            images += record['images']
            annotations += record['annotations']
        self._check_image_ids(images)
        for ann_id, ann in enumerate(annotations, 1):
            ann['id'] = ann_id
        categories = [
            dict(id=i + 1, name=name) for i, name in enumerate(self.classes)
        ]
        dump_json_atomic(
            dict(
                images=images, annotations=annotations, categories=categories),
            self.ann_file)
        dump_json_atomic(
            dict(self.job, num_annotations=len(annotations)),
            osp.join(self.data_root, 'meta.json'))
        return self.ann_file

    def _check_or_record_job(self) -> None:
        path = osp.join(self.data_root, 'shards', 'job.json')
        if not osp.exists(path):
            # Ranks starting together write identical content; the rename
            # makes the race harmless.
            dump_json_atomic(self.job, path)
            return
        recorded = self._load(path)
        differ = sorted(
            k for k in set(recorded) | set(self.job)
            if recorded.get(k) != self.job.get(k))
        if differ:
            raise ValueError(
                f'{self.data_root} holds a generation job with other '
                f'settings ({", ".join(differ)} differ from {path}); use '
                'another data_root or the same settings to resume')

    def _records(self, rank: Optional[int]) -> Dict[int, str]:
        """Batch number -> record path, for one rank or all."""
        shards = osp.join(self.data_root, 'shards')
        ranks = [f'rank{rank}'] if rank is not None else sorted(
            d for d in os.listdir(shards) if _RANK_RE.match(d))
        found: Dict[int, str] = {}
        for rank_dir in ranks:
            folder = osp.join(shards, rank_dir)
            names = os.listdir(folder) if osp.isdir(folder) else []
            for name in names:
                match = _RECORD_RE.match(name)
                if not match:
                    continue
                batch = int(match.group(1))
                if batch in found:
                    raise RuntimeError(
                        f'batch {batch} is recorded twice: {found[batch]} and '
                        f'{osp.join(folder, name)}; two ranks generated it '
                        '(was world_size changed while a rank still ran?)')
                found[batch] = osp.join(folder, name)
        return found

    @staticmethod
    def _load(path: str) -> dict:
        """A record or ``job.json``; a corrupt one (written by another
        program: the writer's own writes are atomic) is a
        :class:`~mmdiode.utils.cli.ConfigError` naming it."""
        return load_json_object(
            path, 'a json record of SyntheticCocoWriter',
            'delete it to redo its batch, or use another data_root')

    def _checked_indices(self, batch: int, indices: Optional[Sequence[int]],
                         record: Optional[dict]) -> List[int]:
        full = list(self.batch_indices(batch))
        if indices is None:
            indices = full
        indices = [int(i) for i in indices]
        if record is None and indices != full:
            raise ValueError(
                f'batch {batch} has no record yet: write all its indices '
                f'{full[0]}..{full[-1]} first')
        if record is not None:
            not_invalid = sorted(set(indices) - set(record['invalid']))
            if not_invalid:
                raise ValueError(
                    f'batch {batch} is finished; only its invalid indices '
                    f'{record["invalid"]} can be written again, not '
                    f'{not_invalid}')
        if len(set(indices)) != len(indices):
            raise ValueError(f'batch {batch}: repeated indices {indices}')
        return indices

    def _write_png(self, index: int, img: np.ndarray) -> None:
        path = osp.join(self.data_root, self.image_file_name(index))
        with atomic_open(path) as f:
            Image.fromarray(img).save(f, format='PNG')

    def _image_entry(self, index: int, img: np.ndarray) -> dict:
        return dict(
            id=index + 1,
            file_name=self.image_file_name(index),
            height=int(img.shape[0]),
            width=int(img.shape[1]))

    def _annotation_entries(self, index: int, layout: Any) -> List[dict]:
        boxes = _as_numpy(layout.bboxes).astype(np.float64).reshape(-1, 4)
        labels = _as_numpy(layout.labels).astype(np.int64).reshape(-1)
        if len(boxes) != len(labels):
            raise ValueError(f'image {index}: {len(boxes)} boxes but '
                             f'{len(labels)} labels')
        bad = labels[(labels < 0) | (labels >= len(self.classes))]
        if bad.size:
            raise ValueError(f'image {index}: labels {bad.tolist()} are '
                             f'outside [0, {len(self.classes)})')
        w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
        if (w <= 0).any() or (h <= 0).any():
            raise ValueError(f'image {index}: boxes need x1 > x0 and y1 > y0,'
                             f' got {boxes.tolist()}')
        return [
            dict(
                image_id=index + 1,
                category_id=int(label) + 1,
                bbox=[float(box[0]),
                      float(box[1]),
                      float(bw),
                      float(bh)],
                area=float(bw * bh),
                iscrowd=0) for box, label, bw, bh in zip(boxes, labels, w, h)
        ]

    def _check_record(self, batch: int, record: dict) -> None:
        expected = {i + 1 for i in self.batch_indices(batch)}
        ids = [img['id'] for img in record['images']]
        if record.get('batch') != batch or sorted(ids) != sorted(expected):
            raise RuntimeError(
                f'the record of batch {batch} holds image ids {sorted(ids)} '
                f'instead of {sorted(expected)}')
        for img in record['images']:
            self._check_png(img)
        stray = {a['image_id'] for a in record['annotations']} - expected
        if stray:
            raise RuntimeError(f'the record of batch {batch} annotates image '
                               f'ids {sorted(stray)} outside the batch')

    def _check_png(self, img: dict) -> None:
        path = osp.join(self.data_root, img['file_name'])
        if not osp.exists(path):
            raise RuntimeError(f'image {path} (id {img["id"]}) is referenced '
                               'by its batch record but missing')
        with Image.open(path) as png:  # reads the header only
            size = png.size
        if size != (img['width'], img['height']):
            raise RuntimeError(f'image {path} is {size[0]}x{size[1]}, its '
                               f'record says {img["width"]}x{img["height"]}')

    def _check_image_ids(self, images: List[dict]) -> None:
        ids = sorted(img['id'] for img in images)
        if ids != list(range(1, self.num_images + 1)):
            raise RuntimeError(
                f'image ids are not exactly 1..{self.num_images} '
                f'({len(ids)} images, {len(set(ids))} unique ids)')

    def _remove_stray_temporaries(self) -> None:
        """Deletes temporary files left by killed writers."""
        pattern = '**/.*' + TMP_SUFFIX
        for path in glob.glob(
                osp.join(self.data_root, pattern), recursive=True):
            os.remove(path)
