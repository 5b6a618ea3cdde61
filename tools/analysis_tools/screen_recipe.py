#!/usr/bin/env python
"""Screens one change to a distillation recipe: train, score two splits.

Loads a training config (e.g. the dumped config of a data-free benchmark
row, ``work_dirs/datafree/full/yolov3/scaling_300/scaling_300.py``), folds
``--cfg-options`` into it, optionally sets the schedule's length
(``--epochs``, the scheduler bounds move with it), trains it with
``tools/train.py`` and scores the last checkpoint with ``tools/test.py``
twice: on the validation split (``--val-ann-file``, which replaces the
test loader's ``ann_file`` and the evaluator's) and on the config's own test
split. Writes ``<work-dir>/screen.json`` and prints, as its last line::

    screen val_map=0.211 val_map50=0.388 test_map=0.183 test_map50=0.360

Decision: recipe changes are decided on the validation split and the test
split is reported beside it, never used to choose; both come from the same
checkpoint so that one command gives the whole row of a screening table.
The run resumes: training continues from its last checkpoint
(``tools/train.py --resume``) and a finished training is not repeated, so a
long screen (48 epochs) can span several sittings; a work dir records
what it screens (``screen_args.json``) and refuses another change, which
would otherwise continue the first one's training under a new label. The
validation annotations must name images under the test split's
``data_prefix`` (only the annotation file is swapped)::

    python tools/analysis_tools/screen_recipe.py \\
        work_dirs/datafree/full/yolov3/scaling_300/scaling_300.py \\
        --work-dir work_dirs/screen/s300_48e --epochs 48 \\
        --checkpoint-interval 4 --val-ann-file annotations/val.json
"""
import argparse
import json
import os
import os.path as osp
import subprocess
import sys
from typing import Dict, List, Optional, Tuple

from mmengine.config import Config

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, ROOT)

from benchmarks.digits import datafree  # noqa: E402
from benchmarks.provenance import git_commit  # noqa: E402
from mmdiode.utils.cli import (ArgumentParser, ConfigError,  # noqa: E402
                               DictAction, fail, load_config)
from mmdiode.utils.fileio import dump_json_atomic  # noqa: E402

#: screen.json's names of the COCO numbers ``tools/test.py`` prints.
METRICS = {
    'map': 'coco/bbox_mAP',
    'map50': 'coco/bbox_mAP_50',
    'map75': 'coco/bbox_mAP_75',
    'map_s': 'coco/bbox_mAP_s',
    'map_m': 'coco/bbox_mAP_m',
    'map_l': 'coco/bbox_mAP_l',
}


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='the training config to screen')
    parser.add_argument('--work-dir', required=True,
                        help='folder of this screen (config.py, train/, '
                        'val/, test/, screen.json)')
    parser.add_argument('--epochs', type=int,
                        help='schedule length (default: the config\'s)')
    parser.add_argument('--checkpoint-interval', type=int,
                        help='epochs between kept checkpoints (default: one '
                        'at the end)')
    parser.add_argument('--val-ann-file',
                        help='annotation file of the validation split, '
                        'relative to the test dataset\'s data_root, whose '
                        'images lie under the test split\'s data_prefix '
                        '(default: score the test split only)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='the change to screen, as in tools/train.py')
    return parser.parse_args(argv)


def prepare_config(args: argparse.Namespace) -> Tuple[str, Config]:
    """Writes ``<work-dir>/config.py``: the config with the change and the
    schedule folded in, training into ``<work-dir>/train``.

    Args:
        args (argparse.Namespace): The command line.

    Returns:
        Tuple[str, Config]: The path of the written config, and the config.

    Raises:
        ConfigError: Unloadable config, unknown option key, an epoch count
            that is not positive or a config without an epoch-based loop.
    """
    cfg = load_config(args.config, args.cfg_options)
    if args.epochs is not None or args.checkpoint_interval is not None:
        if 'max_epochs' not in cfg.get('train_cfg', {}):
            raise ConfigError(
                f'--epochs and --checkpoint-interval need an epoch-based '
                f'train_cfg (max_epochs); {args.config} has none')
        try:
            epochs = cfg.train_cfg.max_epochs if args.epochs is None \
                else args.epochs
            datafree.set_epochs(cfg, epochs, args.checkpoint_interval)
        except ValueError as e:
            raise ConfigError(str(e)) from e
    cfg.work_dir = osp.join(args.work_dir, 'train')
    path = osp.join(args.work_dir, 'config.py')
    os.makedirs(args.work_dir, exist_ok=True)
    cfg.dump(path + '.tmp.py')
    os.replace(path + '.tmp.py', path)
    return path, cfg


def check_same_screen(args: argparse.Namespace) -> dict:
    """Refuses to continue a work dir screened with another change.

    A run records what it screens (config, options, schedule) in
    ``<work-dir>/screen_args.json``; a later run with other settings would
    resume the first one's training under the new label.

    Args:
        args (argparse.Namespace): The command line.

    Returns:
        dict: This run's settings, as recorded.

    Raises:
        ConfigError: The work dir holds a screen of other settings.
    """
    settings = json.loads(json.dumps(dict(
        config=osp.abspath(args.config), cfg_options=args.cfg_options or {},
        epochs=args.epochs, checkpoint_interval=args.checkpoint_interval)))
    path = osp.join(args.work_dir, 'screen_args.json')
    if osp.isfile(path):
        with open(path, encoding='utf-8') as f:
            if json.load(f) != settings:
                raise ConfigError(
                    f'{args.work_dir} holds a screen of other settings '
                    f'({path}); give another --work-dir, or delete it to '
                    'start over')
    return settings


def run_tool(argv: List[str], log: str) -> None:
    """Runs one of ``tools/*.py`` with its output appended to ``log``.

    Raises:
        ConfigError: The tool failed; the message names its log.
    """
    with open(log, 'a') as f:
        code = subprocess.run([sys.executable] + argv, stdout=f,
                              stderr=subprocess.STDOUT).returncode
    if code != 0:
        raise ConfigError(f'{osp.basename(argv[0])} exited with {code}; its '
                          f'output is in {log}')


def read_metrics(log: str) -> Dict[str, float]:
    """The COCO numbers of a ``tools/test.py`` log, by :data:`METRICS`.

    Raises:
        ConfigError: The log has none (no ``metrics_json=`` line, or a test
            evaluator other than a bbox ``CocoMetric``).
    """
    try:
        metrics = datafree.read_test_metrics(log)
    except RuntimeError as e:
        raise ConfigError(str(e)) from e
    missing = [key for key in METRICS.values() if key not in metrics]
    if missing:
        raise ConfigError(f'{log} has no {missing[0]}: is the test '
                          'evaluator a CocoMetric with metric="bbox"?')
    return {name: metrics[key] for name, key in METRICS.items()}


def score(config: str, checkpoint: str, work_dir: str, split: str,
          options: List[str]) -> Dict[str, float]:
    """Scores ``checkpoint`` with ``tools/test.py``.

    Args:
        config (str): The screened config.
        checkpoint (str): The checkpoint to score.
        work_dir (str): The screen's folder; the log is
            ``<work_dir>/<split>.out`` (rewritten), the Runner's files go
            to ``<work_dir>/<split>/``.
        split (str): ``val`` or ``test``, for the file names.
        options (List[str]): ``--cfg-options`` of ``tools/test.py``.

    Returns:
        Dict[str, float]: The six COCO numbers, by :data:`METRICS`.
    """
    log = osp.join(work_dir, f'{split}.out')
    if osp.exists(log):
        os.remove(log)
    argv = [osp.join(ROOT, 'tools', 'test.py'), config, checkpoint,
            '--work-dir', osp.join(work_dir, split)]
    run_tool(argv + (['--cfg-options'] + options if options else []), log)
    return read_metrics(log)


def val_options(cfg: Config, ann_file: str) -> List[str]:
    """``--cfg-options`` that point the test loader and evaluator at the
    validation split's annotations."""
    data_root = cfg.test_dataloader.dataset.get('data_root', '') or ''
    return [f'test_dataloader.dataset.ann_file={ann_file}',
            f'test_evaluator.ann_file={osp.join(data_root, ann_file)}']


def screen(args: argparse.Namespace) -> dict:
    """Trains (or resumes) the screened config and scores it.

    Args:
        args (argparse.Namespace): The command line.

    Returns:
        dict: What ``screen.json`` holds: commit, config, epochs,
        cfg_options, checkpoint and per split the six COCO numbers.
    """
    settings = check_same_screen(args)
    config, cfg = prepare_config(args)
    dump_json_atomic(settings, osp.join(args.work_dir, 'screen_args.json'),
                     indent=1)
    train_dir = osp.join(args.work_dir, 'train')
    checkpoint = datafree.last_checkpoint(train_dir)
    final = cfg.train_cfg.get('max_epochs')
    if final is not None and datafree.training_finished(train_dir, final):
        print(f'training done: {checkpoint}')
    else:
        start = f'from {checkpoint}' if checkpoint else 'from the start'
        log = osp.join(args.work_dir, 'train.out')
        print(f'training {start}; log: {log}')
        run_tool([osp.join(ROOT, 'tools', 'train.py'), config, '--resume'],
                 osp.join(args.work_dir, 'train.out'))
        checkpoint = datafree.last_checkpoint(train_dir)
        if checkpoint is None:
            raise ConfigError(f'training wrote no checkpoint in {train_dir}')
    result = dict(commit=git_commit(), config=args.config,
                  epochs=final, cfg_options=args.cfg_options or {},
                  checkpoint=checkpoint)
    if args.val_ann_file:
        result['val'] = score(config, checkpoint, args.work_dir, 'val',
                              val_options(cfg, args.val_ann_file))
    result['test'] = score(config, checkpoint, args.work_dir, 'test', [])
    dump_json_atomic(result, osp.join(args.work_dir, 'screen.json'),
                     indent=1)
    return result


def summary_line(result: dict) -> str:
    """The last line printed: mAP and mAP@0.5 of each scored split."""
    parts = [f'{split}_{key}={result[split][key]:.3f}'
             for split in ('val', 'test') if split in result
             for key in ('map', 'map50')]
    return 'screen ' + ' '.join(parts)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    try:
        result = screen(args)
    except (ConfigError, OSError) as e:
        return fail(e)
    print(summary_line(result))
    return 0


if __name__ == '__main__':
    sys.exit(main())
