"""On-the-fly image synthesis during data-free distillation.

The hook inverts the frozen teacher of a distillation model (``KDDetector``)
while the student trains: every ``interval`` iterations it synthesizes
``batches_per_round`` batches for new target layouts of the train set (a
:class:`~mmdiode.datasets.BoxSamplerDataset`) into the data set's
:class:`~mmdiode.datasets.ReplayPool`, whose images the data loader serves.
The pool's folder is the train set's ``pool_dir``, by default
``<work_dir>/pool`` (filled in by this hook in ``before_run``; why then:
:mod:`mmdiode.datasets.box_sampler_dataset`).
"""
import json
import math
import os.path as osp
import time
from typing import List, Optional, Sequence, Tuple

import torch
from mmdet.registry import HOOKS, TASK_UTILS
from mmengine.dist import all_reduce, barrier, get_dist_info
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.runner import BaseLoop
from torch import nn

from mmdiode.apis.synthesis import recombine_settings, run_synthesizer
from mmdiode.datasets import BoxSamplerDataset, ReplayPool
from mmdiode.models.utils import declared_teacher_classes
from mmdiode.utils.cli import ConfigError
from mmdiode.utils.fileio import dump_json_atomic
from mmdiode.utils.seeding import derive_seed

#: Key of the hook's state in mmengine checkpoints.
CHECKPOINT_KEY = 'deep_inversion_hook'
#: The hook's progress beside the pool (for a stop before any checkpoint).
STATE_FILE = 'hook_state_rank{rank}.json'
#: The object bank of a synthesizer's ``recombine`` option, beside the pool.
BANK_FILE = 'object_bank_rank{rank}.pt'


@HOOKS.register_module()
class DeepInversionHook(Hook):
    """Synthesizes training images from the teacher during training.

    ``before_run`` (of a training run): a train set without ``pool_dir``
    gets the hook's ``pool_dir``, by default ``<work_dir>/pool``, before
    anything reads the pool and before an ``EpochBasedTrainLoop`` forks its
    data loader workers. An ``IterBasedTrainLoop`` has forked them already
    when it was built: with ``num_workers > 0`` it needs ``pool_dir`` in the
    config.

    ``before_train``: the synthesizer is built with the model's teacher
    (``runner.model.teacher``, unwrapped from DDP), the teacher's classes
    are recorded in the pool, and an empty pool is filled: with this rank's
    share of ``warm_start`` if given, else with ``initial_batches``
    synthesized batches, so training starts on synthesized images. After a
    warm start of ``n`` images (all ranks') the layout counter starts at
    ``n``: ``tools/synthesize.py`` writes the layouts ``0..n-1`` of its
    sampler, the train set's by default, and they would otherwise be made
    again.

    ``after_train_iter``: every ``interval`` iterations, ``batches_per_round``
    batches of ``batch_size`` images per rank. A global counter numbers the
    layouts: rank ``r`` of ``W`` synthesizes the layouts
    ``counter + r + j * W`` (``j < batch_size``), then every rank advances
    the counter by ``batch_size * W``, so each batch is made of new layouts.
    Each batch's random generator is seeded by ``(seed, counter, rank)``.
    Images whose pixels were not finite are dropped.

    The teacher runs in eval mode without gradients on its parameters; the
    synthesizer removes its BatchNorm hooks after each batch. The student
    is not touched, except by the synthesizer's ``competition`` term (off
    by default), which runs it in eval mode with frozen parameters during
    a batch (``competition.py``).

    Logged to ``runner.message_hub`` (printed by mmengine's ``LoggerHook``
    as ``synth/...``): ``synth/pool_size``, ``synth/images_per_s``,
    ``synth/iterations`` (iterations the last batch ran, fewer than
    configured with the synthesizer's ``early_exit``) and the final value
    of every synthesis loss term (``synth/loss_task``,
    ``synth/loss_bn``, ``synth/loss_tv_l1``, the total ``synth/loss`` and the
    teacher's own terms).

    With the synthesizer's ``recombine`` option, each rank's first
    ``cold_batches`` batches run the full recipe and fill an object bank
    (saved as ``object_bank_rank<r>.pt`` beside the pool after each of
    them); every later batch starts from its objects (a warm start, logged
    as ``synth/warm``) and, with ``refill``, adds its own found objects to
    the bank (saved after each batch).

    Resuming: the pool lives in its folder; the counter (and the pool's file
    counters) are saved in checkpoints under ``CHECKPOINT_KEY``. A resumed
    run restores the counter of the checkpoint, so rounds after it
    synthesize exactly the layouts (and seeds) an uninterrupted run would;
    images synthesized after the checkpoint by the interrupted run stay in
    the pool (their layouts are synthesized once more).

    A run stopped before its first checkpoint (during the initial batches,
    which take minutes each on a CPU) leaves no checkpoint to resume from:
    each rank also records its counter and how many initial batches it
    finished in ``hook_state_rank<r>.json`` in the pool folder after every
    batch, and a new start on the same pool continues from there (the
    remaining initial batches, then new layouts), so no layout is
    synthesized twice and the start costs what an uninterrupted one does.

    Args:
        synthesizer (dict): ``TASK_UTILS`` config of the synthesizer
            (``DeepInversion``, ``MultiObjectImpressions``) without
            ``teacher``. Its final stage must make images of the data set's
            ``img_size``.
        pool_dir (str, optional): The pool folder, for a train set that
            sets none; must equal the train set's ``pool_dir`` if both are
            given. Defaults to None: the train set's, else
            ``<work_dir>/pool``.
        pool_size (int): Most images in the pool, over all ranks (each rank
            keeps ``ceil(pool_size / world_size)`` of its own). Defaults to
            2000.
        interval (int): Training iterations between synthesis rounds.
            Defaults to 100.
        batches_per_round (int): Batches per rank per round. Defaults to 1.
        batch_size (int): Images per synthesized batch. Defaults to 16.
        initial_batches (int): Batches per rank synthesized before training
            when the pool is empty and no ``warm_start`` is given. Defaults
            to 1.
        warm_start (str, optional): Output folder of ``tools/synthesize.py``
            imported into an empty pool (see :meth:`ReplayPool.warm_start`).
            Defaults to None.
        seed (int): Seed of the synthesis (initial noise, augmentations).
            The layouts follow the data set's seed. Defaults to 0.
    """

    priority = 'NORMAL'

    def __init__(self,
                 synthesizer: dict,
                 pool_dir: Optional[str] = None,
                 pool_size: int = 2000,
                 interval: int = 100,
                 batches_per_round: int = 1,
                 batch_size: int = 16,
                 initial_batches: int = 1,
                 warm_start: Optional[str] = None,
                 seed: int = 0) -> None:
        if 'teacher' in synthesizer:
            raise ConfigError('synthesizer: do not set teacher; the hook '
                              'passes the model\'s teacher')
        positive = dict(pool_size=pool_size,
                        interval=interval,
                        batches_per_round=batches_per_round,
                        batch_size=batch_size)
        for name, value in positive.items():
            if value < 1:
                raise ConfigError(f'DeepInversionHook {name} must be >= 1, '
                                  f'got {value}')
        if initial_batches < 0:
            raise ConfigError('DeepInversionHook initial_batches must be >= '
                              f'0, got {initial_batches}')
        self.synthesizer_cfg = dict(synthesizer)
        self.pool_dir = pool_dir
        self.pool_size = pool_size
        self.interval = interval
        self.batches_per_round = batches_per_round
        self.batch_size = batch_size
        self.initial_batches = initial_batches
        self.warm_start = warm_start
        self.seed = seed
        #: Layouts synthesized so far over all ranks (the next layout index).
        self.counter = 0
        # Set in before_train, once the process group exists.
        self.rank, self.world_size = 0, 1
        self.pool: Optional[ReplayPool] = None
        self.synthesizer = None
        #: The object bank of the synthesizer's ``recombine`` option.
        self.objects = None
        self.dataset: Optional[BoxSamplerDataset] = None
        self._resumed_state: Optional[dict] = None
        #: Initial batches this rank has synthesized into the pool.
        self.initial_done = 0

    # ------------------------------------------------------------------
    # Hook interface

    def before_run(self, runner) -> None:
        """Gives a train set without ``pool_dir`` its folder:
        ``pool_dir`` of the hook if given, else ``<work_dir>/pool``.

        mmengine calls ``before_run`` once the train loop, and with it the
        data set, is built, and before it resumes a checkpoint (which reads
        the data set's metainfo) or iterates the data loader. Val and test
        runs (``runner.val()``, ``runner.test()``) build no train set and
        are left alone.

        Raises:
            ConfigError: The train set is no ``BoxSamplerDataset``, its
                ``pool_dir`` differs from the hook's, or an
                ``IterBasedTrainLoop`` started its data loader workers
                before the folder was known.
        """
        if not isinstance(runner._train_loop, BaseLoop):
            return  # not training: the train loop is still a config
        try:
            dataset = self._train_set(runner)
        except (ValueError, TypeError) as e:
            raise ConfigError(f'DeepInversionHook: {e}') from e
        if dataset.pool_dir is None:
            dataset.pool_dir = self.pool_dir or osp.join(
                runner.work_dir, 'pool')
            if (runner.train_dataloader.num_workers > 0
                    and getattr(runner.train_loop, 'dataloader_iterator',
                                None) is not None):
                # IterBasedTrainLoop starts its workers when it is built:
                # they hold copies of the data set without the folder.
                raise ConfigError(
                    f'DeepInversionHook: {type(runner.train_loop).__name__}'
                    ' started its data loader workers before any hook ran, '
                    'without the pool folder: set the train set\'s pool_dir'
                    f' (e.g. {dataset.pool_dir}) in the config, or '
                    'num_workers=0')
        runner.logger.info(
            f'DeepInversionHook: replay pool {dataset.pool_dir}')

    def before_train(self, runner) -> None:
        """Builds the synthesizer and the pool; fills an empty pool.

        Raises:
            ConfigError: A setting does not fit (model, train set, sizes),
                or the pool folder holds another run's or unreadable
                files. Nothing in the pool folder has been changed then.
        """
        try:
            self._set_up(runner)
        except ConfigError:
            raise
        except (ValueError, TypeError, OSError) as e:
            raise ConfigError(f'DeepInversionHook: {e}') from e
        self.pool.remove_orphans(self.rank)
        self._fill_empty_pool(runner)

    def _set_up(self, runner) -> None:
        """Everything of :meth:`before_train` that only reads: the
        synthesizer, the pool and the progress to continue from."""
        teacher = self._teacher_of(runner.model)
        self.dataset = self._train_set(runner)
        self.rank, self.world_size = get_dist_info()
        self.pool = ReplayPool(self.dataset.pool_dir,
                               max_size=math.ceil(self.pool_size /
                                                  self.world_size),
                               classes=self._classes(runner))
        self.synthesizer = TASK_UTILS.build(
            dict(self.synthesizer_cfg, teacher=teacher))
        if self.synthesizer.competition.enabled:
            self.synthesizer.attach_student(self._student_of(runner.model))
        self._check_size()
        self.objects = self._object_bank()
        self.dataset.layout(0)  # the layout settings, checked now
        self.pool.check_images(self.dataset.img_size)
        if self._resumed_state is not None:
            self.counter = int(self._resumed_state['counter'])
            self.pool.load_state_dict(self._resumed_state['pool'])
            # A checkpoint is saved during training: the start was complete.
            self.initial_done = self.initial_batches
        else:
            self._continue_interrupted_start(runner)

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs=None) -> None:
        """Runs a synthesis round every ``interval`` iterations."""
        if self.every_n_train_iters(runner, self.interval):
            for _ in range(self.batches_per_round):
                self._synthesize_batch(runner)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Saves the layout counter and the pool's file counters."""
        checkpoint[CHECKPOINT_KEY] = dict(counter=self.counter,
                                          pool=self.pool.state_dict())

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Keeps the saved state for ``before_train`` (which follows)."""
        self._resumed_state = checkpoint.get(CHECKPOINT_KEY)

    # ------------------------------------------------------------------
    # Set-up

    @staticmethod
    def _part_of(model: nn.Module, attr: str, missing: str) -> nn.Module:
        """The distillation model's ``attr`` module (its teacher, its
        student), unwrapped from DDP; ``missing`` (formatted with the
        model's class name) is the error without one."""
        if is_model_wrapper(model):
            model = model.module
        part = getattr(model, attr, None)
        if not isinstance(part, nn.Module):
            raise TypeError(missing.format(type(model).__name__))
        return part

    @classmethod
    def _teacher_of(cls, model: nn.Module) -> nn.Module:
        return cls._part_of(
            model, 'teacher',
            'DeepInversionHook needs a distillation model with a frozen '
            'teacher (a .teacher module, e.g. KDDetector), got {}')

    @classmethod
    def _student_of(cls, model: nn.Module) -> nn.Module:
        """The distillation model's student, for the competition term."""
        return cls._part_of(
            model, 'student',
            'the synthesizer\'s competition term needs a distillation model '
            'with a .student module (e.g. KDDetector), got {}; or set '
            'competition.weight=0')

    def _train_set(self, runner) -> BoxSamplerDataset:
        dataset = runner.train_dataloader.dataset
        # Dataset wrappers (MultiImageMixDataset for Mosaic, RepeatDataset,
        # ...) keep the wrapped set in ``.dataset``.
        wrappers = []
        while (not isinstance(dataset, BoxSamplerDataset)
               and hasattr(dataset, 'dataset')):
            wrappers.append(type(dataset).__name__)
            dataset = dataset.dataset
        if not isinstance(dataset, BoxSamplerDataset):
            found = ' in '.join([type(dataset).__name__] + wrappers[::-1])
            raise TypeError('DeepInversionHook needs the train set to be a '
                            'BoxSamplerDataset (it gives the layouts and '
                            f'reads the pool), maybe in a dataset wrapper; '
                            f'got {found}')
        if (self.pool_dir is not None and dataset.pool_dir is not None
                and osp.abspath(self.pool_dir) != osp.abspath(
                    dataset.pool_dir)):
            raise ValueError(
                f'DeepInversionHook pool_dir {self.pool_dir} differs from '
                f'the train set\'s pool_dir {dataset.pool_dir}')
        return dataset

    def _classes(self, runner) -> Tuple[str, ...]:
        """The data set's declared classes, else the teacher's from the
        config (never the pool's: a pool written by another config must not
        set the classes of this run)."""
        classes = self.dataset.declared_classes
        if not classes:
            classes = teacher_classes(runner.cfg.get('model') or {})
        if not classes:
            raise ValueError(
                'the teacher\'s class names are unknown: set the train set\'s'
                ' metainfo=dict(classes=...) (or KDDetector classes=..., or '
                'a teacher config whose data set metainfo names them)')
        return tuple(classes)

    def _check_size(self) -> None:
        size = tuple(self.synthesizer.final_size)
        img = self.dataset.img_size
        if size != (img, img):
            raise ValueError(
                f'the synthesizer makes {size[1]}x{size[0]} images but the '
                f'train set\'s img_size is {img}; make them equal')

    def _object_bank(self):
        """The synthesizer's object bank (None without ``recombine``), as
        saved beside the pool if it was."""
        if recombine_settings(self.synthesizer) is None:
            return None
        bank = self.synthesizer.new_object_bank()
        if osp.isfile(self._bank_path()):
            bank.load(self._bank_path())
        return bank

    def _bank_path(self) -> str:
        return osp.join(self.dataset.pool_dir,
                        BANK_FILE.format(rank=self.rank))

    def _state_path(self) -> str:
        return osp.join(self.dataset.pool_dir,
                        STATE_FILE.format(rank=self.rank))

    def _save_progress(self) -> None:
        dump_json_atomic(dict(counter=self.counter,
                              initial_done=self.initial_done),
                         self._state_path())

    def _batches_in_pool(self) -> int:
        """Batches this rank has added to the pool (its images rounded up
        to whole batches: dropped images used their places)."""
        own = self.pool.state_dict()['next_ids'].get(self.rank, 0)
        return math.ceil(own / self.batch_size)

    def _layouts_in_pool(self) -> int:
        """Layouts the pool's batches used, over all ranks."""
        return self._batches_in_pool() * self.batch_size * self.world_size

    def _continue_interrupted_start(self, runner) -> None:
        """Takes over the counter and initial batches that an earlier start
        on this pool recorded before it stopped without a checkpoint."""
        if not osp.isfile(self._state_path()):
            return
        with open(self._state_path(), encoding='utf-8') as f:
            text = f.read()
        try:
            state = json.loads(text)
            self.counter = int(state['counter'])
            self.initial_done = int(state['initial_done'])
        except (ValueError, TypeError, KeyError) as e:
            raise ConfigError(
                f'DeepInversionHook: {self._state_path()} is not the hook\'s '
                f'progress record ({type(e).__name__}: {e}); it was changed '
                'by hand: move the pool folder away or use another '
                'pool_dir') from e
        runner.logger.info(
            f'DeepInversionHook: continuing an earlier start on this pool '
            f'without a checkpoint: layout counter {self.counter}, '
            f'{self.initial_done}/{self.initial_batches} initial batches '
            'done')

    def _fill_empty_pool(self, runner) -> None:
        empty = len(self.pool) == 0
        # Every rank decides before any rank writes, so all agree (and keep
        # the same counter).
        barrier()
        if empty and self.warm_start is not None:
            num = self._warm_start()
            self.initial_done = self.initial_batches
            # tools/synthesize.py numbers a set's layouts 0..n-1 as the
            # train set does (the same sampler and seed by default): new
            # layouts follow the imported set's instead of making them again.
            self.counter = max(self.counter, self._imported_images(num))
            self._save_progress()
            runner.logger.info(f'DeepInversionHook: imported {num} images '
                               f'from {self.warm_start} into the pool; new '
                               f'layouts start at {self.counter}')
        elif empty or self.initial_done < self.initial_batches:
            # Minutes on a CPU before the first training step: say how far.
            if not empty and self.initial_done == 0:
                # Images without a progress record: a run killed between
                # writing its first batch and recording it, or a pool filled
                # otherwise (another tool, an older version of this hook).
                # Its batches count as initial batches done (a large pool is
                # not filled again), and new layouts follow them.
                self.initial_done = min(self.initial_batches,
                                        self._batches_in_pool())
                self.counter = max(self.counter, self._layouts_in_pool())
            for k in range(self.initial_done + 1, self.initial_batches + 1):
                start = time.perf_counter()
                self._synthesize_batch(runner, initial=True)
                runner.logger.info(
                    f'DeepInversionHook: initial batch {k}/'
                    f'{self.initial_batches} synthesized in '
                    f'{time.perf_counter() - start:.0f} s, pool '
                    f'{len(self.pool)} images')
            runner.logger.info(
                f'DeepInversionHook: synthesized {self.initial_batches} '
                f'initial batches of {self.batch_size} images per rank')
        # Training starts once every rank's images are in the pool.
        barrier()

    def _warm_start(self) -> int:
        """Imports this rank's share of ``warm_start`` into the pool.

        Raises:
            ConfigError: The folder is no synthesized set, names other
                classes, or holds no image for this rank.
        """
        try:
            num = self.pool.warm_start(self.warm_start, self.rank,
                                       self.world_size)
        except (ValueError, OSError) as e:
            text = str(e)
            text = text[len('warm_start: '):] if text.startswith(
                'warm_start: ') else text
            raise ConfigError(f'DeepInversionHook warm_start: {text}') from e
        if num == 0:
            raise ConfigError(
                f'DeepInversionHook warm_start: {self.warm_start} holds no '
                f'image for rank {self.rank} of {self.world_size}: give a '
                'synthesized set with images (tools/synthesize.py) or drop '
                'warm_start to synthesize initial batches')
        return num

    def _imported_images(self, num: int) -> int:
        """Images the ranks imported together, ``num`` of them this
        rank's."""
        total = torch.tensor(num, dtype=torch.int64)
        all_reduce(total, op='sum')
        return int(total)

    # ------------------------------------------------------------------
    # Synthesis

    def layout_indices(self) -> List[int]:
        """Global layout indices of this rank's next batch."""
        return [
            self.counter + self.rank + j * self.world_size
            for j in range(self.batch_size)
        ]

    def _synthesize_batch(self, runner, initial: bool = False) -> None:
        layouts = [
            self.dataset.layout(i).as_tensors() for i in self.layout_indices()
        ]
        generator = torch.Generator().manual_seed(
            derive_seed(self.seed, self.counter, self.rank))
        filling = (self.objects is not None and self.objects.batches <
                   self.synthesizer.recombine['cold_batches'])
        # With refill, warm batches offer their objects to the bank too.
        offering = filling or (self.objects is not None
                               and self.synthesizer.recombine['refill'])
        start = time.perf_counter()
        result = run_synthesizer(
            self.synthesizer,
            layouts,
            generator,
            f'DeepInversionHook, layouts from {self.counter}',
            objects=None if filling else self.objects)
        seconds = time.perf_counter() - start
        self.counter += self.batch_size * self.world_size
        valid = result.valid.tolist()
        if not all(valid):
            runner.logger.warning(
                f'DeepInversionHook: dropped {valid.count(False)} images '
                'with non-finite pixels')
        self.pool.add(
            result.images[result.valid],
            [(b, lb)
             for b, lb, ok in zip(result.boxes, result.labels, valid) if ok],
            rank=self.rank)
        if offering:
            keep = result.valid
            self.objects.add_found(
                self.synthesizer.teacher, result.images[keep],
                [b for b, ok in zip(result.boxes, valid) if ok],
                [lb for lb, ok in zip(result.labels, valid) if ok])
            self.objects.batches += 1
            self.objects.save(self._bank_path())
        self.initial_done += int(initial)
        self._save_progress()
        hub = runner.message_hub
        hub.update_scalar('train/synth/pool_size', len(self.pool))
        hub.update_scalar('train/synth/images_per_s',
                          len(layouts) / max(seconds, 1e-9))
        if result.iterations is not None:
            hub.update_scalar('train/synth/iterations', result.iterations)
        if self.objects is not None:
            hub.update_scalar('train/synth/warm', int(result.warm))
        for name, (_, final) in result.loss_history.items():
            hub.update_scalar(f'train/synth/{name}', final)


def teacher_classes(model_cfg: dict) -> Optional[Sequence[str]]:
    """Class names a KD model config declares: its ``classes``, else the
    teacher's known without loading its weights (its ``classes``, else its
    config's data set ``metainfo``)."""
    if model_cfg.get('classes'):
        return model_cfg['classes']
    teacher = model_cfg.get('teacher')
    if not isinstance(teacher, dict) or 'config' not in teacher:
        return None
    return declared_teacher_classes(teacher)
