"""DeepInversion for object detection (DIODE): images from a frozen teacher.

A batch of images is optimised, in the teacher's own input space, so that the
teacher detects given target boxes in them (its own ``loss()``), while a
BatchNorm-statistics prior and image priors keep them close to natural
images. Differentiable augmentations, a multi-resolution schedule and
false-positive sampling follow the DIODE recipe. An optional early exit
(``early_exit.py``) leaves a stage once the teacher finds the batch's
targets and the BN prior has stopped falling. An optional warm start
(``object_bank.py``) begins a batch from objects of earlier batches, pasted
at its targets, or from the output of a generator fitted to earlier images
(``layout_generator.py``, an amortised initialisation), and runs a shorter
schedule. An optional competition term (``competition.py``, Adaptive
DeepInversion) rewards disagreement between the teacher and the student
being trained, where synthesis runs beside the training. An optional label
sampler (``class_co_occurrence.py``) replaces the layouts' classes before a
batch starts, e.g. with classes the teacher's classifier finds similar.
"""
import contextlib
import math
import warnings
from collections import deque
from dataclasses import dataclass
from typing import (Callable, Dict, Iterator, List, Optional, Sequence, Tuple,
                    Union)

import torch
import torch.nn.functional as F
from mmdet.registry import TASK_UTILS
from mmdet.structures import DetDataSample
from mmengine.structures import InstanceData
from torch import Tensor, nn

from mmdiode.utils.defaults import init_defaults
from .augment import BoxConsistentAugment
from .bn_prior import BNStatisticsPrior
from .competition import StudentCompetition
from .early_exit import EARLY_EXIT_DEFAULTS, EarlyExit
from .fp_sampling import FalsePositiveSampler
from .image_priors import l2_prior, tv_l1, tv_l2
from .input_space import PixelSpace
from .layout_generator import AMORTISED_DEFAULTS, LayoutGenerator
from .object_bank import ObjectBank

#: (boxes (K, 4), labels (K,)); also accepts numpy arrays or a NamedTuple.
LayoutLike = Tuple[Tensor, Tensor]
#: Where a warm batch starts from (the ``recombine`` option's ``source``).
WarmSource = Union[ObjectBank, LayoutGenerator]
LossCallback = Callable[[int, int, Dict[str, Tensor]], None]

#: Defaults of the dict arguments of :class:`DeepInversion` (DIODE recipe).
BN_PRIOR_DEFAULTS = dict(
    weight=0.1, p=2, first_bn_multiplier=2.0, layer_pattern='.*')
IMAGE_PRIOR_DEFAULTS = dict(tv_l1=75.0, tv_l2=0.0, l2=0.0)
TASK_LOSS_DEFAULTS = dict(weight=1.0, term_weights=None)
AUGMENT_DEFAULTS = dict(
    jitter_mode='roll',
    flip_prob=0.5,
    brightness=0.2,
    contrast=0.1,
    erase_prob=0.5,
    erase_scale=(0.02, 0.2))
STAGES_DEFAULT = (dict(
    size=160, iterations=2500, lr=0.2, min_lr=0.0, jitter=20),
                  dict(
                      size=320,
                      iterations=1500,
                      lr=0.002,
                      min_lr=0.0005,
                      jitter=40))
OPTIMIZER_DEFAULTS = dict(betas=(0.0, 0.0), eps=1e-8, fused=None)
# Devices with a fused (one-kernel) Adam step in torch; same update as the
# per-op one, a third of its time on the CPU.
_FUSED_ADAM_DEVICES = ('cpu', 'cuda')
#: Defaults of the ``fp_sampling`` argument (DIODE's): those of
#: :class:`FalsePositiveSampler`.
FP_SAMPLING_DEFAULTS = init_defaults(FalsePositiveSampler)

#: Defaults of the ``competition`` argument (off): those of
#: :class:`StudentCompetition`.
COMPETITION_DEFAULTS = init_defaults(StudentCompetition)

#: Defaults of the ``recombine`` argument (off): batches that start from
#: objects of earlier ones (``object_bank.py``), with their own schedule.
RECOMBINE_DEFAULTS = dict(
    enable=False,
    cold_batches=2,
    stages=None,
    fp_sampling=dict(enable=False),
    max_per_class=64,
    score_thr=0.3,
    iou_thr=0.5,
    refill=False,
    recolour=False,
    feather=0.0,
    source='bank',
    amortised=dict())
# Where a warm batch starts from: crops of earlier objects, or a generator
# fitted to earlier images (layout_generator.py).
_WARM_SOURCES = ('bank', 'amortised')

_STAGE_DEFAULTS = dict(min_lr=0.0, jitter=0, augment=True)
_STAGE_KEYS = {
    'size', 'iterations', 'lr', 'min_lr', 'jitter', 'augment', 'bn_weight',
    'task_weight'
}
# What ``augment=False`` in a stage switches off (jitter is per stage).
_NO_AUGMENT = dict(
    flip_prob=0.0, brightness=0.0, contrast=0.0, erase_prob=0.0, crop_prob=0.0)
_INITS = ('noise', 'mean')


@dataclass
class SynthesisResult:
    """What :meth:`DeepInversion.synthesize` returns (on the CPU).

    Attributes:
        images (Tensor): (N, H, W, 3) uint8 RGB images at the final size.
        boxes (list[Tensor]): Per image (K_i, 4) float xyxy targets in
            pixels of the final size, FP-sampled ones included (last).
        labels (list[Tensor]): Per image (K_i,) int64 target labels.
        valid (Tensor): (N,) bool, False for images whose pixels were not
            finite at the end (their ``images`` entries are meaningless).
        loss_history (dict[str, tuple[float, float]]): For every loss term
            (``'loss'`` the total, ``'loss_task'``, ``'loss_bn'``,
            ``'loss_tv_l1'``, ... and the teacher's own terms such as
            ``'loss_cls'``, unweighted) its value at the first and at the
            last optimisation step.
        restarts (int): How many times non-finite losses re-initialised
            images.
        iterations (int, optional): Optimisation iterations run, summed
            over the stages: the configured total unless the early exit
            left a stage early. None when not recorded (a result built
            without it).
        warm (bool): Whether the batch started warm, from objects of an
            :class:`ObjectBank` with the ``recombine`` schedule.
    """
    images: Tensor
    boxes: List[Tensor]
    labels: List[Tensor]
    valid: Tensor
    loss_history: Dict[str, Tuple[float, float]]
    restarts: int
    iterations: Optional[int] = None
    warm: bool = False


@TASK_UTILS.register_module()
class DeepInversion:
    """Synthesizes images for given box layouts by inverting a detector.

    The loss of one step, on an augmented view of the images (model space)::

        loss = task.weight * sum_t term_weights[t] * teacher.loss(...)[t]
             + bn.weight * BN statistics prior
             + tv_l1 * TV_L1 + tv_l2 * TV_L2 + l2 * L2
             - competition.weight * D(teacher, student)

    The task terms are every entry of the teacher's ``loss()`` dict whose key
    contains ``'loss'`` (as mmengine's ``parse_losses``), towards the
    (augmented) target boxes. The image priors see the un-augmented images,
    TV ones in [0, 1] intensity units (so DIODE's weights carry over to any
    preprocessor) and L2 in model space (0 is the mean colour). Adam updates
    the pixels with a cosine learning rate per stage; pixels are clamped to
    the valid range after every step. Between stages the images are
    upsampled (bilinear) and the boxes scaled with them. The teacher is put
    in eval mode with frozen parameters while synthesizing; both are
    restored afterwards.

    With ``early_exit`` enabled, a batch leaves a stage before its last
    iteration once the teacher detects its targets and the BN prior has
    stopped falling (:class:`EarlyExit`, whose module docstring records the
    rules). The global iteration indices stay those of the configured
    schedule (the next stage starts at its configured index; the skipped
    ones are never run), so false-positive sampling and the callback see
    the same indices with and without the option; the cosine learning rate
    of a stage left early has not decayed to its ``min_lr``.
    :attr:`SynthesisResult.iterations` counts the iterations run. Disabled
    (the default), nothing of it runs: the DIODE recipe is unchanged.

    A step whose total loss is not finite is skipped: images with non-finite
    pixels (all images if none is) get fresh noise, their Adam state and
    their targets (FP-sampled ones dropped) are reset, and a restart is
    counted. More than ``max_restarts`` restarts raise ``RuntimeError``.

    With ``recombine`` enabled, a call given a non-empty
    :class:`ObjectBank` (``objects``) starts from fresh noise with a crop of
    an earlier object of each target's class pasted at the target's box (with
    ``source='amortised'``, a trained :class:`LayoutGenerator`: from its
    image of the layouts), and runs the ``recombine`` schedule (``stages``,
    ``fp_sampling``) instead of the configured one; without a bank (or with
    an empty one) it runs the configured recipe from noise. Which batches
    fill the bank and which start warm is the caller's choice
    (:class:`~mmdiode.apis.SynthesisJob`: the first ``cold_batches``
    batches fill it, every later one starts warm).

    Dict arguments are merged into their defaults (the module constants
    ``BN_PRIOR_DEFAULTS`` etc.): keys not given keep the values shown.

    Args:
        teacher (nn.Module): Built mmdet detector (any with ``loss()`` and
            ``predict()``, e.g. YOLOv3, Faster R-CNN, RetinaNet).
        bn_prior (dict): ``weight`` (0 switches the prior off) and the
            :class:`BNStatisticsPrior` arguments ``p``,
            ``first_bn_multiplier`` and ``layer_pattern``. Defaults to
            ``dict(weight=0.1, p=2, first_bn_multiplier=2.0,
            layer_pattern='.*')`` (DIODE, but on every BN layer).
        image_prior (dict): Weights ``tv_l1``, ``tv_l2`` and ``l2`` (0 is
            off). Defaults to ``dict(tv_l1=75.0, tv_l2=0.0, l2=0.0)`` (DIODE).
        task_loss (dict): ``weight`` of the teacher's loss and
            ``term_weights``, a dict from the teacher's loss keys (e.g.
            ``'loss_cls'``) to multipliers (others: 1). Defaults to
            ``dict(weight=1.0, term_weights=None)``.
        augment (dict): :class:`BoxConsistentAugment` arguments, except
            ``jitter`` (set per stage). Defaults to DIODE's
            ``dict(jitter_mode='roll', flip_prob=0.5, brightness=0.2,
            contrast=0.1, erase_prob=0.5, erase_scale=(0.02, 0.2))``.
        stages (list[dict]): The resolution schedule, each with ``size``
            (int or (h, w)), ``iterations``, ``lr``, ``min_lr`` (default 0)
            and ``jitter`` (pixels, default 0). Optional per stage:
            ``augment`` (default True; False switches off flips,
            brightness/contrast, erasing and crops in that stage, jitter
            stays as set), ``bn_weight`` and ``task_weight`` (default: the
            ``bn_prior`` and ``task_loss`` weights). A last stage with
            ``augment=False, jitter=0`` and a heavier BN prior "polishes"
            the statistics of images the earlier stages made detectable
            (README, "Synthesis quality"). Defaults to DIODE's 2500
            iterations at 160 px (lr 0.2, jitter 20), then 1500 at 320 px
            (lr 0.002 -> 0.0005, jitter 40).
        optimizer (dict): Further ``torch.optim.Adam`` arguments. Defaults
            to ``dict(betas=(0.0, 0.0), eps=1e-8, fused=None)`` (DIODE's
            betas and eps; ``fused=None`` takes torch's fused Adam kernel on
            the CPU and CUDA, the per-op one elsewhere).
        fp_sampling (dict): :class:`FalsePositiveSampler` arguments; its
            iterations count globally over the stages. Defaults to DIODE's
            ``dict(enable=True, start=800, end=2800, interval=100,
            score_thr=0.2, iou_thr=0.35, min_area=0.01, max_area=0.85)``.
        amp (bool): Run the teacher under ``torch.autocast`` (float16) with
            a ``GradScaler``; CUDA only, ignored with a warning on the CPU.
            Defaults to False.
        channels_last (bool): Use the channels-last memory format for the
            images and (while synthesizing) the teacher. Defaults to False.
        max_restarts (int): Restarts allowed per :meth:`synthesize` call.
            Defaults to 3.
        init (str): ``'noise'`` (standard normal in model space, clamped)
            or ``'mean'`` (the mean colour, model-space 0). Defaults to
            'noise'.
        early_exit (dict): :class:`EarlyExit` arguments: ``enable``,
            ``stages`` (indices of the stages that may be left early; None:
            every stage), ``min_iterations`` and ``check_interval``
            (iterations of a stage before the first check and between
            checks), ``score_thr``, ``iou_thr`` and ``found_frac`` (a
            target counts as found when a prediction of its label with at
            least that score and IoU matches it; at least that fraction of
            the batch's targets must be found), ``bn_window`` and ``bn_tol``
            (the mean ``loss_bn`` of the last ``bn_window`` iterations must
            not be below that of the ``bn_window`` before by more than
            ``bn_tol``, relative; always true in a stage without the BN
            prior). Defaults to ``dict(enable=False, stages=None,
            min_iterations=20, check_interval=10, score_thr=0.3,
            iou_thr=0.5, found_frac=0.9, bn_window=10, bn_tol=0.02)`` (off).
        recombine (dict): ``enable``; ``cold_batches`` (how many batches a
            job synthesizes from noise with the full recipe to fill the
            bank; read by the job); ``stages`` (the schedule of a warm
            batch, as ``stages``; its last size must be the final size;
            required when enabled) and ``fp_sampling`` (its false-positive
            sampling, merged into ``FP_SAMPLING_DEFAULTS``; iterations count
            over the warm schedule); ``max_per_class``, ``score_thr`` and
            ``iou_thr`` (the :class:`ObjectBank`: crops kept per class, and
            when the teacher finds a target so that its crop is kept);
            ``refill`` (warm batches offer their found objects to the bank
            too; read by the job and the hook), ``recolour`` (crops
            pasted with their RGB channels in a random order) and
            ``feather`` (fraction of each side of a pasted crop over which
            it blends into the noise; 0 pastes a hard rectangle);
            ``source``, where a warm batch starts from: ``'bank'`` (the
            crops above) or ``'amortised'`` (the output of a
            :class:`LayoutGenerator` fitted to the cold batches' images,
            and with ``refill`` to every batch's; the bank's settings are
            then unused) and ``amortised``, the generator's arguments
            (merged into ``AMORTISED_DEFAULTS``). Defaults to
            ``dict(enable=False, cold_batches=2, stages=None,
            fp_sampling=dict(enable=False), max_per_class=64,
            score_thr=0.3, iou_thr=0.5, refill=False, recolour=False,
            feather=0.0, source='bank', amortised=dict())`` (off).
        competition (dict): :class:`StudentCompetition` arguments:
            ``weight`` of Adaptive DeepInversion's term that rewards the
            divergence ``loss`` (a distillation loss config) between the
            teacher and a student given by :meth:`attach_student` (the
            on-the-fly hook's; a call without one raises). Defaults to
            ``dict(weight=0.0, loss=None)`` (off).
        label_sampler (dict, optional): Config of a ``TASK_UTILS`` object
            built with ``teacher=`` whose ``relabel(layouts, generator)``
            returns the layouts with new labels (boxes kept), called at the
            start of every :meth:`synthesize` with its generator, e.g.
            ``dict(type='ClassCoOccurrence', temperature=1.0)``. Defaults
            to None (the layouts' own labels).
    """

    def __init__(self,
                 teacher: nn.Module,
                 bn_prior: dict = BN_PRIOR_DEFAULTS,
                 image_prior: dict = IMAGE_PRIOR_DEFAULTS,
                 task_loss: dict = TASK_LOSS_DEFAULTS,
                 augment: dict = AUGMENT_DEFAULTS,
                 stages: Sequence[dict] = STAGES_DEFAULT,
                 optimizer: dict = OPTIMIZER_DEFAULTS,
                 fp_sampling: dict = FP_SAMPLING_DEFAULTS,
                 amp: bool = False,
                 channels_last: bool = False,
                 max_restarts: int = 3,
                 init: str = 'noise',
                 early_exit: dict = EARLY_EXIT_DEFAULTS,
                 recombine: dict = RECOMBINE_DEFAULTS,
                 competition: dict = COMPETITION_DEFAULTS,
                 label_sampler: Optional[dict] = None) -> None:
        if not hasattr(teacher, 'loss') or not hasattr(teacher, 'predict'):
            raise TypeError('teacher must be a built mmdet detector with '
                            f'loss() and predict(), got {type(teacher)}')
        if init not in _INITS:
            raise ValueError(f'init must be one of {_INITS}, got {init!r}')
        if max_restarts < 0:
            raise ValueError(f'max_restarts must be >= 0, got {max_restarts}')
        self.teacher = teacher
        self.pixel_space = PixelSpace.from_preprocessor(
            teacher.data_preprocessor)

        self.bn_cfg = {**BN_PRIOR_DEFAULTS, **bn_prior}
        self.bn_weight = float(self.bn_cfg.pop('weight'))

        prior = {**IMAGE_PRIOR_DEFAULTS, **image_prior}
        self.image_prior_weights = {
            'loss_tv_l1': float(prior.pop('tv_l1')),
            'loss_tv_l2': float(prior.pop('tv_l2')),
            'loss_l2': float(prior.pop('l2')),
        }
        _no_extra_keys('image_prior', prior)

        task = {**TASK_LOSS_DEFAULTS, **task_loss}
        self.task_weight = float(task.pop('weight'))
        self.term_weights = dict(task.pop('term_weights') or {})
        _no_extra_keys('task_loss', task)

        if 'jitter' in augment:
            raise ValueError('augment: set jitter per stage (stages[i]'
                             "['jitter']), not in augment")
        self.augment_cfg = {**AUGMENT_DEFAULTS, **augment}
        BoxConsistentAugment(**self.augment_cfg)  # fail early on bad keys
        self.stages = [self._checked_stage(i, s) for i, s in enumerate(stages)]
        if not self.stages:
            raise ValueError('stages must hold at least one stage')
        if self.uses_bn_prior:
            # Fail now, not at synthesis time, for a teacher without BN.
            BNStatisticsPrior(teacher, **self.bn_cfg).remove()
        self.optimizer_cfg = {**OPTIMIZER_DEFAULTS, **optimizer}
        if 'lr' in self.optimizer_cfg:
            raise ValueError('optimizer: set lr per stage, not in optimizer')
        fp_cfg = {**FP_SAMPLING_DEFAULTS, **fp_sampling}
        self.fp_sampler = FalsePositiveSampler(**fp_cfg)
        self.early_exit = self._checked_early_exit(early_exit)
        self.recombine = self._checked_recombine(recombine)
        competition = {**COMPETITION_DEFAULTS, **competition}
        _no_extra_keys('competition', {
            k: v
            for k, v in competition.items() if k not in COMPETITION_DEFAULTS
        })
        self.competition = StudentCompetition(**competition)
        self.label_sampler = (
            TASK_UTILS.build(label_sampler, default_args=dict(teacher=teacher))
            if label_sampler is not None else None)
        self.amp = amp
        self.channels_last = channels_last
        self.max_restarts = max_restarts
        self.init = init

    def _checked_early_exit(self, early_exit: dict) -> EarlyExit:
        cfg = {**EARLY_EXIT_DEFAULTS, **early_exit}
        known = {key: cfg.pop(key) for key in EARLY_EXIT_DEFAULTS}
        _no_extra_keys('early_exit', cfg)
        rule = EarlyExit(**known)
        if rule.stages is not None:
            beyond = [s for s in rule.stages if s >= len(self.stages)]
            if beyond:
                raise ValueError(
                    f'early_exit: stages {beyond} do not exist; the schedule '
                    f'has stages 0 to {len(self.stages) - 1} (None: every '
                    'stage)')
        return rule

    def _checked_recombine(self, recombine: dict) -> dict:
        cfg = {**RECOMBINE_DEFAULTS, **recombine}
        _no_extra_keys('recombine', {
            k: v
            for k, v in cfg.items() if k not in RECOMBINE_DEFAULTS
        })
        if not isinstance(cfg['enable'], bool):
            raise ValueError('recombine: enable must be True or False, got '
                             f"{cfg['enable']!r}")
        cold = cfg['cold_batches']
        if not isinstance(cold, int) or isinstance(cold, bool) or cold < 1:
            raise ValueError('recombine: cold_batches must be an int >= 1 '
                             f'(the batches that fill the bank), got {cold!r}')
        # Fails early on bad bank or generator settings, enabled or not.
        ObjectBank(cfg['max_per_class'], cfg['score_thr'], cfg['iou_thr'],
                   cfg['recolour'], cfg['feather'])
        if cfg['source'] not in _WARM_SOURCES:
            raise ValueError(f'recombine: source must be one of '
                             f"{_WARM_SOURCES}, got {cfg['source']!r}")
        unknown = set(cfg['amortised']) - set(AMORTISED_DEFAULTS)
        if unknown:
            raise ValueError(
                f'recombine.amortised: unknown keys {sorted(unknown)} '
                f'(allowed: {sorted(AMORTISED_DEFAULTS)})')
        cfg['amortised'] = {**AMORTISED_DEFAULTS, **cfg['amortised']}
        LayoutGenerator(**cfg['amortised'])
        if not isinstance(cfg['refill'], bool):
            raise ValueError('recombine: refill must be True or False, got '
                             f"{cfg['refill']!r}")
        if not cfg['enable']:
            return cfg
        if not cfg['stages']:
            raise ValueError('recombine: enable=True needs stages, the '
                             'schedule of a warm batch (e.g. the last stage '
                             'with fewer iterations)')
        cfg['stages'] = [
            self._checked_stage(i, s, f'recombine.stages[{i}]')
            for i, s in enumerate(cfg['stages'])
        ]
        if cfg['stages'][-1]['size'] != self.final_size:
            raise ValueError(
                "recombine: the last of its stages makes "
                f"{cfg['stages'][-1]['size']} images, the recipe "
                f'{self.final_size}; make them equal')
        cfg['fp_sampler'] = FalsePositiveSampler(**{
            **FP_SAMPLING_DEFAULTS,
            **cfg['fp_sampling']
        })
        return cfg

    def new_object_bank(self) -> WarmSource:
        """An empty warm-start source with the ``recombine`` settings: an
        :class:`ObjectBank`, or with ``source='amortised'`` an untrained
        :class:`LayoutGenerator`."""
        cfg = self.recombine
        if cfg['source'] == 'amortised':
            return LayoutGenerator(**cfg['amortised'])
        return ObjectBank(cfg['max_per_class'], cfg['score_thr'],
                          cfg['iou_thr'], cfg['recolour'], cfg['feather'])

    def _checked_stage(self,
                       index: int,
                       stage: dict,
                       name: Optional[str] = None) -> dict:
        name = name or f'stages[{index}]'

        unknown = set(stage) - _STAGE_KEYS
        missing = {'size', 'iterations', 'lr'} - set(stage)
        if unknown or missing:
            raise ValueError(
                f'{name}: unknown keys {sorted(unknown)}, missing '
                f'keys {sorted(missing)} (allowed: {sorted(_STAGE_KEYS)})')
        stage = {
            **_STAGE_DEFAULTS, 'bn_weight': self.bn_weight,
            'task_weight': self.task_weight,
            **stage
        }
        for key in ('bn_weight', 'task_weight'):
            stage[key] = float(stage[key])
            if stage[key] < 0:
                raise ValueError(f'{name}: {key} must be >= 0, got '
                                 f'{stage[key]}')
        size = stage['size']
        stage['size'] = tuple(
            int(s) for s in ((size, size) if isinstance(size, int) else size))
        if len(stage['size']) != 2 or min(stage['size']) < 2:
            raise ValueError(f'{name}: size must be an int or '
                             f'(h, w) of at least 2, got {size}')
        if stage['iterations'] < 1:
            raise ValueError(f'{name}: iterations must be >= 1')
        return stage

    # ------------------------------------------------------------------
    # Public API

    def attach_student(self, student: nn.Module) -> None:
        """Gives the ``competition`` term the student being trained (a
        no-op when the term is off).

        Args:
            student (nn.Module): The student detector; it runs in eval mode
                with frozen parameters during each :meth:`synthesize` call.
        """
        if self.competition.enabled:
            self.competition.attach(student, self.teacher)

    @property
    def uses_bn_prior(self) -> bool:
        """Whether any stage weighs the BN prior (its layers must record)."""
        return any(stage['bn_weight'] > 0 for stage in self.stages)

    @property
    def final_size(self) -> Tuple[int, int]:
        """(h, w) of the synthesized images (the last stage's size)."""
        return self.stages[-1]['size']

    def synthesize(self,
                   layouts: Sequence[LayoutLike],
                   generator: Optional[torch.Generator] = None,
                   callback: Optional[LossCallback] = None,
                   objects: Optional[WarmSource] = None) -> SynthesisResult:
        """Optimises one batch of images, one per layout.

        Args:
            layouts (Sequence[tuple[Tensor, Tensor]]): Per image the target
                boxes, float (K, 4) xyxy in pixels of the final size, and
                their int64 labels (K,) (replaced first by the
                ``label_sampler``'s, if one is configured).
            generator (torch.Generator, optional): CPU generator for every
                random choice (initial noise, augmentations, restarts; it
                also seeds torch's global generator for the teacher's own
                samplers within the call). With the same seed, the result
                is reproducible on the same device. Defaults to None (torch's
                global generator).
            callback (callable, optional): Called after every iteration as
                ``callback(iteration, stage, losses)``; ``iteration`` counts
                globally from 0 over the configured schedule (with the
                early exit, a stage left early skips the rest of its
                indices), ``losses`` maps term names to detached 0-dim
                tensors (no device sync is forced).
            objects (ObjectBank | LayoutGenerator, optional): With
                ``recombine`` enabled and not empty (a crop in the bank, an
                image learnt by the generator), the batch starts warm (see
                the class docstring). Defaults to None (a cold batch).

        Returns:
            SynthesisResult: Images, final targets, validity and losses.
        """
        if self.label_sampler is not None:
            layouts = self.label_sampler.relabel(layouts, generator)
        boxes, labels = self._checked_layouts(layouts)
        if objects is not None and not self.recombine['enable']:
            raise ValueError('synthesize(objects=...) needs recombine='
                             'dict(enable=True, stages=[...]) in the '
                             'synthesizer config')
        self.competition.check_ready()
        warm = objects is not None and len(objects) > 0
        device = next(self.teacher.parameters()).device
        use_amp = self.amp and device.type == 'cuda'
        if self.amp and not use_amp:
            warnings.warn('DeepInversion: amp=True is ignored on the '
                          f'{device.type} device (CUDA only)')
        with contextlib.ExitStack() as stack:
            if generator is not None:
                stack.enter_context(self._global_rng_from(generator, device))
            stack.enter_context(self._frozen_teacher())
            stack.enter_context(self.competition.frozen_student())
            bn = (
                stack.enter_context(
                    BNStatisticsPrior(self.teacher, **self.bn_cfg))
                if self.uses_bn_prior else None)
            run = _Run(self, bn, device, use_amp, generator, callback,
                       objects if warm else None)
            return run.execute([b.to(device) for b in boxes],
                               [lb.to(device) for lb in labels])

    # ------------------------------------------------------------------
    # Helpers

    def _checked_layouts(
            self, layouts: Sequence[LayoutLike]
    ) -> Tuple[List[Tensor], List[Tensor]]:
        if len(layouts) == 0:
            raise ValueError('synthesize() needs at least one layout')
        h, w = self.final_size
        boxes, labels = [], []
        for i, layout in enumerate(layouts):
            if len(layout) != 2:
                raise ValueError(f'layouts[{i}] must be (boxes, labels)')
            b = torch.as_tensor(layout[0], dtype=torch.float32).reshape(-1, 4)
            lb = torch.as_tensor(layout[1])
            if lb.dtype != torch.int64 or lb.shape != (len(b), ):
                raise ValueError(
                    f'layouts[{i}]: labels must be int64 of shape '
                    f'({len(b)},), got {lb.dtype} {tuple(lb.shape)}')
            inside = ((b[:, 0] >= 0) & (b[:, 1] >= 0) & (b[:, 2] <= w) &
                      (b[:, 3] <= h) & (b[:, 2] > b[:, 0]) &
                      (b[:, 3] > b[:, 1]))
            if not bool(inside.all()):
                raise ValueError(
                    f'layouts[{i}]: boxes must be non-empty xyxy inside the '
                    f'final {w}x{h} image, got {b[~inside].tolist()}')
            boxes.append(b)
            labels.append(lb)
        return boxes, labels

    @contextlib.contextmanager
    def _frozen_teacher(self) -> Iterator[None]:
        teacher = self.teacher
        was_training = teacher.training
        grad_flags = [(p, p.requires_grad) for p in teacher.parameters()]
        teacher.eval()
        teacher.requires_grad_(False)
        if self.channels_last:
            teacher.to(memory_format=torch.channels_last)
        try:
            yield
        finally:
            if self.channels_last:
                teacher.to(memory_format=torch.contiguous_format)
            for p, flag in grad_flags:
                p.requires_grad_(flag)
            teacher.train(was_training)

    @staticmethod
    @contextlib.contextmanager
    def _global_rng_from(generator: torch.Generator,
                         device: torch.device) -> Iterator[None]:
        """Seeds torch's global RNG from ``generator``, restoring it after.

        The teacher's own samplers (e.g. the RoI sampler of two-stage
        detectors) draw from the global generator.
        """
        seed = int(torch.randint(0, 2**62, (1, ), generator=generator))
        devices = [device.index or 0] if device.type == 'cuda' else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            yield


class _Run:
    """State of one :meth:`DeepInversion.synthesize` call (the hot loop)."""

    def __init__(self, engine: DeepInversion, bn: Optional[BNStatisticsPrior],
                 device: torch.device, use_amp: bool,
                 generator: Optional[torch.Generator],
                 callback: Optional[LossCallback],
                 objects: Optional[WarmSource] = None) -> None:
        self.engine = engine
        self.objects = objects
        # A warm batch runs the recombine schedule and FP sampling.
        if objects is None:
            self.stages, self.fp_sampler = engine.stages, engine.fp_sampler
        else:
            self.stages = engine.recombine['stages']
            self.fp_sampler = engine.recombine['fp_sampler']
        self.teacher = engine.teacher
        self.bn = bn
        self.device = device
        self.use_amp = use_amp
        self.generator = generator
        self.callback = callback
        self.space = engine.pixel_space.to(device)
        self.memory_format = (
            torch.channels_last
            if engine.channels_last else torch.contiguous_format)
        self.scaler = torch.amp.GradScaler('cuda', enabled=use_amp)
        self.adam_cfg = dict(engine.optimizer_cfg)
        if self.adam_cfg.get('fused') is None:
            self.adam_cfg['fused'] = device.type in _FUSED_ADAM_DEVICES
        self.term_weights = engine.term_weights
        # Only the priors that are on are computed in the loop. TV works in
        # [0, 1] intensity units (per-channel scale; differences drop the
        # offset), L2 in model space.
        unit = self.space.model_to_unit
        self.image_priors = [
            (name, fn, weight, scale)
            for (name,
                 weight), (fn,
                           scale) in zip(engine.image_prior_weights.items(), (
                               (tv_l1, unit), (tv_l2, unit), (l2_prior, None)))
            if weight > 0
        ]
        self.autocast = ((lambda: torch.autocast('cuda', dtype=torch.float16))
                         if use_amp else contextlib.nullcontext)
        self.restarts = 0
        #: Iterations run, over the stages (fewer with the early exit).
        self.iterations_run = 0
        self.initial_losses: Optional[Dict[str, Tensor]] = None
        self.final_losses: Optional[Dict[str, Tensor]] = None

    def execute(self, boxes: List[Tensor],
                labels: List[Tensor]) -> SynthesisResult:
        engine = self.engine
        final_h, final_w = engine.final_size
        # Targets of the layouts at the final size, kept to reset restarts.
        self.layout_boxes, self.layout_labels = boxes, labels
        self.stage_scale = boxes[0].new_ones(4)
        x = None
        iteration = 0
        for index, stage in enumerate(self.stages):
            h, w = stage['size']
            if x is None:
                x = self._initial_images(len(boxes), h, w)
                if self.objects is not None:
                    scale = x.new_tensor([w / final_w, h / final_h] * 2)
                    x = self.objects.compose(x, [b * scale for b in boxes],
                                             labels, self.space,
                                             self.generator)
            else:
                x = F.interpolate(
                    x.detach(),
                    size=(h, w),
                    mode='bilinear',
                    align_corners=False)
                self.space.clamp_(x)
            x = x.contiguous(memory_format=self.memory_format)
            x.requires_grad_(True)
            # Boxes go from the previous stage's (first: the final) size to
            # this one's.
            scale = x.new_tensor([w / final_w, h / final_h] * 2)
            boxes = [b * (scale / self.stage_scale) for b in boxes]
            self.stage_scale = scale
            boxes, labels, iteration = self._run_stage(index, stage, x, boxes,
                                                       labels, iteration)
        return self._result(x.detach(), boxes, labels)

    def _run_stage(self, index: int, stage: dict, x: Tensor,
                   boxes: List[Tensor], labels: List[Tensor],
                   iteration: int) -> Tuple[List[Tensor], List[Tensor], int]:
        engine = self.engine
        h, w = stage['size']
        metainfo = dict(
            img_shape=(h, w),
            ori_shape=(h, w),
            pad_shape=(h, w),
            batch_input_shape=(h, w),
            scale_factor=(1.0, 1.0))
        augment_cfg = {
            **engine.augment_cfg,
            **({} if stage['augment'] else _NO_AUGMENT)
        }
        augment = BoxConsistentAugment(
            jitter=stage['jitter'], pixel_space=self.space, **augment_cfg)
        # Built once per stage; each step only replaces their targets.
        samples = [DetDataSample(metainfo=metainfo) for _ in boxes]
        optimizer = torch.optim.Adam([x], lr=stage['lr'], **self.adam_cfg)
        lr, min_lr, total = stage['lr'], stage['min_lr'], stage['iterations']
        # The stage's next index is its configured one, whether this stage
        # ran all its iterations or was left early.
        next_iteration = iteration + total
        exit_rule = engine.early_exit
        may_exit = exit_rule.applies_to(index)
        # loss_bn of this stage's iterations, when the stage weighs the
        # prior (else there is no plateau to wait for).
        bn_history = (
            deque(maxlen=2 * exit_rule.bn_window) if may_exit
            and self.bn is not None and stage['bn_weight'] > 0 else None)
        for step in range(total):
            optimizer.param_groups[0]['lr'] = min_lr + 0.5 * (lr - min_lr) * (
                1 + math.cos(math.pi * step / total))
            losses = self._losses(x, boxes, labels, augment, samples, stage)
            loss = losses['loss']
            finite = bool(torch.isfinite(loss))
            if finite:
                optimizer.zero_grad(set_to_none=True)
                self.scaler.scale(loss).backward()
                self.scaler.step(optimizer)
                self.scaler.update()
                with torch.no_grad():
                    self.space.clamp_(x)
            # Detached: no graph outlives its step.
            losses = {k: v.detach() for k, v in losses.items()}
            if finite:
                if self.initial_losses is None:
                    self.initial_losses = losses
                self.final_losses = losses
                if bn_history is not None:
                    bn_history.append(losses['loss_bn'])
            else:
                boxes, labels = self._restart(x, optimizer, boxes, labels,
                                              losses, iteration)
                if bn_history is not None:
                    bn_history.clear()  # the images were re-initialised
            if self.callback is not None:
                self.callback(iteration, index, losses)
            if self.fp_sampler.is_due(iteration):
                boxes, labels = self._sample_false_positives(
                    x, boxes, labels, metainfo)
            iteration += 1
            self.iterations_run += 1
            if (may_exit and step + 1 < total and exit_rule.is_due(step)
                    and self._stage_done(x, boxes, labels, metainfo,
                                         bn_history)):
                break
        return boxes, labels, next_iteration

    def _losses(self, x: Tensor, boxes: List[Tensor], labels: List[Tensor],
                augment: BoxConsistentAugment, samples: List[DetDataSample],
                stage: dict) -> Dict[str, Tensor]:
        """Every loss term of one step; ``'loss'`` is the weighted total."""
        inputs, aug_boxes, aug_labels = augment(x, boxes, labels,
                                                self.generator)
        for sample, b, lb in zip(samples, aug_boxes, aug_labels):
            sample.gt_instances = InstanceData(bboxes=b, labels=lb)
        if self.bn is not None:
            self.bn.reset()
        competition = self.engine.competition
        with self.autocast(), loss_mode(self.teacher), \
                competition.recording(self.teacher) as teacher_outs:
            task_terms = self.teacher.loss(inputs, samples)
        losses = {}
        task = 0.0
        for name, value in task_terms.items():
            if 'loss' not in name:
                continue
            value = (
                value.mean() if isinstance(value, Tensor) else sum(
                    v.mean() for v in value))
            losses[name] = value
            task = task + value * self.term_weights.get(name, 1.0)
        if self.initial_losses is None:
            self._check_task_terms(losses)
        losses['loss_task'] = task
        total = stage['task_weight'] * task
        if self.bn is not None:
            losses['loss_bn'] = self.bn.loss()
            total = total + stage['bn_weight'] * losses['loss_bn']
        for name, fn, weight, scale in self.image_priors:
            losses[name] = fn(x if scale is None else x * scale)
            total = total + weight * losses[name]
        if competition.enabled:
            with self.autocast():
                losses['loss_compete'] = competition.disagreement(
                    self.teacher, inputs, samples, teacher_outs)
            total = total - competition.weight * losses['loss_compete']
        losses['loss'] = total
        return losses

    def _check_task_terms(self, task_losses: Dict[str, Tensor]) -> None:
        if not task_losses:
            raise ValueError("teacher.loss() returned no term containing "
                             "'loss'")
        unknown = set(self.term_weights) - set(task_losses)
        if unknown:
            raise ValueError(
                f'task_loss.term_weights names {sorted(unknown)}, which the '
                f'teacher does not return; its loss terms are '
                f'{sorted(task_losses)}')

    def _initial_images(self, n: int, h: int, w: int) -> Tensor:
        if self.engine.init == 'mean':
            return torch.zeros(n, 3, h, w, device=self.device)
        return self._noise(n, h, w)

    def _noise(self, n: int, h: int, w: int) -> Tensor:
        noise = torch.randn(n, 3, h, w, generator=self.generator)
        return self.space.clamp_(noise.to(self.device))

    @torch.no_grad()
    def _restart(self, x: Tensor, optimizer: torch.optim.Optimizer,
                 boxes: List[Tensor], labels: List[Tensor],
                 losses: Dict[str, Tensor],
                 iteration: int) -> Tuple[List[Tensor], List[Tensor]]:
        """Re-initialises the images that broke the loss (skipped step)."""
        self.restarts += 1
        bad_terms = sorted(k for k, v in losses.items()
                           if not bool(torch.isfinite(v)))
        if self.restarts > self.engine.max_restarts:
            raise RuntimeError(
                f'DeepInversion: non-finite loss terms {bad_terms} at '
                f'iteration {iteration}, after {self.engine.max_restarts} '
                'restarts (max_restarts); lower the learning rate or the '
                'prior weights, or disable amp')
        bad = ~torch.isfinite(x).flatten(1).all(1)
        if not bool(bad.any()):
            bad[:] = True
        indices = bad.nonzero().flatten()
        x[indices] = self._noise(len(indices), *x.shape[-2:]).to(x)
        state = optimizer.state.get(x, {})
        for key in ('exp_avg', 'exp_avg_sq', 'max_exp_avg_sq'):
            if key in state:
                state[key][indices] = 0
        # FP-sampled targets came from the discarded pixels.
        for i in indices.tolist():
            boxes[i] = self.layout_boxes[i] * self.stage_scale
            labels[i] = self.layout_labels[i]
        return boxes, labels

    def _sample_false_positives(
            self, x: Tensor, boxes: List[Tensor], labels: List[Tensor],
            metainfo: dict) -> Tuple[List[Tensor], List[Tensor]]:
        samples = [DetDataSample(metainfo=metainfo) for _ in boxes]
        with self._predicting():
            return self.fp_sampler.sample(self.teacher, x.detach(), samples,
                                          boxes, labels)

    def _stage_done(self, x: Tensor, boxes: List[Tensor],
                    labels: List[Tensor], metainfo: dict,
                    bn_history: Optional[deque]) -> bool:
        """The early exit's check: BN plateau (cheap) first, then whether
        the teacher finds the targets (a ``predict()``)."""
        rule = self.engine.early_exit
        if bn_history is not None and not rule.bn_plateaued(bn_history):
            return False
        samples = [DetDataSample(metainfo=metainfo) for _ in boxes]
        with self._predicting():
            found = rule.targets_found(self.teacher, x.detach(), samples,
                                       boxes, labels)
        return found >= rule.found_frac

    @contextlib.contextmanager
    def _predicting(self) -> Iterator[None]:
        """For a ``predict()`` of the teacher inside the loop: the BN prior
        does not record it; amp as for the loss."""
        if self.bn is not None:
            self.bn.enabled = False
        try:
            with self.autocast():
                yield
        finally:
            if self.bn is not None:
                self.bn.enabled = True

    def _result(self, x: Tensor, boxes: List[Tensor],
                labels: List[Tensor]) -> SynthesisResult:
        valid = torch.isfinite(x).flatten(1).all(1).cpu()
        history = {}
        if self.final_losses is not None:
            history = {
                name: (float(self.initial_losses.get(name,
                                                     math.nan)), float(value))
                for name, value in self.final_losses.items()
            }
        return SynthesisResult(
            images=self.space.to_uint8(x),
            boxes=[b.detach().float().cpu() for b in boxes],
            labels=[lb.cpu() for lb in labels],
            valid=valid,
            loss_history=history,
            restarts=self.restarts,
            iterations=self.iterations_run,
            warm=self.objects is not None)


@contextlib.contextmanager
def loss_mode(detector: nn.Module) -> Iterator[None]:
    """Sets the detector's own ``training`` flag, and only it, for a block.

    mmdet's DETR-style detectors (DINO, Deformable DETR) prepare the inputs
    of their head's loss (encoder proposals, denoising queries) only when the
    detector object is in training mode; their ``loss()`` fails in eval
    mode. The flag of the detector object alone is set: every submodule
    (BatchNorm layers with their running statistics, dropout, heads) stays
    in eval mode, so detectors whose ``loss()`` does not read the flag
    compute exactly what they compute in eval mode.

    Args:
        detector (nn.Module): The teacher detector (eval mode).
    """
    was_training = detector.training
    detector.training = True
    try:
        yield
    finally:
        detector.training = was_training


def _no_extra_keys(name: str, leftover: dict) -> None:
    if leftover:
        raise ValueError(f'{name}: unknown keys {sorted(leftover)}')
