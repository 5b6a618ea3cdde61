"""The training set of on-the-fly data-free distillation.

Images are synthesized from the teacher while the student trains (by
:class:`~mmdiode.engine.hooks.DeepInversionHook`) into a
:class:`~mmdiode.datasets.ReplayPool`; this data set serves them to the data
loader and gives the hook the target layouts to synthesize.

Where the pool lives: by default in the run's work_dir, ``<work_dir>/pool``,
as everything else a run writes (mmdet's convention), so ``--work-dir``
moves it with the checkpoints and ``--resume`` finds it there. The data set
is built before any hook runs and knows no work_dir, so its ``pool_dir`` is
None until :class:`~mmdiode.engine.hooks.DeepInversionHook` fills it in, in
``before_run``: after the train loop has built the data set, before
anything reads the pool (``--resume`` compares the data set's metainfo,
which may hold the pool's classes), and before an ``EpochBasedTrainLoop``
forks its data loader workers (which copy the data set). Nothing reads the
pool earlier: ``__len__`` is ``num_samples`` and ``metainfo`` does not look
into a pool it has no folder for. An ``IterBasedTrainLoop`` forks its
workers when it is built, before any hook: with ``num_workers > 0`` there,
the hook stops the run unless ``pool_dir`` is set in the config.

An explicit ``pool_dir`` is used as it is (relative paths are relative to
the working directory), e.g. by ``tools/benchmark_datafree.py``, which keeps
each row's pool beside its work_dir, or by a config without a hook that
serves a fixed pool or the noise placeholders of an empty one. Without a
``pool_dir`` and without a ``DeepInversionHook`` the first read of the pool
raises a :class:`~mmdiode.utils.cli.ConfigError` that says so.
"""
import copy
from typing import Optional, Sequence, Tuple

import mmcv
import numpy as np
from mmdet.registry import DATASETS, TASK_UTILS
from mmdet.structures.bbox import HorizontalBoxes
from mmengine.dataset import BaseDataset

from ..models.task_modules.layout_sampler import BoxLayoutSampler, Layout
from ..utils.cli import ConfigError
from .replay_pool import ReplayPool

# Streams of the seed sequence: the layout sampler draws from
# ``[seed, index]`` without spawn key; these keys keep the placeholder noise
# and the choice of pool images independent of it.
_NOISE_KEY = (2, )
_POOL_CHOICE_KEY = (3, )
# Re-reads of the pool index when an image was evicted under a reader.
_MAX_EVICTION_RETRIES = 3


@DATASETS.register_module()
class BoxSamplerDataset(BaseDataset):
    """Synthesized images from a replay pool, or placeholders while empty.

    ``dataset[i]``:

    - **pool not empty**: a pool image, drawn uniformly with a seeded
      generator from ``(seed, i, pool version)`` (the version is the number
      of images ever added; it changes with every synthesis round, so the
      mapping is re-drawn as the pool changes and covers pools larger than
      ``num_samples``), with its final synthesis targets (layout boxes plus
      false-positive sampled ones) as ``gt_bboxes``/``gt_bboxes_labels``.
    - **pool empty** (fallback, e.g. before the hook's first round when it
      synthesizes no initial batches): uniform RGB noise seeded by
      ``(seed, i)`` with the layout of index ``i`` as targets. They are
      placeholders: distillation on them teaches the student the teacher's
      response to noise, and the layout boxes are not visible in them (use
      the teacher's pseudo-labels, ``KDDetector(pseudo_label=...)``, rather
      than these targets).

    The loaded sample (``img`` BGR uint8 as ``LoadImageFromFile`` gives it,
    ``gt_bboxes`` as ``HorizontalBoxes``, ``gt_bboxes_labels``,
    ``gt_ignore_flags`` as ``LoadAnnotations`` gives them) then goes through
    ``pipeline``: ordinary mmdet transforms *without* loading steps, ending
    with ``PackDetInputs``.

    The pool index is re-read whenever its files change on disk, so data
    loader workers (copies of this object in other processes) see the
    images the hook adds. Note that mmengine's ``IterBasedTrainLoop`` starts
    its workers before ``before_train``: with ``num_workers > 0`` its first
    prefetched batches may be placeholders.

    Classes come from ``metainfo=dict(classes=...)`` (the teacher's names in
    its label order) or, if not given, from the pool (the hook records the
    teacher's classes there); without either, the first use raises.

    Args:
        pool_dir (str, optional): The :class:`ReplayPool` folder the hook
            writes. Defaults to None: ``<work_dir>/pool``, set by the run's
            ``DeepInversionHook`` before training (see the module's
            docstring); a run without the hook must set it.
        layout_sampler (dict): :class:`BoxLayoutSampler` config without
            ``classes`` (from the metainfo), ``img_size`` and ``seed``
            (this data set's). Defaults to ``dict(type='BoxLayoutSampler')``
            (DIODE's one box per image, 0.2-0.8 of the side).
        num_samples (int): Length of an epoch. Defaults to 1000.
        img_size (int): Side of the square synthesized images; the
            synthesizer's final stage must make this size. Defaults to 320
            (DIODE's final resolution).
        seed (int): Seed of the layouts, the placeholders and the choice of
            pool images. Defaults to 0.
        metainfo (dict, optional): ``dict(classes=...)``. Defaults to None.
        pipeline (Sequence[dict]): Transforms after loading. Defaults to
            ``(dict(type='PackDetInputs'),)``.
        max_refetch (int): As in mmengine's ``BaseDataset`` (retries when a
            transform returns None). Defaults to 1000.
    """

    def __init__(self,
                 pool_dir: Optional[str] = None,
                 layout_sampler: dict = dict(type='BoxLayoutSampler'),
                 num_samples: int = 1000,
                 img_size: int = 320,
                 seed: int = 0,
                 metainfo: Optional[dict] = None,
                 pipeline: Sequence[dict] = (dict(type='PackDetInputs'), ),
                 max_refetch: int = 1000) -> None:
        if num_samples < 1:
            raise ConfigError('BoxSamplerDataset num_samples must be >= 1, '
                              f'got {num_samples}')
        if img_size < 1:
            raise ConfigError('BoxSamplerDataset img_size must be >= 1, got '
                              f'{img_size}')
        self.pool_dir = pool_dir
        self.num_samples = num_samples
        self.img_size = img_size
        self.seed = seed
        self.layout_sampler_cfg = self._checked_sampler_cfg(layout_sampler)
        self._sampler: Optional[BoxLayoutSampler] = None
        self._pool: Optional[ReplayPool] = None
        super().__init__(metainfo=metainfo,
                         pipeline=list(pipeline),
                         serialize_data=False,
                         max_refetch=max_refetch)

    def _checked_sampler_cfg(self, cfg: dict) -> dict:
        cfg = copy.deepcopy(dict(cfg))
        if 'classes' in cfg:
            raise ConfigError('layout_sampler: do not set classes; they come '
                              'from the data set\'s metainfo (the '
                              'teacher\'s)')
        for key, value in (('img_size', self.img_size), ('seed', self.seed)):
            if cfg.get(key, value) != value:
                raise ConfigError(
                    f'layout_sampler.{key}={cfg[key]} differs from the data '
                    f'set\'s {key}={value}; set it on the data set only')
            cfg[key] = value
        return cfg

    # ------------------------------------------------------------------
    # mmengine BaseDataset interface

    def full_init(self) -> None:
        """Nothing to load: the pool is read lazily (its folder may not
        exist before the hook creates it)."""
        self._fully_initialized = True

    def __len__(self) -> int:
        return self.num_samples

    def get_data_info(self, idx: int) -> dict:
        """Size information of sample ``idx`` (for batch samplers)."""
        return dict(sample_idx=idx, width=self.img_size, height=self.img_size)

    def prepare_data(self, idx: int):
        """The loaded sample ``idx`` through the pipeline."""
        return self.pipeline(self.load_sample(idx))

    @property
    def metainfo(self) -> dict:
        """The given metainfo, with the pool's classes if it names none."""
        meta = copy.deepcopy(self._metainfo)
        # Before DeepInversionHook has given a default pool its folder,
        # there is no pool to look into (and nothing in it).
        if ('classes' not in meta and self.pool_dir is not None
                and self.pool.classes is not None):
            meta['classes'] = self.pool.classes
        return meta

    # ------------------------------------------------------------------
    # Synthesis side

    @property
    def pool(self) -> ReplayPool:
        """The replay pool (a reader; created at first use).

        Raises:
            ConfigError: ``pool_dir`` is None: no ``DeepInversionHook`` in
                the run has set it (or it has not run yet).
        """
        if self._pool is None:
            if self.pool_dir is None:
                raise ConfigError(
                    'BoxSamplerDataset has no pool_dir: a DeepInversionHook '
                    'in the run sets it to <work_dir>/pool before training; '
                    'add one to custom_hooks, or set the data set\'s '
                    'pool_dir=... to the pool folder to read (a folder that '
                    'stays empty serves noise placeholders)')
            self._pool = ReplayPool(self.pool_dir)
        return self._pool

    @property
    def declared_classes(self) -> Optional[Tuple[str, ...]]:
        """The classes of ``metainfo=dict(classes=...)``; None when not
        given (the pool's are not consulted)."""
        classes = self._metainfo.get('classes')
        return tuple(classes) if classes else None

    @property
    def classes(self) -> Tuple[str, ...]:
        """The teacher's class names (metainfo, else the pool's)."""
        pool = self.pool  # first: a missing pool_dir is the first problem
        classes = self.metainfo.get('classes')
        if not classes:
            raise ValueError(
                'BoxSamplerDataset has no classes: set metainfo=dict('
                'classes=...) to the teacher\'s class names, or let '
                f'DeepInversionHook record them in the pool {self.pool_dir} '
                'first')
        pool_classes = pool.classes
        if pool_classes is not None and tuple(pool_classes) != tuple(classes):
            raise ValueError(
                f'metainfo classes {list(classes)} differ from the classes '
                f'{list(pool_classes)} of the pool {self.pool_dir}')
        return tuple(classes)

    @property
    def layout_sampler(self) -> BoxLayoutSampler:
        """The layout sampler (built at first use, when classes are
        known)."""
        if self._sampler is None:
            self._sampler = TASK_UTILS.build(
                dict(self.layout_sampler_cfg, classes=self.classes))
        return self._sampler

    def layout(self, index: int) -> Layout:
        """Target layout of global synthesis index ``index`` (any index
        >= 0; a pure function of ``(seed, index)``)."""
        return self.layout_sampler.sample(index)

    # ------------------------------------------------------------------
    # Loading

    def load_sample(self, idx: int) -> dict:
        """Sample ``idx`` as the loading transforms would give it.

        Args:
            idx (int): Sample index in ``[0, num_samples)``.

        Returns:
            dict: ``img`` (H, W, 3) uint8 BGR, ``img_shape``, ``ori_shape``,
            ``img_id``, ``img_path`` (None for a placeholder), ``gt_bboxes``
            ((K, 4) ``HorizontalBoxes``), ``gt_bboxes_labels`` ((K,) int64),
            ``gt_ignore_flags`` ((K,) bool).
        """
        if not 0 <= idx < self.num_samples:
            raise IndexError(f'index {idx} is outside [0, {self.num_samples})')
        for _ in range(_MAX_EVICTION_RETRIES):
            entries = self.pool.entries()
            if not entries:
                return self._placeholder(idx)
            entry = entries[self._pool_position(idx, len(entries))]
            try:
                img = mmcv.imread(entry.file)
            except FileNotFoundError:
                continue  # evicted after the index was read: re-read it
            return self._results(idx, img, entry.file, entry.bboxes,
                                 entry.labels)
        raise RuntimeError(
            f'pool images kept disappearing while reading {self.pool_dir}; '
            'is another process deleting them?')

    def _pool_position(self, idx: int, size: int) -> int:
        seq = np.random.SeedSequence([self.seed, idx, self.pool.num_added],
                                     spawn_key=_POOL_CHOICE_KEY)
        return int(np.random.default_rng(seq).integers(size))

    @staticmethod
    def _results(idx: int, img: np.ndarray, path: Optional[str],
                 bboxes: np.ndarray, labels: np.ndarray) -> dict:
        shape = img.shape[:2]
        return dict(img=img,
                    img_shape=shape,
                    ori_shape=shape,
                    img_id=idx,
                    img_path=path,
                    gt_bboxes=HorizontalBoxes(bboxes.reshape(-1, 4)),
                    gt_bboxes_labels=labels,
                    gt_ignore_flags=np.zeros(len(labels), dtype=bool))

    def _placeholder(self, idx: int) -> dict:
        seq = np.random.SeedSequence([self.seed, idx], spawn_key=_NOISE_KEY)
        noise = np.random.default_rng(seq).integers(
            0, 256, (self.img_size, self.img_size, 3), dtype=np.uint8)
        layout = self.layout(idx)
        return self._results(idx, noise, None, layout.bboxes, layout.labels)
