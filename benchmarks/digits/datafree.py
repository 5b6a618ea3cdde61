"""The data-free distillation benchmark on digits-on-photos: rows and runner.

One row is one way of getting a student (or the teacher itself), scored on
the real test split with ``tools/test.py``. For each teacher–student pair:

========================  ==================================================
row                       images the student learns from
========================  ==================================================
``teacher``               (the teacher, trained on the real train split)
``supervised``            real train split with its labels, no teacher
``kd_real``               real train split, labels ignored (pseudo-labels)
``kd_synth_offline``      a set written beforehand by ``tools/synthesize.py``
``kd_synth_online``       synthesized during training (DeepInversionHook)
``kd_synth_online_warm``  ``kd_synth_online`` with the pool seeded by the
                          ``kd_synth_offline`` row's set (run that first)
``kd_synth_online_bn``    ``kd_synth_online`` with DIODE's BN prior, for a
                          pair whose online recipe has none (MOI)
``kd_proxy``              photo crops without digits (out of distribution)
``kd_noise``              uniform noise
``ablate_no_bn``          offline set synthesized without the BN prior
``ablate_no_aug``         ... without augmentations (no jitter, colour,
                          erasing)
``ablate_no_fp``          ... without false-positive sampling
``ablate_no_tiling``      ... with one-box layouts instead of the pair's
                          multi-object ones
``scaling_N``             a set of N images made as ``kd_synth_offline``'s
                          (the scaling curve; profiles with ``scaling``)
========================  ==================================================

Every ``kd_*`` and ``ablate_*`` row uses the same distillation (the pair's
data-free config: output KD plus the teacher's pseudo-labels, which replace
any label) and the same number of iterations: only the images differ.
``supervised`` trains the same student for as many iterations with the real
labels. A row that does not apply (``ablate_no_bn`` for Multi-Object
Impressions, which uses no BN prior; ``kd_synth_online_bn`` for a pair
whose online recipe is DIODE already) is skipped.

Each row runs the repository's own tools in a subprocess (the commands a
user would type) and stores ``row.json`` in its work dir, so an interrupted
benchmark continues where it stopped and the rows of one profile can be run
in several sittings.

An interrupted row continues too (a full-profile row takes hours on 2 CPU
cores): training saves a checkpoint every ``Profile.checkpoint_interval``
epochs and keeps them all, and a row whose ``train/last_checkpoint`` exists
resumes from it (``tools/train.py --resume``; the online row's replay pool
and layout counter come back with it, see ``DeepInversionHook``); an offline
set continues itself (``tools/synthesize.py``). The wall time of every
sitting is added up in ``seconds.json``, so ``seconds`` counts them all.
Decision: the epoch checkpoints are kept (a few MB each, the teacher is not
in them) so that checkpoint selection can be studied on one run.
"""
import json
import os
import os.path as osp
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable, Dict, List, Optional, Sequence

from mmengine.config import Config

from mmdiode.datasets.replay_pool import ReplayPool
from mmdiode.utils.cli import ConfigError
from mmdiode.utils.fileio import dump_json_atomic

ROWS = ('teacher', 'supervised', 'kd_real', 'kd_synth_offline',
        'kd_synth_online', 'kd_synth_online_warm', 'kd_synth_online_bn',
        'kd_proxy', 'kd_noise', 'ablate_no_bn', 'ablate_no_aug',
        'ablate_no_fp', 'ablate_no_tiling', 'scaling_100', 'scaling_300')

#: The row whose offline set seeds ``kd_synth_online_warm``'s pool.
#: Decision: the row reuses that row's set (and counts its synthesis time
#: and images) rather than synthesizing one of its own, so that it answers
#: one question: what the online images add to an offline set a user
#: already has. Its pool holds both (the online config's pool size plus the
#: set's images), so no image is evicted.
WARM_START_ROW = 'kd_synth_offline'

#: Rows of the scaling curve: the student distilled, at the same schedule,
#: on a set of N images synthesized as the ``kd_synth_offline`` row's (same
#: recipe and seed, its own synthesis). Decision: one set per point rather
#: than prefixes of the largest set, so that each point is a row of its own
#: that finishes in a sitting (the 1000-image YOLOv3 set and its training
#: take longer than one), and its ``synth_minutes`` are the time its own set
#: took. The extra cost is the smaller sets' synthesis (100 + 300 images).
SCALING = {'scaling_100': 100, 'scaling_300': 300}

#: Rows whose images come from a ``BoxSamplerDataset`` (its replay pool in
#: the row dir), with the pair's ``kd_configs`` key of their config: noise
#: (an empty pool) or the images a ``DeepInversionHook`` synthesizes.
ONLINE_SOURCES = {
    'kd_noise': 'noise',
    'kd_synth_online': 'online',
    'kd_synth_online_warm': 'online',
    'kd_synth_online_bn': 'online_bn',
}

#: Synthesis overrides (``--cfg-options``) of the ablation rows. ``None``:
#: the row does not apply to the pair's synthesizer.
ABLATIONS = {
    'ablate_no_bn': ['synthesizer.bn_prior.weight=0.0'],
    'ablate_no_aug': [
        'synthesizer.augment.flip_prob=0.0',
        'synthesizer.augment.brightness=0.0',
        'synthesizer.augment.contrast=0.0',
        'synthesizer.augment.erase_prob=0.0',
        'synthesizer.stages.0.jitter=0', 'synthesizer.stages.1.jitter=0'
    ],
    'ablate_no_fp': ['synthesizer.fp_sampling.enable=False'],
    # DIODE's one-box sampler: one object of 20-80 % of the image.
    'ablate_no_tiling': [
        'layout_sampler.strategy=one-box', 'layout_sampler.min_size=0.2',
        'layout_sampler.max_size=0.8'
    ],
}


@dataclass
class Pair:
    """A teacher–student pair of the benchmark and its configs.

    Attributes:
        name (str): Key in the results json (``yolov3``, ``faster_rcnn``).
        teacher_config (str): The teacher's training config.
        teacher_checkpoint (str): Its checkpoint; every distillation row
            uses it.
        teacher_work_dir (str): Where its training ran (``make teachers``),
            for the training time of the ``teacher`` row.
        student_config (str): The student trained with labels.
        synth_config (str): ``tools/synthesize.py`` config of the offline
            rows.
        kd_configs (dict): Distillation config per image source: ``real``,
            ``synth`` (an offline set), ``online``, ``proxy``, ``noise``,
            and, for a pair whose ``online`` recipe has no BN prior,
            ``online_bn`` (the same with DIODE's; the
            ``kd_synth_online_bn`` row).
        skip (tuple[str]): Rows that do not apply to this pair.
    """
    name: str
    teacher_config: str
    teacher_checkpoint: str
    teacher_work_dir: str
    student_config: str
    synth_config: str
    kd_configs: Dict[str, str]
    skip: Sequence[str] = ()


def kd_configs(online: str) -> Dict[str, str]:
    """The distillation configs of a pair (:attr:`Pair.kd_configs`): its
    on-the-fly config ``configs/<method>/<method>_<pair>.py`` and the rows
    derived from it, ``configs/datafree/datafree_<pair>-<source>.py``."""
    pair = osp.basename(online).split('_', 1)[1][:-len('.py')]
    rows = {
        source: f'configs/datafree/datafree_{pair}-{source}.py'
        for source in ('real', 'synth', 'proxy', 'noise')
    }
    return dict(rows, online=online)


PAIRS = {
    'yolov3':
    Pair(
        name='yolov3',
        teacher_config='configs/detectors/yolov3-mv2_24e_digits.py',
        # The committed fp16 copy of `make yolov3-teacher`'s checkpoint
        # (same test mAP): the rows run on a fresh clone without training.
        teacher_checkpoint='checkpoints/digits_yolov3_teacher_fp16.pth',
        teacher_work_dir='work_dirs/yolov3_teacher',
        student_config='configs/detectors/yolov3-mv2-x0.5_24e_digits.py',
        synth_config='configs/diode/diode_yolov3-mv2_synth-kd_digits.py',
        kd_configs=kd_configs(
            'configs/diode/diode_yolov3-mv2_yolov3-mv2-x0.5_24e_digits.py')),
    'faster_rcnn':
    Pair(
        name='faster_rcnn',
        teacher_config='configs/detectors/faster-rcnn-r18_8e_digits.py',
        # Committed like the YOLOv3 teacher: the rows of every sitting and
        # machine learn from one build (two CPU builds differ slightly).
        teacher_checkpoint='checkpoints/digits_faster-rcnn_teacher_fp16.pth',
        teacher_work_dir='work_dirs/faster-rcnn_teacher',
        student_config='configs/detectors/faster-rcnn-r18-x0.5_8e_digits.py',
        # The on-the-fly row's synthesizer (the recipe on a third of its
        # schedule), so offline and online rows differ in serving alone.
        synth_config='configs/moi/moi_faster-rcnn-r18_synth-third_digits.py',
        kd_configs=dict(
            kd_configs(
                'configs/moi/'
                'moi_faster-rcnn-r18_faster-rcnn-r18-x0.5_8e_digits.py'),
            # The teacher's BN layers learnt the digits' statistics, which
            # MOI leaves unused: the online row with DIODE's BN prior.
            online_bn='configs/diode/'
            'diode_faster-rcnn-r18_faster-rcnn-r18-x0.5_8e_digits.py'),
        # Multi-Object Impressions uses no BN statistics at all.
        skip=('ablate_no_bn', )),
}


@dataclass
class Profile:
    """How long each row trains and how many images are synthesized.

    Attributes:
        name (str): ``quick`` or ``full``.
        epochs (dict): Training epochs per pair (3000 images each).
        synth_images (dict): Images of each offline set per pair (a
            divisor of 3000, which the set is repeated up to).
        online (dict): ``DeepInversionHook`` overrides of the online row,
            per pair.
        checkpoint_interval (int): Epochs between the training checkpoints
            a row resumes from (all are kept). Defaults to 1.
        scaling (tuple[int]): Set sizes of the ``scaling_N`` rows this
            profile runs. Defaults to () (none).
    """
    name: str
    epochs: Dict[str, int]
    synth_images: Dict[str, int]
    online: Dict[str, Dict[str, object]] = field(default_factory=dict)
    checkpoint_interval: int = 1
    scaling: Sequence[int] = ()


PROFILES = {
    # About 6 min of training per YOLOv3 row on 2 cores (6 epochs, 1128
    # iterations); the online row adds 28 synthesized batches of 16 (6
    # before training, then one every 50 iterations) at ~50 s each: ~30 min
    # in all, the `make demo` job. More synthesis (a smaller interval) gives
    # the student more distinct images at ~50 s per 16.
    # A Multi-Object Impressions batch of 8 costs ~190 s (one thread, the
    # other core busy; Faster R-CNN's two-stage loss and backward): its
    # online row gets a batch every 100 of its 1125 iterations, 17 batches
    # (136 images) in all, ~50 min of synthesis.
    'quick':
    Profile(
        name='quick',
        epochs=dict(yolov3=6, faster_rcnn=3),
        # 200 images per offline set: ~16 min of YOLOv3 synthesis on 2
        # cores (~50 s per 16), ~20 min for Faster R-CNN (MOI, third
        # schedule); 500 would make the five offline rows of a pair take
        # hours. 160-image sets already distilled a YOLOv3 student as good
        # as the online row's 448.
        synth_images=dict(yolov3=200, faster_rcnn=200),
        online=dict(
            yolov3=dict(interval=50, initial_batches=6),
            faster_rcnn=dict(interval=33, initial_batches=18))),
    # The students' own schedules.
    'full':
    Profile(
        name='full',
        epochs=dict(yolov3=24, faster_rcnn=8),
        # YOLOv3: 1000 images (~80 min of synthesis on 2 cores), a scaling
        # curve over 10x as many images. Faster R-CNN: 750 (~75 min of MOI
        # synthesis on its third schedule), about the online row's ~800, so
        # offline and online compare at one count; its scaling rows apply
        # too.
        synth_images=dict(yolov3=1000, faster_rcnn=750),
        scaling=(100, 300),
        online=dict(
            yolov3=dict(interval=100, initial_batches=8),
            faster_rcnn=dict(interval=33, initial_batches=12))),
    # Twice the students' own schedules, the schedule lever: 48 YOLOv3
    # epochs on the 300 images of `scaling_300` gained 0.049 test mAP@0.5
    # over 24 (docs/en/benchmarks.md), where 1000 images gained nothing over
    # 300. The online rows synthesize half as often as the full profile's,
    # so they see as many images: only the schedule changes. Offline sets of
    # 300 images, the full profile's scaling point.
    'long':
    Profile(
        name='long',
        epochs=dict(yolov3=48, faster_rcnn=16),
        synth_images=dict(yolov3=300, faster_rcnn=300),
        online=dict(
            yolov3=dict(interval=200, initial_batches=8),
            faster_rcnn=dict(interval=66, initial_batches=12))),
}

REAL_TRAIN_IMAGES = 3000


def set_epochs(cfg: Config,
               epochs: int,
               checkpoint_interval: Optional[int] = None) -> None:
    """Shortens or lengthens a config's epoch-based schedule in place.

    Sets ``train_cfg.max_epochs`` and moves every scheduler bound (``end``,
    ``T_max``) that equalled the old length; validation runs at the end.

    Args:
        cfg (Config): A config with an epoch-based ``train_cfg``.
        epochs (int): The new number of epochs (>= 1).
        checkpoint_interval (int, optional): Epochs between checkpoints,
            every one kept (``max_keep_ckpts=-1``). Defaults to None: one
            checkpoint, at the end.
    """
    if epochs < 1:
        raise ValueError(f'epochs must be >= 1, got {epochs}')
    if checkpoint_interval is not None and checkpoint_interval < 1:
        raise ValueError(f'checkpoint_interval must be >= 1, got '
                         f'{checkpoint_interval}')
    old = cfg.train_cfg.max_epochs
    cfg.train_cfg.max_epochs = epochs
    cfg.train_cfg.val_interval = epochs
    for scheduler in cfg.get('param_scheduler', []):
        for key in ('end', 'T_max'):
            if scheduler.get(key) == old and scheduler.get('by_epoch', True):
                scheduler[key] = epochs
    checkpoint = cfg.get('default_hooks', {}).get('checkpoint')
    if checkpoint is not None:
        if checkpoint_interval is None:
            checkpoint.interval = epochs
        else:
            checkpoint.interval = checkpoint_interval
            checkpoint.max_keep_ckpts = -1


class ProgressFilter:
    """Tells which lines of a tool's output ``--stream`` echoes: progress
    and results, not mmengine's set-up dumps (the system environment, the
    whole config, the hook table), which stay in the step's log file.

    mmengine's log records start with ``<date> <time> - mmengine - <LEVEL>
    - <message>``; a line that does not is a continuation of the record
    before it (a dump's body) or the tool's own output, and is shown when
    that record is.
    """
    RECORD = re.compile(r'^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d - \S+ - \w+ - ')
    #: Messages that open a dump (the environment block's message is
    #: empty: its body starts on the next line).
    DUMPS = ('', 'Config:', 'Hooks will be executed',
             'Distributed training is not used')

    def __init__(self) -> None:
        self._showing = True

    def shows(self, line: str) -> bool:
        """Whether ``line`` (one line of the tool's output) is echoed."""
        match = self.RECORD.match(line)
        if match is not None:
            message = line[match.end():].strip()
            self._showing = not any(
                message.startswith(d) if d else not message
                for d in self.DUMPS)
        return self._showing


@dataclass
class RowPlan:
    """The commands of one row, in order, and how to score the result.

    ``images`` None: the online pool's count. ``seeded_by``: the row whose
    offline set the row starts from (its synthesis time counts).
    """
    synth_cmd: Optional[List[str]]
    train_config: Optional[str]
    train_options: Dict[str, object]
    test_config: str
    images: Optional[int]
    seeded_by: Optional[str] = None


class DatafreeBenchmark:
    """Runs the rows of one profile and collects their results.

    Args:
        profile (Profile): Schedule and synthesis sizes.
        work_dir (str): Root of the rows' work dirs
            (``<work_dir>/<profile>/<pair>/<row>``).
        python (str): Interpreter of the subprocesses. Defaults to the
            current one.
        log (callable): Progress messages. Defaults to ``print``.
        stream (bool): Also echo the tools' output live (their progress
            bars and logs); it always goes to ``<step>.out`` in the row's
            work dir. Defaults to False.
        commit (str): The git commit recorded in each finished row's
            ``row.json``. Defaults to 'unknown'.
    """

    def __init__(self,
                 profile: Profile,
                 work_dir: str = 'work_dirs/datafree',
                 python: str = sys.executable,
                 log: Callable[[str], None] = print,
                 stream: bool = False,
                 commit: str = 'unknown') -> None:
        self.profile = profile
        self.commit = commit
        self.root = osp.join(work_dir, profile.name)
        self.python = python
        self.log = log
        self.stream = stream

    def applies(self, pair: Pair, row: str) -> bool:
        """Whether the row is run for the pair in this profile."""
        if row in pair.skip:
            return False
        if row == 'kd_synth_online_bn':
            return 'online_bn' in pair.kd_configs
        if row not in SCALING:
            return True
        # A set as large as kd_synth_offline's would be that row again.
        return SCALING[row] in self.profile.scaling and \
            SCALING[row] < self.profile.synth_images.get(pair.name, 0)

    def row_dir(self, pair: Pair, row: str) -> str:
        return osp.join(self.root, pair.name, row)

    def offline_set(self, pair: Pair, row: str) -> str:
        """The folder of an offline row's set (``kd_synth_offline``'s
        seeds the warm online row)."""
        return osp.join(self.row_dir(pair, row), 'data')

    def result(self, pair: Pair, row: str) -> Optional[dict]:
        """A finished row's ``row.json`` contents, or None."""
        path = osp.join(self.row_dir(pair, row), 'row.json')
        if not osp.isfile(path):
            return None
        with open(path, encoding='utf-8') as f:
            return json.load(f)

    def run_row(self, pair: Pair, row: str, force: bool = False) -> dict:
        """Runs one row (unless done) and returns its result.

        Returns:
            dict: ``map``, ``map50``, ``images``, ``seconds`` and the
            ``commit`` the row ran on.
        """
        if row not in ROWS:
            raise ValueError(f'unknown row {row!r}; rows: {", ".join(ROWS)}')
        if not self.applies(pair, row):
            raise ValueError(f'row {row} does not apply to {pair.name} in '
                             f'profile {self.profile.name}')
        done = None if force else self.result(pair, row)
        if done is not None:
            self.log(f'[{pair.name}/{row}] done before: {done}')
            return done
        row_dir = self.row_dir(pair, row)
        if force and osp.isdir(row_dir):
            # A forced row starts afresh: an old replay pool would otherwise
            # be continued (the hook only fills an empty pool) and an old
            # offline set reused. The previous run is kept beside it.
            previous = row_dir + '.prev'
            if osp.isdir(previous):
                shutil.rmtree(previous)
            os.replace(row_dir, previous)
            self.log(f'[{pair.name}/{row}] previous run moved to {previous}')
        elif osp.isdir(row_dir):
            for line in self.describe_progress(pair, row):
                self.log(f'[{pair.name}/{row}] resuming: {line}')
        plan = self.plan(pair, row)
        if plan.seeded_by is not None:
            self._check_offline_set(pair, row, plan.seeded_by)
        os.makedirs(row_dir, exist_ok=True)
        if plan.synth_cmd is not None:
            self._run(pair, row, 'synthesize', plan.synth_cmd)
        checkpoint = pair.teacher_checkpoint
        if plan.train_config is not None:
            train_dir = osp.join(row_dir, 'train')
            if not self._training_finished(pair, train_dir):
                config = self._scheduled_config(pair, row, plan)
                resume = ['--resume'] if last_checkpoint(
                    train_dir) is not None else []
                self._run(pair, row, 'train', [
                    'tools/train.py', config, '--work-dir', train_dir
                ] + resume)
            checkpoint = last_checkpoint(train_dir)
            seconds = sum(v for k, v in self.step_seconds(pair, row).items()
                          if k != 'test')
            if plan.seeded_by is not None:  # the images it starts from
                seconds += self.step_seconds(pair, plan.seeded_by).get(
                    'synthesize', 0.0)
        else:
            seconds = teacher_training_seconds(pair.teacher_work_dir)
        metrics = self._test(pair, row, plan.test_config, checkpoint)
        images = plan.images
        if images is None:  # online: the pool's images (a warm start's too)
            images = count_pool_images(osp.join(row_dir, 'pool'))
        result = dict(
            map=metrics['coco/bbox_mAP'],
            map50=metrics['coco/bbox_mAP_50'],
            images=images,
            seconds=None if seconds is None else round(seconds, 1),
            # Rows of one table may be run in several sittings.
            commit=self.commit)
        dump_json_atomic(result, osp.join(row_dir, 'row.json'))
        self.log(f'[{pair.name}/{row}] {result}')
        return result

    def step_seconds(self, pair: Pair, row: str) -> Dict[str, float]:
        """Wall seconds spent so far per step of a row (all sittings)."""
        path = osp.join(self.row_dir(pair, row), 'seconds.json')
        if not osp.isfile(path):
            return {}
        with open(path, encoding='utf-8') as f:
            return json.load(f)

    def describe_progress(self, pair: Pair, row: str) -> List[str]:
        """What an unfinished row's work dir already holds, one line each
        (what a rerun of the row continues from)."""
        row_dir = self.row_dir(pair, row)
        lines = []
        data = osp.join(row_dir, 'data', 'annotations.json')
        if osp.isfile(data):
            lines.append(f'offline set {osp.dirname(data)} is complete')
        elif osp.isdir(osp.join(row_dir, 'data')):
            lines.append(f'offline set {osp.join(row_dir, "data")} is '
                         'continued by tools/synthesize.py')
        pool = osp.join(row_dir, 'pool')
        if osp.isdir(pool):
            lines.append(f'replay pool {pool}: {count_pool_images(pool)} '
                         'images synthesized so far')
        train_dir = osp.join(row_dir, 'train')
        last = last_checkpoint(train_dir)
        if last is not None:
            lines.append(f'training from {last} (epoch '
                         f'{checkpoint_epoch(last)} of '
                         f'{self.profile.epochs[pair.name]})')
        spent = sum(self.step_seconds(pair, row).values())
        if spent:
            lines.append(f'{spent / 60:.1f} min spent in earlier sittings')
        return lines or ['nothing kept from the earlier start; from scratch']

    def plan(self, pair: Pair, row: str) -> RowPlan:
        """The commands of a row (nothing is run)."""
        row_dir = self.row_dir(pair, row)
        kd = pair.kd_configs
        if row == 'teacher':
            return RowPlan(None, None, {}, pair.teacher_config,
                           REAL_TRAIN_IMAGES)
        if row == 'supervised':
            return RowPlan(None, pair.student_config, {},
                           pair.student_config, REAL_TRAIN_IMAGES)
        if row in ('kd_real', 'kd_proxy'):
            source = row[3:]
            return RowPlan(None, kd[source], {}, kd[source],
                           REAL_TRAIN_IMAGES)
        if row in ONLINE_SOURCES:
            return self._pool_plan(pair, row)
        # Offline sets: kd_synth_offline, the ablations and the scaling
        # rows, each synthesized into its own row dir.
        n = SCALING.get(row, self.profile.synth_images[pair.name])
        if REAL_TRAIN_IMAGES % n:
            raise ValueError(f'a set of {n} images does not divide '
                             f'{REAL_TRAIN_IMAGES}')
        data_dir = self.offline_set(pair, row)
        synth_cmd = [
            'tools/synthesize.py', pair.synth_config, '--teacher-ckpt',
            pair.teacher_checkpoint, '--out', data_dir, '--num-images',
            str(n), '--work-dir',
            osp.join(row_dir, 'synth'), '--viz'
        ]
        if row in ABLATIONS:
            synth_cmd += ['--cfg-options'] + ABLATIONS[row]
        repeat = train_set_key(kd['synth'], 'RepeatDataset')
        options = {
            f'{repeat}.dataset.data_root': data_dir + '/',
            f'{repeat}.times': REAL_TRAIN_IMAGES // n
        }
        return RowPlan(synth_cmd, kd['synth'], options, kd['synth'], n)

    def _pool_plan(self, pair: Pair, row: str) -> RowPlan:
        """The plan of a row whose images come from a replay pool in its
        row dir (:data:`ONLINE_SOURCES`): noise, or the on-the-fly rows
        with the profile's synthesis schedule."""
        source = ONLINE_SOURCES[row]
        kd = pair.kd_configs
        box_set = train_set_key(kd[source], 'BoxSamplerDataset')
        pool_dir = osp.join(self.row_dir(pair, row), 'pool')
        pool = {f'{box_set}.pool_dir': pool_dir}
        if source == 'noise':
            return RowPlan(None, kd[source], pool, kd[source],
                           REAL_TRAIN_IMAGES)
        # custom_hooks.0 is the DeepInversionHook of the online configs.
        options = dict(pool, **{
            f'custom_hooks.0.{k}': v
            for k, v in self.profile.online.get(pair.name, {}).items()
        })
        seeded_by = WARM_START_ROW if row.endswith('_warm') else None
        if seeded_by is not None:
            options.update({
                'custom_hooks.0.warm_start':
                self.offline_set(pair, seeded_by),
                'custom_hooks.0.pool_size':
                hook_pool_size(kd[source]) +
                self.profile.synth_images[pair.name]
            })
        return RowPlan(None, kd[source], options, kd[source], None,
                       seeded_by)

    # ------------------------------------------------------------------

    def _scheduled_config(self, pair: Pair, row: str, plan: RowPlan) -> str:
        """Writes the row's training config: the pair's schedule of this
        profile, plus the row's options."""
        cfg = Config.fromfile(plan.train_config)
        cfg.merge_from_dict(plan.train_options)
        if cfg.model.type == 'KDDetector':
            cfg.model.teacher.checkpoint = pair.teacher_checkpoint
        set_epochs(cfg, self.profile.epochs[pair.name],
                   self.profile.checkpoint_interval)
        path = osp.join(self.row_dir(pair, row), f'{row}.py')
        cfg.dump(path)
        return path

    def _check_offline_set(self, pair: Pair, row: str, source: str) -> None:
        """Raises ConfigError unless ``source``'s offline set is complete."""
        data = self.offline_set(pair, source)
        if not osp.isfile(osp.join(data, 'annotations.json')):
            raise ConfigError(
                f'{pair.name}/{row} starts from the {source} row\'s set '
                f'{data}, which is not complete: run --rows {source} first')

    def _run(self, pair: Pair, row: str, step: str, args: List[str]) -> float:
        """Runs one tool; its output is appended to ``<step>.out`` (every
        sitting's). Returns the wall time in seconds, which is also added
        to the step's total in ``seconds.json`` as it runs."""
        out = osp.join(self.row_dir(pair, row), f'{step}.out')
        self.log(f'[{pair.name}/{row}] {step}: {" ".join(args)} '
                 f'(log: {out})')
        earlier = self.step_seconds(pair, row).get(step, 0.0)
        start = time.perf_counter()
        saved = start
        with open(out, 'a', encoding='utf-8') as f:
            stamp = datetime.now().strftime('%Y-%m-%d %H:%M:%S')
            f.write(f'### {" ".join(args)} ({stamp})\n')
            # Unbuffered: progress bars and log lines arrive as they happen.
            proc = subprocess.Popen([self.python] + args,
                                    stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT,
                                    text=True,
                                    bufsize=1,
                                    env=dict(os.environ,
                                             PYTHONUNBUFFERED='1'))
            progress = ProgressFilter()
            for line in proc.stdout:
                f.write(line)
                if self.stream and progress.shows(line):
                    sys.stdout.write(line)
                    sys.stdout.flush()
                if time.perf_counter() - saved > 30:  # survives a kill
                    saved = time.perf_counter()
                    self._save_seconds(pair, row, step,
                                       earlier + saved - start)
            proc.wait()
        seconds = time.perf_counter() - start
        self._save_seconds(pair, row, step, earlier + seconds)
        if proc.returncode != 0:
            raise RuntimeError(f'[{pair.name}/{row}] {step} failed (exit '
                               f'{proc.returncode}); see {out}')
        self.log(f'[{pair.name}/{row}] {step}: {seconds / 60:.1f} min')
        return seconds

    def _test(self, pair: Pair, row: str, config: str,
              checkpoint: str) -> Dict[str, float]:
        self._run(pair, row, 'test', [
            'tools/test.py', config, checkpoint, '--work-dir',
            osp.join(self.row_dir(pair, row), 'test')
        ])
        return read_test_metrics(
            osp.join(self.row_dir(pair, row), 'test.out'))

    def _save_seconds(self, pair: Pair, row: str, step: str,
                      seconds: float) -> None:
        totals = dict(self.step_seconds(pair, row), **{step: seconds})
        dump_json_atomic(totals,
                         osp.join(self.row_dir(pair, row), 'seconds.json'))

    def _training_finished(self, pair: Pair, work_dir: str) -> bool:
        return training_finished(work_dir, self.profile.epochs[pair.name])


def last_checkpoint(work_dir: str) -> Optional[str]:
    """The checkpoint mmengine's ``last_checkpoint`` file in ``work_dir``
    names, or None when training saved none (or it was deleted)."""
    path = osp.join(work_dir, 'last_checkpoint')
    if not osp.isfile(path):
        return None
    with open(path, encoding='utf-8') as f:
        checkpoint = f.read().strip()
    return checkpoint if osp.isfile(checkpoint) else None


def training_finished(work_dir: str, epochs: int) -> bool:
    """Whether the last checkpoint in ``work_dir`` is of epoch ``epochs``
    or later."""
    last = last_checkpoint(work_dir)
    return last is not None and checkpoint_epoch(last) >= epochs


def read_test_metrics(log: str) -> Dict[str, float]:
    """The metrics of the last ``metrics_json=`` line ``tools/test.py``
    printed into ``log`` (``{'coco/bbox_mAP': ..., ...}``).

    Raises:
        RuntimeError: The log has no such line.
    """
    with open(log, encoding='utf-8') as f:
        lines = [ln for ln in f if ln.startswith('metrics_json=')]
    if not lines:
        raise RuntimeError(f'no metrics_json= line in {log}')
    return json.loads(lines[-1][len('metrics_json='):])


def checkpoint_epoch(path: str) -> int:
    """The epoch of an mmengine ``epoch_N.pth`` checkpoint (0 otherwise)."""
    match = re.fullmatch(r'epoch_(\d+)\.pth', osp.basename(path))
    return int(match.group(1)) if match else 0


def synthesis_minutes(synth_work_dir: str, num_images: int,
                      batch_size: int = 16) -> Optional[float]:
    """CPU minutes that the first ``num_images`` images of an offline set
    cost: the summed times of the batches holding them (retries included),
    from ``tools/synthesize.py``'s ``losses_rank*.jsonl``; None without a
    log.

    Args:
        synth_work_dir (str): The set's synthesis work dir.
        num_images (int): How many images of the set, from the first.
        batch_size (int): The set's batch size. Defaults to 16.
    """
    logs = sorted(
        osp.join(synth_work_dir, name)
        for name in (os.listdir(synth_work_dir)
                     if osp.isdir(synth_work_dir) else [])
        if re.fullmatch(r'losses_rank\d+\.jsonl', name))
    if not logs:
        return None
    batches = -(-num_images // batch_size)
    seconds = 0.0
    for log in logs:
        with open(log, encoding='utf-8') as f:
            for line in f:
                entry = json.loads(line)
                if entry['batch'] < batches:
                    seconds += entry['seconds']
    return seconds / 60


def scaling_points(bench: 'DatafreeBenchmark', pair: Pair) -> List[dict]:
    """The scaling curve's finished points of a pair, fewest images first:
    the ``scaling_N`` rows and ``kd_synth_offline``, each with the minutes
    its own set took to synthesize.

    Returns:
        list[dict]: ``images``, ``synth_minutes``, ``map``, ``map50`` and
        the row's ``commit``.
    """
    points = []
    for row in ['kd_synth_offline'] + list(SCALING):
        if not bench.applies(pair, row):
            continue
        result = bench.result(pair, row)
        if result is None:
            continue
        minutes = synthesis_minutes(
            osp.join(bench.row_dir(pair, row), 'synth'), result['images'])
        points.append(dict(images=result['images'],
                           synth_minutes=None if minutes is None else
                           round(minutes, 1),
                           map=result['map'], map50=result['map50'],
                           commit=result.get('commit')))
    return sorted(points, key=lambda p: p['images'])


def train_set_key(config: str, dataset_type: str) -> str:
    """The dotted config key of the train set of type ``dataset_type``,
    looked for through dataset wrappers (``MultiImageMixDataset`` for
    Mosaic, ``RepeatDataset``, ...), for ``--cfg-options``.

    Args:
        config (str): A training config's path.
        dataset_type (str): The registered type looked for.

    Returns:
        str: e.g. ``'train_dataloader.dataset.dataset'``.
    """
    key = 'train_dataloader.dataset'
    dataset = Config.fromfile(config).train_dataloader.dataset
    while dataset.get('type') != dataset_type:
        if 'dataset' not in dataset:
            raise KeyError(f'no {dataset_type} in the train set of {config}')
        dataset = dataset.dataset
        key += '.dataset'
    return key


def hook_pool_size(config: str) -> int:
    """``pool_size`` of an online config's DeepInversionHook
    (``custom_hooks.0``)."""
    return Config.fromfile(config).custom_hooks[0].pool_size


def count_pool_images(pool_dir: str) -> int:
    """How many images a DeepInversionHook pool has ever received
    (evicted ones included)."""
    if not osp.isdir(pool_dir):
        return 0
    return ReplayPool(pool_dir).num_added


def teacher_training_seconds(work_dir: str) -> Optional[float]:
    """Wall time of a Runner training run, from the first and last
    timestamps of its mmengine log (None when no log is found)."""
    logs = sorted(
        osp.join(root, name) for root, _, names in os.walk(work_dir)
        for name in names
        if re.fullmatch(r'\d{8}_\d{6}\.log', name))
    # File logs stamp 'YYYY/MM/DD hh:mm:ss', console logs 'MM/DD hh:mm:ss'.
    stamp = re.compile(r'^(\d{4}/)?(\d\d/\d\d \d\d:\d\d:\d\d) - mmengine')
    for log in logs:
        with open(log, encoding='utf-8') as f:
            lines = f.readlines()
        times = [(m.group(1) or '2000/') + m.group(2)
                 for m in map(stamp.match, lines) if m]
        if len(times) >= 2 and any('Epoch(train)' in ln for ln in lines):
            first, last = (datetime.strptime(t, '%Y/%m/%d %H:%M:%S')
                           for t in (times[0], times[-1]))
            return (last - first).total_seconds()
    return None


def collect(bench: DatafreeBenchmark,
            pairs: Sequence[Pair],
            commit: str,
            previous: Optional[dict] = None) -> dict:
    """The results json from the finished rows (unfinished ones absent).

    Args:
        bench (DatafreeBenchmark): Its work dir holds the finished rows.
        pairs (Sequence[Pair]): The pairs of the json.
        commit (str): The commit of this run (each row keeps its own).
        previous (dict, optional): An earlier results json of the same
            profile, e.g. written on another machine or in a deleted work
            dir: its rows that this work dir has not finished are kept, so
            running one row never drops the others. A row finished here
            replaces the earlier one. Defaults to None.

    Returns:
        dict: ``commit``, ``profile`` and ``pairs`` -> row -> result, the
        rows in :data:`ROWS` order.
    """
    if previous is not None and previous.get('profile') != bench.profile.name:
        raise ValueError(
            f'the earlier results are of profile {previous.get("profile")!r}'
            f', this run is {bench.profile.name!r}: write them elsewhere')
    earlier = (previous or {}).get('pairs', {})
    results = dict(commit=commit, profile=bench.profile.name, pairs={})
    for pair in pairs:
        rows = {}
        for row in ROWS:
            done = bench.result(pair, row)
            if done is None:
                done = earlier.get(pair.name, {}).get(row)
            if done is not None:
                rows[row] = done
        results['pairs'][pair.name] = rows
    return results
