#!/usr/bin/env python
"""Does teacher agreement pick the checkpoint the real test split would?

Scores every epoch checkpoint of one training run twice with the Runner's
own test loop: on the real test split (the config's ``test_dataloader`` /
``test_evaluator``) and on a teacher-agreement set (images synthesized from
the teacher alone, annotated with its detections; see
``mmdiode.evaluation.teacher_agreement``). Reports the Spearman rank
correlation of the two scores over the checkpoints, how far (real test
mAP@0.5) the checkpoint that agreement picks is from the best one, and the
agreement validation's cost per epoch against the run's training time per
epoch. Writes one pair's entry of the results json (other pairs are kept)
and a scatter plot.

Decision: agreement is read as mAP over IoU 0.5:0.95 (``--metric map``),
the first metric of the agreement evaluator and so the one the configs'
``save_best='auto'`` keeps. On Multi-Object Impressions sets a student's
agreement at IoU 0.5 saturates within a few epochs (0.98 from epoch 3 of
the full Faster R-CNN run) while its real score still rises; the stricter
IoUs keep separating the checkpoints::

    python tools/analysis_tools/checkpoint_agreement.py \\
        work_dirs/datafree/full/yolov3/kd_synth_online/kd_synth_online.py \\
        work_dirs/datafree/full/yolov3/kd_synth_online/train \\
        --agreement data/digits_agreement_yolov3 --pair yolov3 \\
        --out results/datafree_validation.json

``--rows-from JSON`` recomputes the statistics (e.g. with the other
``--metric``) from the rows an earlier run stored there, scoring nothing.
"""
import glob
import json
import os.path as osp
import subprocess
import sys
import time
from typing import Optional

import numpy as np

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, ROOT)

import mmdiode  # noqa: E402,F401
from mmdiode.utils import ConfigError, load_config  # noqa: E402
from mmdiode.utils.cli import ArgumentParser, fail  # noqa: E402


def parse_args(argv=None):
    parser = ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='the run\'s training config')
    parser.add_argument('work_dir', help='the run\'s work dir (epoch_N.pth)')
    parser.add_argument('--agreement', required=True,
                        help='teacher-agreement set (with '
                        'teacher_annotations.json)')
    parser.add_argument('--pair', required=True,
                        help='key of this run in the results json')
    parser.add_argument('--epoch-seconds', type=float,
                        help='wall time of one training epoch, for the cost '
                        'ratio (default: the median time between '
                        'consecutive epoch checkpoints)')
    parser.add_argument('--every', type=int, default=1,
                        help='score every n-th checkpoint (default: all)')
    parser.add_argument('--metric', choices=sorted(METRICS), default='map',
                        help='agreement score that ranks and picks the '
                        'checkpoints: map (IoU 0.5:0.95, what save_best='
                        "'auto' keeps; default) or map50")
    parser.add_argument('--rows-from', metavar='JSON',
                        help='take the scored rows (and the agreement cost) '
                        'of --pair from this results json instead of '
                        'scoring checkpoints; config and work_dir are then '
                        'only read for the epoch time')
    parser.add_argument('--out', default='results/datafree_validation.json')
    parser.add_argument('--runner-dir',
                        default='work_dirs/checkpoint_agreement',
                        help='the Runner\'s own logs')
    parser.add_argument('--plot', help='scatter plot (default: the json\'s '
                        'path with .png)')
    args = parser.parse_args(argv)
    args.plot = args.plot or osp.splitext(args.out)[0] + '.png'
    return args


def epoch_checkpoints(work_dir: str):
    """``(epoch, path)`` of every ``epoch_N.pth``, in epoch order."""
    from benchmarks.digits.datafree import checkpoint_epoch
    paths = glob.glob(osp.join(work_dir, 'epoch_*.pth'))
    return sorted((checkpoint_epoch(p), p) for p in paths
                  if checkpoint_epoch(p) > 0)


def build_runner(cfg, agreement_root: str, runner_dir: str):
    """A Runner of the config (no custom hooks, no training) and the two
    test loops: real test split and teacher agreement."""
    from mmengine.config import Config
    from mmengine.runner import Runner, TestLoop
    cfg = Config(cfg.to_dict())
    cfg.custom_hooks = []  # synthesis and teacher logging: not needed here
    cfg.work_dir = runner_dir
    cfg.load_from, cfg.resume = None, False
    agreement = Config.fromfile(
        osp.join(ROOT, 'configs/_base_/datasets/digits_agreement.py'))
    val_dataloader = agreement.agreement_val_dataloader
    val_evaluator = agreement.agreement_val_evaluator
    val_dataloader.dataset.data_root = agreement_root
    # The run's classes (CocoMetric maps labels to categories by name).
    metainfo = cfg.test_dataloader.dataset.get('metainfo')
    if metainfo:
        val_dataloader.dataset.metainfo = metainfo
    val_evaluator.ann_file = osp.join(agreement_root,
                                      'teacher_annotations.json')
    for setting in (val_dataloader, val_evaluator):
        setting.pop('_delete_', None)  # a merge key: the file stands alone
    runner = Runner.from_cfg(cfg)
    runner.call_hook('before_run')  # the logger hook's files, as test() does
    real = TestLoop(runner, cfg.test_dataloader, cfg.test_evaluator)
    synthetic = TestLoop(runner, val_dataloader.to_dict(),
                         val_evaluator.to_dict())
    return runner, real, synthetic


#: ``--metric`` -> the key of a row that it reads.
METRICS = dict(map='agreement_map', map50='agreement_map50')


def spearman(a, b) -> float:
    """Spearman's rank correlation of two equally long sequences."""
    from scipy.stats import spearmanr
    return float(spearmanr(a, b).statistic)


def epoch_seconds_of(checkpoints) -> Optional[float]:
    """Median wall time between consecutive epoch checkpoints (their
    modification times): one epoch of the run, synthesis included."""
    times = [osp.getmtime(path) for _, path in checkpoints]
    gaps = [b - a for a, b in zip(times, times[1:])]
    return float(np.median(gaps)) if gaps else None


def git_commit() -> str:
    try:
        return subprocess.run(['git', 'rev-parse', 'HEAD'],
                              capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return 'unknown'


def plot(results: dict, path: str) -> None:
    """Real test mAP@0.5 against the agreement score, one panel per pair."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    pairs = list(results['pairs'].items())
    fig = Figure(figsize=(4.5 * len(pairs), 4))
    FigureCanvasAgg(fig)
    for index, (name, entry) in enumerate(pairs, 1):
        ax = fig.add_subplot(1, len(pairs), index)
        rows = entry['rows']
        metric = entry.get('metric', 'map50')  # entries before --metric
        x = [r[METRICS[metric]] for r in rows]
        y = [r['test_map50'] for r in rows]
        ax.scatter(x, y, c=[r['epoch'] for r in rows], cmap='viridis')
        for r, xi, yi in zip(rows, x, y):
            ax.annotate(str(r['epoch']), (xi, yi), fontsize=7)
        label = 'mAP' if metric == 'map' else 'mAP@0.5'
        ax.set_xlabel(f'teacher agreement {label} (synthetic, no real data)')
        ax.set_ylabel('real test split mAP@0.5')
        ax.set_title(f"{name}: Spearman {entry['spearman']:.2f}, pick gap "
                     f"{entry['best_gap_map50']:.3f}", fontsize=9)
    fig.tight_layout()
    from mmdiode.visualization.results import save_png_atomic
    save_png_atomic(fig, path)


def score_checkpoints(cfg, checkpoints, agreement_root: str,
                      runner_dir: str):
    """Scores each checkpoint on the real test split and the agreement set.

    Returns:
        tuple[list[dict], float]: One row per checkpoint (``epoch``,
        ``test_map``, ``test_map50``, ``agreement_map``,
        ``agreement_map50``) and the mean seconds of one agreement
        validation.
    """
    runner, real, synthetic = build_runner(cfg, agreement_root, runner_dir)
    rows, agreement_seconds = [], []
    for epoch, path in checkpoints:
        runner.load_checkpoint(path)
        test = real.run()
        start = time.perf_counter()
        agree = synthetic.run()
        agreement_seconds.append(time.perf_counter() - start)
        rows.append(dict(epoch=epoch,
                         test_map=test['coco/bbox_mAP'],
                         test_map50=test['coco/bbox_mAP_50'],
                         agreement_map=agree['agreement/bbox_mAP'],
                         agreement_map50=agree['agreement/bbox_mAP_50']))
        print(f'checkpoint_agreement: {json.dumps(rows[-1])}', flush=True)
    return rows, sum(agreement_seconds) / len(agreement_seconds)


def summarize(rows, metric: str, per_epoch: float,
              epoch_seconds: Optional[float]) -> dict:
    """A pair's entry of the results json from its scored rows.

    Args:
        rows (list[dict]): :func:`score_checkpoints`' rows.
        metric (str): ``'map'`` or ``'map50'`` (:data:`METRICS`): the
            agreement score that ranks the checkpoints and picks one (the
            latest of equals).
        per_epoch (float): Seconds of one agreement validation.
        epoch_seconds (float, optional): Seconds of one training epoch.

    Returns:
        dict: ``spearman`` (agreement score against real test mAP@0.5),
        ``best_gap_map50``, ``checkpoints``, ``picked_epoch``, ``metric``,
        the costs and the rows.
    """
    key = METRICS[metric]
    picked = max(rows, key=lambda r: (r[key], r['epoch']))
    best = max(r['test_map50'] for r in rows)
    return dict(
        spearman=spearman([r[key] for r in rows],
                          [r['test_map50'] for r in rows]),
        best_gap_map50=round(best - picked['test_map50'], 4),
        checkpoints=len(rows),
        picked_epoch=picked['epoch'],
        metric=metric,
        agreement_seconds_per_epoch=round(per_epoch, 2),
        epoch_seconds=None if not epoch_seconds else round(epoch_seconds, 1),
        # Validating every epoch on the agreement set, against an epoch.
        val_cost_ratio=(None if not epoch_seconds else
                        round(per_epoch / epoch_seconds, 4)),
        rows=rows)


def stored_rows(path: str, pair: str):
    """The rows and agreement cost that an earlier run stored for ``pair``
    in the results json at ``path``."""
    try:
        with open(path, encoding='utf-8') as f:
            entry = json.load(f)['pairs'][pair]
        return entry['rows'], entry['agreement_seconds_per_epoch'], \
            entry.get('epoch_seconds')
    except (OSError, ValueError, KeyError) as e:
        raise ConfigError(f'--rows-from {path}: no rows of pair {pair!r} '
                          f'({type(e).__name__}: {e})')


def rows_and_costs(args):
    """The scored rows, the seconds of one agreement validation and of one
    training epoch: stored by an earlier run (``--rows-from``) or scored
    now.

    Raises:
        ConfigError: No stored rows, no agreement set, or fewer than 2
            checkpoints.
    """
    if args.rows_from:
        rows, per_epoch, epoch_seconds = stored_rows(args.rows_from,
                                                     args.pair)
        return rows, per_epoch, (args.epoch_seconds or epoch_seconds or
                                 epoch_seconds_of(
                                     epoch_checkpoints(args.work_dir)))
    ann = osp.join(args.agreement, 'teacher_annotations.json')
    if not osp.isfile(ann):
        raise ConfigError(f'{ann} not found: make the set with '
                          'tools/synthesize.py and a '
                          'synth_*_agreement.py config')
    every = epoch_checkpoints(args.work_dir)
    checkpoints = every[::-1][::args.every][::-1]
    if len(checkpoints) < 2:
        raise ConfigError(f'{args.work_dir}: fewer than 2 '
                          'epoch_N.pth checkpoints to compare')
    cfg = load_config(args.config)
    rows, per_epoch = score_checkpoints(cfg, checkpoints, args.agreement,
                                        args.runner_dir)
    return rows, per_epoch, args.epoch_seconds or epoch_seconds_of(every)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        rows, per_epoch, epoch_seconds = rows_and_costs(args)
    except ConfigError as e:
        return fail(e)
    from mmdiode.utils.fileio import dump_json_atomic
    entry = summarize(rows, args.metric, per_epoch, epoch_seconds)
    results = dict(commit=git_commit(), pairs={})
    if osp.isfile(args.out):
        with open(args.out, encoding='utf-8') as f:
            results['pairs'] = json.load(f).get('pairs', {})
    results['pairs'][args.pair] = entry
    dump_json_atomic(results, args.out)
    plot(results, args.plot)
    print(f"spearman={entry['spearman']:.3f} best_gap_map50="
          f"{entry['best_gap_map50']:.3f} checkpoints={len(rows)} "
          f"picked_epoch={entry['picked_epoch']} metric={args.metric} "
          f"val_cost_ratio={entry['val_cost_ratio']}")
    print(f'results: {args.out}, plot: {args.plot}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
