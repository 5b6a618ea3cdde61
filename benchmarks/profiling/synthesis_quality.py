"""Two synthesis recipes side by side: speed and quality, in one process.

A new recipe (a synthesis config, the kind ``tools/synthesize.py`` takes)
against a baseline one, on one teacher:

* **Same inputs.** One teacher is built (both configs must name the same
  one) and both synthesizers wrap it. Batch ``b`` takes the layouts of the
  images ``b * batch_size ...`` from the *baseline's* layout sampler, and
  both sides synthesize them from a generator seeded alike
  (:func:`~mmdiode.apis.synthesis.batch_generator`, as a synthesis job
  seeds the batch's first attempt). With ``seed`` equal to the baseline's
  ``synthesis.seed`` and the same batch size, the baseline side makes the
  images ``tools/synthesize.py BASELINE`` makes for its first batches.
* **Timing.** Each ``synthesize()`` call is timed with
  ``time.perf_counter``; the two sides alternate in ABBA order (batch 0
  baseline first, batch 1 new first, ...), so that a shared machine's load
  and the process's first-call costs fall on both alike (exactly so for an
  even number of batches). ``speedup`` is the ratio of images/hour over the
  summed times: only such a ratio, measured in one process, means anything
  on a shared machine; the absolute images/hour do not.
* **Quality.** Each side's images and targets are written as a COCO folder
  (``<work_dir>/baseline``, ``<work_dir>/new``: ``images/`` +
  ``annotations.json``, as ``tools/synthesize.py`` writes them), and
  :func:`~mmdiode.evaluation.fidelity_report` scores each: the teacher's
  mAP@0.5 on its own synthesized images against their targets, and the
  BN-statistics prior's drop from initial noise to the written images
  (:func:`~mmdiode.evaluation.fidelity.bn_prior_drop`, ``drop``: prior on
  noise / prior on the images; larger is better).
* **One BN yardstick.** Both drops are measured with the same prior
  settings (``p``, ``first_bn_multiplier``, ``layer_pattern``), so that
  their ratio compares the images and not two metrics: the baseline's, if
  it uses the BN prior; else the new recipe's; else
  :data:`~mmdiode.models.task_modules.inversion.deep_inversion.BN_PRIOR_DEFAULTS`.
  A recipe without the prior (Multi-Object Impressions) thus still gets a
  drop. A teacher without BatchNorm statistics gets none (``None``).
"""
import contextlib
import io
import json
import os
import os.path as osp
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
from mmdet.registry import TASK_UTILS
from mmengine.config import Config
from torch import nn

from mmdiode.apis.synthesis import (SYNTHESIS_DEFAULTS, batch_generator,
                                    build_layout_sampler,
                                    check_synthesis_config, fill_object_bank,
                                    offer_written_batch, recombine_settings,
                                    run_synthesizer, sample_layouts,
                                    writer_inputs)
from mmdiode.datasets import SyntheticCocoWriter
from mmdiode.evaluation import fidelity_report
from mmdiode.models.task_modules.inversion.bn_prior import BNStatisticsPrior
from mmdiode.models.task_modules.inversion.deep_inversion import \
    BN_PRIOR_DEFAULTS
from mmdiode.utils.cli import ConfigError, DivergedError
from mmdiode.utils.fileio import dump_json_atomic
from .synthesis import build_benchmark_teacher

#: The two sides, in the order of the first batch.
SIDES: Tuple[str, str] = ('baseline', 'new')
#: The json the comparison writes into its work dir.
REPORT_FILE = 'synth_quality.json'
#: The teacher settings both configs must share.
TEACHER_KEYS = ('config', 'checkpoint', 'classes')
#: What a BN-prior config holds besides its loss weight.
BN_SETTINGS = ('p', 'first_bn_multiplier', 'layer_pattern')


@dataclass
class Recipe:
    """One side of the comparison: a loaded synthesis config.

    Attributes:
        config (str): The config file.
        cfg (Config): The config, ``--cfg-options`` merged.
        options (dict): The ``--cfg-options`` merged into it (recorded).
    """
    config: str
    cfg: Config
    options: Dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_synthesis_config(self.cfg, self.config)

    @property
    def batch_size(self) -> int:
        """The config's ``synthesis.batch_size`` (16 if not set)."""
        return int({
            **SYNTHESIS_DEFAULTS,
            **self.cfg.get('synthesis', {})
        }['batch_size'])


def _plain(value):
    """``value`` as json would hold it (tuples as lists, ConfigDict as
    dict)."""
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def teacher_identity(teacher_cfg: dict) -> Dict:
    """What makes two ``teacher`` settings the same teacher.

    Local paths are compared resolved, so ``a/b.pth`` and ``./a/b.pth`` are
    one file.

    Args:
        teacher_cfg (dict): A synthesis config's ``teacher``.

    Returns:
        dict: ``config``, ``checkpoint`` and ``classes``, json-comparable.
    """
    identity = {}
    for key in TEACHER_KEYS:
        value = teacher_cfg.get(key)
        if isinstance(value, str) and '://' not in value and \
                '::' not in value:
            value = osp.realpath(value)
        identity[key] = _plain(value)
    return identity


def check_same_teacher(baseline: Recipe, new: Recipe) -> None:
    """Refuses two recipes of different teachers.

    Raises:
        ConfigError: Naming the first setting that differs.
    """
    old_id = teacher_identity(baseline.cfg.teacher)
    new_id = teacher_identity(new.cfg.teacher)
    for key in TEACHER_KEYS:
        if old_id[key] != new_id[key]:
            raise ConfigError(
                f'the recipes have different teachers: teacher.{key} is '
                f'{_shown(new.cfg.teacher.get(key))} in {new.config} but '
                f'{_shown(baseline.cfg.teacher.get(key))} in '
                f'{baseline.config}; synth-quality compares two recipes on '
                'one teacher')


def _shown(value) -> str:
    """A setting in a one-line message (a dict is not spelt out)."""
    if isinstance(value, dict):
        return 'a dict'
    return value if isinstance(value, str) else repr(value)


def check_sizes(img_size: int, synthesizers: Dict[str, object]) -> None:
    """Refuses recipes whose images are not the layouts' size.

    Args:
        img_size (int): The baseline layout sampler's image side.
        synthesizers (dict): Side name -> built synthesizer.

    Raises:
        ConfigError: A synthesizer's last stage makes another size.
    """
    for name, synthesizer in synthesizers.items():
        h, w = synthesizer.final_size
        if (h, w) != (img_size, img_size):
            raise ConfigError(
                f'the recipes make images of different sizes: the {name} '
                f'recipe\'s last stage makes {w}x{h} images, the baseline\'s '
                f'layouts are {img_size}x{img_size}; synth-quality compares '
                'recipes at one image size')


def bn_settings(synthesizer) -> Optional[Dict]:
    """A synthesizer's BN-prior settings without the weight; None when it
    uses no BN prior."""
    if not synthesizer.uses_bn_prior:
        return None
    return {k: synthesizer.bn_cfg[k] for k in BN_SETTINGS}


def bn_yardstick(teacher: nn.Module,
                 synthesizers: Dict[str, object]) -> Optional[Dict]:
    """The BN-prior settings both sides' drops are measured with.

    Args:
        teacher (nn.Module): The teacher.
        synthesizers (dict): ``'baseline'`` and ``'new'`` synthesizers.

    Returns:
        dict | None: The baseline's settings if it uses the BN prior, else
        the new recipe's, else ``BN_PRIOR_DEFAULTS``; None when the teacher
        has no BatchNorm layer these settings select.
    """
    settings = bn_settings(synthesizers['baseline']) or bn_settings(
        synthesizers['new']) or {k: BN_PRIOR_DEFAULTS[k]
                                 for k in BN_SETTINGS}
    try:
        BNStatisticsPrior(teacher, **settings).remove()
    except ValueError:
        return None
    return settings


def batch_order(batch: int) -> Tuple[str, str]:
    """The sides in the order they synthesize ``batch``: ABBA..."""
    return SIDES if batch % 2 == 0 else SIDES[::-1]


def timed_synthesis(synthesizer,
                    layouts: Sequence,
                    seed: int,
                    batch: int,
                    what: str,
                    objects=None):
    """One ``synthesize()`` call from the batch's generator, timed.

    Args:
        synthesizer: A ``DeepInversion``-like synthesizer.
        layouts (Sequence): ``(boxes, labels)`` per image.
        seed (int): The comparison's seed.
        batch (int): The batch number.
        what (str): Names the call in a divergence message.
        objects (ObjectBank, optional): A warm start's object bank.
            Defaults to None (a cold batch).

    Returns:
        tuple: The ``SynthesisResult`` and the call's seconds.

    Raises:
        DivergedError: The losses or some images were not finite.
    """
    generator = batch_generator(seed, batch)
    start = time.perf_counter()
    result = run_synthesizer(synthesizer, layouts, generator, what, objects)
    seconds = time.perf_counter() - start
    if not bool(result.valid.all()):
        bad = int((~result.valid).sum())
        raise DivergedError(
            f'{what}: {bad} of {len(result.valid)} images are not finite; '
            'lower the learning rate or the loss weights of that recipe')
    return result, seconds


class SynthQualityComparison:
    """The teacher, both synthesizers and the shared layouts of a
    comparison; :meth:`run` synthesizes, writes and scores.

    Args:
        baseline (Recipe): The old recipe; its layout sampler makes the
            layouts of both sides.
        new (Recipe): The new recipe.
        batch_size (int): Images per batch.
        seed (int): Seed of the layouts (unless the baseline's
            ``layout_sampler`` sets its own) and of every batch's
            generator.
        device (str): Where the teacher runs. Defaults to ``'cpu'``.

    Raises:
        ConfigError: The recipes have different teachers or image sizes, or
            a synthesizer config is invalid.
    """

    def __init__(self,
                 baseline: Recipe,
                 new: Recipe,
                 batch_size: int,
                 seed: int,
                 device: str = 'cpu') -> None:
        check_same_teacher(baseline, new)
        self.recipes = dict(baseline=baseline, new=new)
        self.batch_size = batch_size
        self.seed = seed
        self.device = torch.device(device)
        self.teacher, self.classes, missing = build_benchmark_teacher(
            baseline.cfg.teacher, self.device)
        self.random_teacher = missing is not None
        self.synthesizers = {
            name: self._build_synthesizer(name, recipe)
            for name, recipe in self.recipes.items()
        }
        self.sampler = build_layout_sampler(baseline.cfg.layout_sampler,
                                            self.classes, seed)
        self.img_size = int(self.sampler.img_size)
        check_sizes(self.img_size, self.synthesizers)
        self.bn_prior = bn_yardstick(self.teacher, self.synthesizers)
        self.notes = self._notes(missing)
        #: Side name -> the object bank of its warm start, once filled.
        self.banks: Dict[str, object] = {}

    def _build_synthesizer(self, name: str, recipe: Recipe):
        try:
            return TASK_UTILS.build(
                dict(recipe.cfg.synthesizer, teacher=self.teacher))
        except ValueError as e:
            raise ConfigError(
                f'the {name} recipe\'s synthesizer ({recipe.config}): '
                f'{e}') from e

    def _notes(self, missing: Optional[str]) -> List[str]:
        """What the user should know before the numbers."""
        notes = []
        if missing:
            notes.append(
                f'no teacher checkpoint at {missing}: a randomly initialised '
                'teacher; the speedup holds, its mAP@0.5 and BN drops say '
                'nothing about the recipes')
        layouts = {
            name: _plain(r.cfg.layout_sampler)
            for name, r in self.recipes.items()
        }
        if layouts['new'] != layouts['baseline']:
            notes.append('the recipes\' layout samplers differ: both sides '
                         'synthesize the baseline\'s layouts')
        own = {n: bn_settings(s) for n, s in self.synthesizers.items()}
        if self.bn_prior is None:
            notes.append('the teacher has no BatchNorm statistics to match: '
                         'no BN drop')
        elif any(o is not None and _plain(o) != _plain(self.bn_prior)
                 for o in own.values()):
            notes.append(
                'the recipes\' BN priors differ; both BN drops are measured '
                f'with {self.bn_prior}')
        return notes

    # ------------------------------------------------------------------

    def run(self,
            work_dir: str,
            batches: int,
            on_batch: Optional[Callable[[Dict], None]] = None,
            commit: str = 'unknown') -> Dict:
        """Synthesizes ``batches`` batches with both recipes, writes and
        scores both sets, and writes ``synth_quality.json``.

        Args:
            work_dir (str): Receives ``baseline/`` and ``new/`` (COCO sets
                with their ``fidelity.json``) and the json. The two folders
                must not exist yet.
            batches (int): Batches per side.
            on_batch (callable, optional): Called with each batch's row
                (``batch``, ``order``, ``baseline`` and ``new`` seconds) as
                soon as both sides made it.
            commit (str): The git commit, recorded.

        Returns:
            dict: The report (see :func:`build_report`).
        """
        writers = self._writers(work_dir, batches)
        self.warm_up(sample_layouts(
            self.sampler, writers['baseline'].batch_indices(0)))
        rows: List[Dict] = []
        iterations: Dict[str, List[Optional[int]]] = {s: [] for s in SIDES}
        for batch in range(batches):
            indices = writers['baseline'].batch_indices(batch)
            layouts = sample_layouts(self.sampler, indices)
            row = dict(batch=batch, order=list(batch_order(batch)))
            row['warm'] = []
            for name in batch_order(batch):
                # Filling a warm start's bank counts towards its side.
                start = time.perf_counter()
                objects = self._objects_for(name, batch, writers[name])
                fill_seconds = time.perf_counter() - start
                result, seconds = timed_synthesis(
                    self.synthesizers[name], layouts, self.seed, batch,
                    f'{name} recipe, batch {batch}', objects)
                row[name] = fill_seconds + seconds
                if getattr(result, 'warm', False):
                    row['warm'].append(name)
                iterations[name].append(getattr(result, 'iterations', None))
                writers[name].write_batch(batch, *writer_inputs(result))
                row[name] += self._refill_seconds(name, batch, writers[name])
            rows.append(row)
            if on_batch is not None:
                on_batch(row)
        fidelity = {
            name: self._score(writer)
            for name, writer in writers.items()
        }
        report = build_report(self, rows, iterations, fidelity, commit)
        dump_json_atomic(report, osp.join(work_dir, REPORT_FILE))
        return report

    def _objects_for(self, name: str, batch: int,
                     writer: SyntheticCocoWriter):
        """A side's object bank for ``batch`` (None: a cold batch), as a
        synthesis job fills it: from the side's first ``cold_batches``
        written batches, once (then, with ``refill``, each written batch
        joins it: :meth:`_refill_seconds`)."""
        synthesizer = self.synthesizers[name]
        warm = recombine_settings(synthesizer)
        if warm is None or batch < warm['cold_batches']:
            return None
        if name not in self.banks:
            self.banks[name] = fill_object_bank(synthesizer, writer, batch)
        return self.banks[name]

    def _refill_seconds(self, name: str, batch: int,
                        writer: SyntheticCocoWriter) -> float:
        """With ``refill``, offers a side's written warm batch to its bank;
        the time it took (the teacher's look at the batch), which counts
        towards the side, as the bank's filling does."""
        if name not in self.banks or not recombine_settings(
                self.synthesizers[name])['refill']:
            return 0.0
        start = time.perf_counter()
        offer_written_batch(self.banks[name], self.teacher, writer, batch)
        return time.perf_counter() - start

    def warm_up(self, layouts: Sequence) -> None:
        """One untimed call per side, one iteration per stage.

        The first calls of a process pay one-time costs (kernel selection
        per input shape, lazily built buffers) that would otherwise fall on
        the side that runs first; a full untimed batch would cost as much
        as a timed one.
        """
        for name, recipe in self.recipes.items():
            stages = [
                dict(stage, iterations=1)
                for stage in self.synthesizers[name].stages
            ]
            short = TASK_UTILS.build(
                dict(recipe.cfg.synthesizer, stages=stages,
                     teacher=self.teacher))
            short.synthesize(layouts,
                             generator=torch.Generator().manual_seed(
                                 self.seed))

    def _writers(self, work_dir: str,
                 batches: int) -> Dict[str, SyntheticCocoWriter]:
        for name in SIDES:
            if osp.exists(osp.join(work_dir, name)):
                raise ConfigError(
                    f'{osp.join(work_dir, name)} exists: give a --work-dir '
                    'without an earlier comparison in it')
        os.makedirs(work_dir, exist_ok=True)
        return {
            name: SyntheticCocoWriter(
                osp.join(work_dir, name), self.classes,
                batches * self.batch_size, self.batch_size, seed=self.seed,
                config=_plain(dict(
                    layout_sampler=self.recipes['baseline'].cfg.layout_sampler,
                    synthesizer=recipe.cfg.synthesizer)))
            for name, recipe in self.recipes.items()
        }

    def _score(self, writer: SyntheticCocoWriter) -> Dict:
        """Merges a side's set and scores it (its ``fidelity.json``)."""
        writer.merge()
        # pycocotools prints its whole evaluation; the report has the
        # numbers.
        with contextlib.redirect_stdout(io.StringIO()):
            return fidelity_report(self.teacher, writer.data_root,
                                   'annotations.json',
                                   out_dir=writer.data_root,
                                   batch_size=self.batch_size,
                                   device=str(self.device),
                                   bn_prior=self.bn_prior)


def side_summary(rows: Sequence[Dict], name: str, batch_size: int,
                 iterations: Sequence[Optional[int]],
                 fidelity: Dict) -> Dict:
    """One side's numbers.

    Args:
        rows (Sequence[dict]): The per-batch rows (seconds per side).
        name (str): ``'baseline'`` or ``'new'``.
        batch_size (int): Images per batch.
        iterations (Sequence[int | None]): Synthesis iterations run per
            batch (``SynthesisResult.iterations``; None where the engine does
            not report them).
        fidelity (dict): The side's :func:`fidelity_report`.

    Returns:
        dict: ``images``, ``seconds``, ``images_per_hour``, ``iterations``
        (per batch, or None), ``bbox_mAP``, ``bbox_mAP_50`` and ``bn_prior``
        (``initial``, ``final``, ``drop``; None without a BN yardstick).
    """
    seconds = sum(row[name] for row in rows)
    images = batch_size * len(rows)
    return dict(
        data_root=name,
        images=images,
        seconds=seconds,
        images_per_hour=3600.0 * images / max(seconds, 1e-9),
        iterations=None if None in iterations else list(iterations),
        bbox_mAP=fidelity['bbox_mAP'],
        bbox_mAP_50=fidelity['bbox_mAP_50'],
        bn_prior=fidelity.get('bn_prior'))


def build_report(comparison: SynthQualityComparison, rows: Sequence[Dict],
                 iterations: Dict[str, List[Optional[int]]],
                 fidelity: Dict[str, Dict], commit: str) -> Dict:
    """The comparison's json.

    Returns:
        dict: ``commit``, the settings (``configs``, ``cfg_options``,
        ``seed``, ``batches``, ``batch_size``, ``img_size``, ``device``,
        ``threads``, ``random_teacher``, ``bn_prior``), ``notes``,
        ``batch_seconds`` (the per-batch rows), ``sides`` (name ->
        :func:`side_summary`) and ``summary``: ``speedup`` (new
        images/hour / baseline images/hour) and ``map50`` and ``bn_drop``,
        each ``{'new': ..., 'baseline': ...}``.
    """
    sides = {
        name: side_summary(rows, name, comparison.batch_size,
                           iterations[name], fidelity[name])
        for name in SIDES
    }
    return dict(
        commit=commit,
        configs={n: r.config for n, r in comparison.recipes.items()},
        cfg_options={
            n: _plain(r.options or {})
            for n, r in comparison.recipes.items()
        },
        seed=comparison.seed,
        batches=len(rows),
        batch_size=comparison.batch_size,
        img_size=comparison.img_size,
        device=str(comparison.device),
        threads=torch.get_num_threads(),
        random_teacher=comparison.random_teacher,
        bn_prior=comparison.bn_prior,
        notes=comparison.notes,
        batch_seconds=list(rows),
        sides=sides,
        summary=dict(
            speedup=sides['new']['images_per_hour'] /
            sides['baseline']['images_per_hour'],
            warm_speedup=warm_speedup(rows),
            map50={n: sides[n]['bbox_mAP_50']
                   for n in ('new', 'baseline')},
            bn_drop={n: (sides[n]['bn_prior'] or {}).get('drop')
                     for n in ('new', 'baseline')}))


def warm_speedup(rows: Sequence[Dict]) -> Optional[float]:
    """The speedup over the batches the new side started warm only (its
    steady state, once its bank is filled); None without such batches."""
    warm = [row for row in rows if 'new' in row.get('warm', ())]
    if not warm:
        return None
    return (sum(row['baseline'] for row in warm) /
            max(sum(row['new'] for row in warm), 1e-9))


# --- text --------------------------------------------------------------------

def _number(value: Optional[float], digits: int) -> str:
    return 'n/a' if value is None else f'{value:.{digits}f}'


def batch_line(row: Dict) -> str:
    """``batch 0: baseline 12.34 s, new 6.78 s`` (in the order run)."""
    return f'batch {row["batch"]}: ' + ', '.join(
        f'{name} {row[name]:.2f} s' for name in row['order'])


def _mean_iterations(side: Dict) -> Optional[float]:
    its = side['iterations']
    return None if not its else sum(its) / len(its)


def summary_table(report: Dict) -> List[str]:
    """The sides' numbers, one row per quantity, as text lines."""
    sides = report['sides']
    rows = [
        ('', 'baseline', 'new'),
        ('images/hour', *(_number(sides[n]['images_per_hour'], 1)
                          for n in SIDES)),
        ('seconds', *(_number(sides[n]['seconds'], 2) for n in SIDES)),
        ('teacher mAP@0.5', *(_number(sides[n]['bbox_mAP_50'], 3)
                              for n in SIDES)),
        ('BN drop (noise/images)',
         *(_number((sides[n]['bn_prior'] or {}).get('drop'), 2)
           for n in SIDES)),
        ('iterations/batch', *(_number(_mean_iterations(sides[n]), 0)
                               for n in SIDES)),
    ]
    width = max(len(r[0]) for r in rows)
    return [
        f'{label:<{width}}  {old:>12}  {new:>12}'
        for label, old, new in rows
    ]


def summary_line(report: Dict) -> str:
    """``speedup=X.XX map50=N.NNN/O.OOO bn_drop=N.NN/O.NN``."""
    summary = report['summary']
    map50, drop = summary['map50'], summary['bn_drop']
    line = (f'speedup={summary["speedup"]:.2f} '
            f'map50={map50["new"]:.3f}/{map50["baseline"]:.3f} '
            f'bn_drop={_number(drop["new"], 2)}/'
            f'{_number(drop["baseline"], 2)}')
    if summary.get('warm_speedup') is not None:
        line += f' warm_speedup={summary["warm_speedup"]:.2f}'
    return line
