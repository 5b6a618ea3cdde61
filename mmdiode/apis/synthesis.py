"""A resumable, shardable synthesis job: teacher + layouts -> COCO data set.

The job glues the pieces together; each has its own module:

* the teacher: any mmdet detector, built from its config and checkpoint
  (:func:`build_teacher`);
* target layouts: :class:`~mmdiode.datasets.BoxLayoutSampler`, a pure
  function of ``(seed, index)``, so a restarted or sharded job regenerates
  exactly the layout of every global image index;
* the synthesizer: :class:`~mmdiode.models.task_modules.DeepInversion` or
  :class:`~mmdiode.models.task_modules.MultiObjectImpressions` from
  ``TASK_UTILS``;
* the output: :class:`~mmdiode.datasets.SyntheticCocoWriter` (atomic,
  per-batch records; rank 0 merges);
* at the end, :func:`~mmdiode.evaluation.fidelity_report` and a picture grid.

A synthesis config holds::

    teacher = dict(config='configs/detectors/yolov3-mv2_24e_digits.py',
                   checkpoint='work_dirs/yolov3_teacher/final.pth',
                   classes=None)          # None: from checkpoint or config
    layout_sampler = dict(type='BoxLayoutSampler', img_size=128, ...)
    synthesizer = dict(type='DeepInversion', stages=[...], ...)
    synthesis = dict(num_images=1000, batch_size=16, seed=0, max_retries=2,
                     teacher_labels=None)  # dict(score_thr=0.3): also
                     # write teacher_annotations.json (teacher agreement)
    vis_backends = [dict(type='LocalVisBackend'),
                    dict(type='TensorboardVisBackend')]
"""
import copy
import json
import os
import os.path as osp
import time
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from mmdet.registry import TASK_UTILS
from mmengine.config import Config
from mmengine.dist import barrier, get_dist_info
from mmengine.logging import MMLogger
from mmengine.utils import ProgressBar
from mmengine.visualization import Visualizer
from torch import nn

from mmdiode.datasets import SyntheticCocoWriter
from mmdiode.evaluation import fidelity_report, write_teacher_annotations
from mmdiode.models.task_modules import Layout
from mmdiode.models.task_modules.inversion.early_exit import \
    EARLY_EXIT_DEFAULTS
from mmdiode.models.utils import build_frozen_teacher
from mmdiode.utils.cli import ConfigError, DivergedError
from mmdiode.utils.seeding import derive_seed
from mmdiode.visualization import coco_grid

SYNTHESIS_DEFAULTS = dict(num_images=1000, batch_size=16, seed=0,
                          max_retries=2, teacher_labels=None)


def run_synthesizer(synthesizer,
                    layouts: Sequence,
                    generator,
                    what: str,
                    objects=None):
    """``synthesizer.synthesize(layouts, generator=generator)``; a run whose
    losses stayed non-finite is a :class:`DivergedError` (the settings are
    wrong, not the code).

    The engine raises a plain ``RuntimeError`` whose message says
    ``non-finite`` once its restarts are used up; it is recognised by that
    word. A run in which no step had a finite loss (every step restarted,
    within the allowed restarts) returns fresh noise as its images: that is
    a divergence too.

    Args:
        synthesizer: A ``DeepInversion``-like synthesizer.
        layouts (Sequence): ``(boxes, labels)`` per image.
        generator (torch.Generator): The batch's generator.
        what (str): Names the batch in the message, e.g. ``'batch 3'``.
        objects (ObjectBank, optional): A warm start's object bank (passed
            on only when given). Defaults to None.
    """
    extra = {} if objects is None else dict(objects=objects)
    try:
        result = synthesizer.synthesize(layouts, generator=generator, **extra)
    except RuntimeError as e:
        if 'non-finite' not in str(e):
            raise
        raise DivergedError(f'{what}: {e}') from e
    if not result.loss_history:
        raise DivergedError(
            f'{what}: no synthesis step had a finite loss (every step '
            f'restarted from noise, {result.restarts} restarts); lower the '
            'learning rate or the prior weights, or disable amp')
    return result


def recombine_settings(synthesizer) -> Optional[dict]:
    """A synthesizer's ``recombine`` settings when it starts batches warm;
    None when the option is off or the synthesizer has none."""
    settings = getattr(synthesizer, 'recombine', None)
    return settings if settings and settings['enable'] else None


def fill_object_bank(synthesizer,
                     writer: SyntheticCocoWriter,
                     before: Optional[int] = None):
    """A warm start's object bank, from the images a job wrote.

    The batches a warm batch starts from are read back from disk, in order,
    and the objects the teacher finds in them are added
    (:func:`offer_written_batch`): the first
    ``synthesizer.recombine['cold_batches']`` batches, and with ``refill``
    every batch before ``before``. So the bank of a resumed job is the bank
    of an uninterrupted one.

    Args:
        synthesizer (DeepInversion): With ``recombine`` enabled.
        writer (SyntheticCocoWriter): The job's writer.
        before (int, optional): The batch the bank is for. Defaults to None
            (after the last batch).

    Returns:
        ObjectBank: The filled bank.
    """
    settings = synthesizer.recombine
    end = writer.num_batches if before is None else before
    if not settings['refill']:
        end = min(end, settings['cold_batches'])
    bank = synthesizer.new_object_bank()
    done = set(writer.done_batches())
    for batch in range(end):
        if batch in done:
            offer_written_batch(bank, synthesizer.teacher, writer, batch)
    return bank


def offer_written_batch(bank, teacher: nn.Module, writer: SyntheticCocoWriter,
                        batch: int) -> int:
    """Adds the objects the teacher finds in a written batch to ``bank``
    (its images as read back from disk, so that a filled and a resumed bank
    are equal) and counts the batch in ``bank.batches``.

    Returns:
        int: The number of crops added.
    """
    images, boxes, labels = writer.read_batch(batch)
    added = bank.add_found(teacher, torch.from_numpy(images),
                           [torch.from_numpy(b) for b in boxes],
                           [torch.from_numpy(lb) for lb in labels])
    bank.batches += 1
    return added


def load_synthesis_config(path: str) -> Config:
    """Loads a synthesis config, checks that it is one, and fills in the
    ``synthesis`` settings it leaves at their defaults.

    Args:
        path (str): The config file.

    Returns:
        Config: The config, ``synthesis`` complete.

    Raises:
        ConfigError: The file is missing or not a synthesis config.
    """
    from mmdiode.utils import load_config
    cfg = load_config(path)
    check_synthesis_config(cfg, path)
    # Settings with defaults may be set without being in the file.
    cfg.synthesis = {**SYNTHESIS_DEFAULTS, **cfg.get('synthesis', {})}
    return cfg


def check_synthesis_config(cfg: Config, path: str) -> None:
    """Refuses a config that is not a synthesis config.

    Args:
        cfg (Config): The loaded config.
        path (str): Its file, for the message.

    Raises:
        ConfigError: ``teacher``, ``layout_sampler`` or ``synthesizer`` is
            not a dict of the config.
    """
    for key in ('teacher', 'layout_sampler', 'synthesizer'):
        if not isinstance(cfg.get(key), dict):
            raise ConfigError(
                f'{path} is not a synthesis config: it has no {key}='
                'dict(...) (see configs/diode/*_synth*.py)')


def build_layout_sampler(layout_sampler_cfg: dict, classes: Sequence[str],
                         seed: int):
    """The job's layout sampler: ``layout_sampler`` from ``TASK_UTILS``.

    Args:
        layout_sampler_cfg (dict): The config's ``layout_sampler``.
        classes (Sequence[str]): The teacher's class names, unless the
            config names them.
        seed (int): The job's seed, unless the config sets the sampler's.

    Returns:
        BoxLayoutSampler: A pure function of ``(seed, index)``.
    """
    sampler_cfg = dict(layout_sampler_cfg)
    sampler_cfg.setdefault('classes', classes)
    sampler_cfg.setdefault('seed', seed)
    return TASK_UTILS.build(sampler_cfg)


def sample_layouts(sampler,
                   indices: Sequence[int]) -> List[Tuple[torch.Tensor,
                                                         torch.Tensor]]:
    """``(boxes, labels)`` tensors of the images ``indices``, the layouts
    a synthesizer takes."""
    return [sampler.sample(i).as_tensors() for i in indices]


def batch_generator(seed: int,
                    batch: int,
                    attempt: int = 0) -> torch.Generator:
    """The generator of one synthesis call: seeded by the job's seed, the
    batch number and the attempt (0 the first, 1... regenerations), so a
    resumed or sharded job makes the same images."""
    return torch.Generator().manual_seed(derive_seed(seed, batch, attempt))


def writer_inputs(result) -> Tuple[torch.Tensor, List[Layout], torch.Tensor]:
    """A synthesizer's result as :meth:`SyntheticCocoWriter.write_batch`
    takes it.

    Args:
        result (SynthesisResult): Of ``synthesize()``.

    Returns:
        tuple: The images (N, 3, H, W) uint8, the final targets (FP-sampled
        ones included) as :class:`Layout` s, and the (N,) validity mask.
    """
    layouts = [
        Layout(b.numpy(), lb.numpy())
        for b, lb in zip(result.boxes, result.labels)
    ]
    # The writer takes (N, 3, H, W); the engine gives (N, H, W, 3).
    return result.images.permute(0, 3, 1, 2), layouts, result.valid


def build_teacher(teacher_cfg: dict,
                  device: torch.device) -> Tuple[nn.Module, Tuple[str, ...]]:
    """Builds a frozen teacher and finds its class names.

    Args:
        teacher_cfg (dict): ``config`` (path, ``mmdet::`` path or dict),
            ``checkpoint`` (path/URL or None for random weights, which only
            makes sense for timing) and optional ``classes``.
        device (torch.device): Where the teacher runs.

    Returns:
        tuple: The teacher in eval mode, and its class names (explicit
        ``classes``, else the checkpoint's ``dataset_meta``, else the
        config's dataset ``metainfo``).
    """
    model, classes = build_frozen_teacher(teacher_cfg)
    if not classes:
        raise ValueError(
            'the teacher\'s class names are unknown: neither its checkpoint '
            'meta nor its config names them; set teacher.classes')
    return model.to(device), classes


def scale_schedule(synthesizer_cfg: dict, iterations: int) -> dict:
    """Rescales the stages (and FP-sampling iterations) to a total length.

    ``--iterations N`` keeps the shape of the schedule: every stage gets a
    share of N proportional to its configured length (at least 1), and the
    false-positive sampling window and interval and, with an
    ``early_exit`` in the config, its iteration counts (``min_iterations``,
    ``check_interval``, ``bn_window``; defaults where not set) scale by the
    same factor.
    """
    cfg = copy.deepcopy(synthesizer_cfg)
    stages = cfg.get('stages')
    if not stages:
        raise ValueError('--iterations needs synthesizer.stages in the config')
    total = sum(s['iterations'] for s in stages)
    factor = iterations / total
    for stage in stages:
        stage['iterations'] = max(1, round(stage['iterations'] * factor))
    fp = cfg.get('fp_sampling')
    if fp:
        for key in ('start', 'end', 'interval'):
            if key in fp:
                fp[key] = max(1, round(fp[key] * factor))
    early_exit = cfg.get('early_exit')
    if early_exit:
        for key, low in (('min_iterations', 0), ('check_interval', 1),
                         ('bn_window', 1)):
            value = early_exit.get(key, EARLY_EXIT_DEFAULTS[key])
            early_exit[key] = max(low, round(value * factor))
    return cfg


class SynthesisJob:
    """Runs the synthesis of one config on this process's shard.

    Args:
        cfg (Config): The synthesis config (see module docstring).
        out_dir (str): Output data root.
        work_dir (str): Folder for logs and visualizer backends.
        device (torch.device): Where the teacher runs.
        logger (MMLogger, optional): Where the job logs, e.g. the Runner's
            logger when a training run makes a set. Defaults to None: a
            logger of its own, writing ``synthesis_rank{r}.log`` in
            ``work_dir`` (and becoming mmengine's current logger).
    """

    def __init__(self,
                 cfg: Config,
                 out_dir: str,
                 work_dir: str,
                 device: torch.device,
                 logger: Optional[MMLogger] = None) -> None:
        self.cfg = cfg
        self.out_dir = out_dir
        self.work_dir = work_dir
        self.device = device
        self.rank, self.world_size = get_dist_info()
        self.job = {**SYNTHESIS_DEFAULTS, **cfg.get('synthesis', {})}
        self.teacher, self.classes = build_teacher(cfg.teacher, device)
        self.sampler = build_layout_sampler(cfg.layout_sampler, self.classes,
                                            self.job['seed'])
        self.synthesizer = TASK_UTILS.build(
            dict(cfg.synthesizer, teacher=self.teacher))
        self._check_sizes()
        # A competition term needs a student, which only the hook has.
        self.synthesizer.competition.check_ready()
        self.writer = SyntheticCocoWriter(
            out_dir, self.classes, self.job['num_images'],
            self.job['batch_size'], seed=self.job['seed'],
            config=json.loads(json.dumps(
                dict(layout_sampler=cfg.layout_sampler,
                     synthesizer=cfg.synthesizer), default=str)))
        os.makedirs(work_dir, exist_ok=True)
        self.logger = logger or MMLogger.get_instance(
            'mmdiode.synthesis',
            log_file=osp.join(work_dir, f'synthesis_rank{self.rank}.log'))
        self.visualizer = Visualizer(
            name=f'mmdiode_synthesis_{id(self)}',
            vis_backends=cfg.get('vis_backends',
                                 [dict(type='LocalVisBackend')]),
            save_dir=work_dir) if self.rank == 0 else None
        self.loss_log = osp.join(work_dir, f'losses_rank{self.rank}.jsonl')
        # The synthesizer's warm start (None: off): the bank is filled from
        # the first cold_batches batches once they are written.
        self.recombine = recombine_settings(self.synthesizer)
        self.objects = None
        if self.recombine is not None and self.world_size > 1:
            raise ConfigError(
                'synthesizer.recombine starts batches from objects of the '
                'first cold_batches batches, which one process makes; run '
                'it on one process (or switch recombine off to shard)')

    def _check_sizes(self) -> None:
        size = self.synthesizer.final_size
        img = self.sampler.img_size
        if tuple(size) != (img, img):
            raise ValueError(
                f'layout_sampler.img_size={img} but the synthesizer\'s last '
                f'stage makes {size[1]}x{size[0]} images; make them equal')

    # ------------------------------------------------------------------

    def run(self) -> Optional[dict]:
        """Synthesizes this rank's pending batches; rank 0 then merges.

        Returns:
            dict | None: On rank 0, the fidelity report; else None.
        """
        self._retry_invalid()
        pending = self.writer.pending_batches(self.rank, self.world_size)
        n_images = sum(len(self.writer.batch_indices(b)) for b in pending)
        done = self.writer.num_batches - len(
            self.writer.pending_batches(0, 1))
        self.logger.info(
            f'rank {self.rank}/{self.world_size}: {len(pending)} batches '
            f'({n_images} images) to synthesize, {done} already done, '
            f'output {self.out_dir}')
        bar = ProgressBar(n_images) if n_images and self.rank == 0 else None
        for batch in pending:
            self._synthesize_batch(batch, bar)
        if bar is not None:
            print()
        self._retry_invalid()
        barrier()
        if self.rank != 0:
            return None
        ann_file = self.writer.merge()
        self.logger.info(f'wrote {ann_file}')
        # The prior as the synthesizer used it; None when it was off (e.g.
        # Multi-Object Impressions).
        bn_prior = (self.synthesizer.bn_cfg
                    if self.synthesizer.uses_bn_prior else None)
        report = fidelity_report(self.teacher, self.out_dir,
                                 batch_size=self.job['batch_size'],
                                 device=str(self.device),
                                 bn_prior=bn_prior)
        self.logger.info(
            'fidelity: teacher mAP {bbox_mAP:.3f}, mAP@0.5 {bbox_mAP_50:.3f} '
            'on its own synthesized images'.format(**report))
        if 'bn_prior' in report:
            self.logger.info(
                'fidelity: BN prior {initial:.1f} on initial noise -> '
                '{final:.1f} on the written images ({drop:.1f}x drop)'.format(
                    **report['bn_prior']))
        if self.job['teacher_labels'] is not None:
            path = write_teacher_annotations(
                self.teacher, self.out_dir,
                batch_size=self.job['batch_size'], device=str(self.device),
                **self.job['teacher_labels'])
            self.logger.info(f'wrote {path} (the teacher\'s detections)')
        return report

    def write_grid(self, num: int = 32) -> str:
        """A PNG grid of the first images with their boxes."""
        return coco_grid(self.writer.ann_file, self.out_dir,
                         osp.join(self.out_dir, 'viz.png'), num=num)

    # ------------------------------------------------------------------

    def _objects_for(self, batch: int):
        """The object bank a batch starts from: None for a cold batch (warm
        start off, or one of the first ``cold_batches``); else the bank,
        filled on first use from the cold batches' written images
        (:func:`fill_object_bank`), so a resumed job starts its warm batches
        from the same objects; with ``refill``, the batches written since
        join it (:meth:`_offer_to_bank`)."""
        if self.recombine is None or batch < self.recombine['cold_batches']:
            return None
        if self.objects is None:
            self.objects = fill_object_bank(self.synthesizer, self.writer,
                                            batch)
            self.logger.info(f'warm start: {self.objects.describe()}')
        return self.objects

    def _offer_to_bank(self, batch: int) -> None:
        """With ``refill``, a written warm batch's found objects join the
        bank the next batches start from (one teacher pass over the batch,
        not counted in the batch's logged ``seconds``)."""
        if self.objects is not None and self.recombine['refill']:
            offer_written_batch(self.objects, self.synthesizer.teacher,
                                self.writer, batch)

    def _synthesize(self, batch: int, indices: Sequence[int], attempt: int):
        generator = batch_generator(self.job['seed'], batch, attempt)
        start = time.time()
        result = run_synthesizer(self.synthesizer,
                                 sample_layouts(self.sampler, indices),
                                 generator, f'batch {batch}',
                                 objects=self._objects_for(batch))
        seconds = time.time() - start
        self._log_batch(batch, attempt, len(indices), seconds, result)
        return writer_inputs(result)

    def _synthesize_batch(self, batch: int, bar: Optional[ProgressBar]):
        indices = list(self.writer.batch_indices(batch))
        images, layouts, valid = self._synthesize(batch, indices, attempt=0)
        self.writer.write_batch(batch, images, layouts, valid=valid,
                                rank=self.rank)
        self._offer_to_bank(batch)
        if bar is not None:
            bar.update(len(indices))

    def _retry_invalid(self) -> None:
        """Regenerates images that were not finite, with fresh seeds."""
        for attempt in range(1, self.job['max_retries'] + 1):
            invalid = self.writer.invalid_indices(self.rank)
            if not invalid:
                return
            by_batch: Dict[int, List[int]] = {}
            for index in invalid:
                by_batch.setdefault(index // self.job['batch_size'],
                                    []).append(index)
            for batch, indices in by_batch.items():
                self.logger.warning(
                    f'batch {batch}: regenerating {len(indices)} invalid '
                    f'images (attempt {attempt})')
                images, layouts, valid = self._synthesize(
                    batch, indices, attempt)
                self.writer.write_batch(batch, images, layouts, valid=valid,
                                        rank=self.rank, indices=indices)
        if self.writer.invalid_indices(self.rank):
            raise DivergedError(
                f'images {self.writer.invalid_indices(self.rank)} stayed '
                f'non-finite after {self.job["max_retries"]} retries; lower '
                'the learning rate or the loss weights')

    def _log_batch(self, batch: int, attempt: int, num: int, seconds: float,
                   result) -> None:
        """Per-batch loss terms to a json-lines file and the visualizer.

        An entry also records ``iterations``, the optimisation iterations
        the batch ran (fewer than configured with the synthesizer's early
        exit), and ``warm``, whether it started from the object bank of a
        warm start; entries written before they existed lack the keys.
        """
        first = {k: v[0] for k, v in result.loss_history.items()}
        last = {k: v[1] for k, v in result.loss_history.items()}
        entry = dict(batch=batch, attempt=attempt, images=num,
                     seconds=round(seconds, 3),
                     images_per_s=round(num / max(seconds, 1e-9), 4),
                     restarts=result.restarts,
                     iterations=result.iterations,
                     warm=bool(getattr(result, 'warm', False)),
                     valid=int(result.valid.sum()), initial=first, final=last)
        with open(self.loss_log, 'a', encoding='utf-8') as f:
            f.write(json.dumps(entry) + '\n')
        self.logger.info(
            f'batch {batch}: {num / max(seconds, 1e-9):.2f} images/s, ' +
            ', '.join(f'{k} {first[k]:.4g}->{last[k]:.4g}'
                      for k in sorted(last)))
        if self.visualizer is not None:
            scalars = {f'final/{k}': v for k, v in last.items()}
            scalars.update({f'initial/{k}': v for k, v in first.items()})
            scalars['images_per_s'] = entry['images_per_s']
            if result.iterations is not None:
                scalars['iterations'] = result.iterations
            self.visualizer.add_scalars(scalars, step=batch)
