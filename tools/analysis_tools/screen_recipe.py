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
long screen (48 epochs) can span several sittings::

    python tools/analysis_tools/screen_recipe.py \\
        work_dirs/datafree/full/yolov3/scaling_300/scaling_300.py \\
        --work-dir work_dirs/screen/s300_48e --epochs 48 \\
        --checkpoint-interval 4 --val-ann-file annotations/val.json
"""
import os
import os.path as osp
import re
import subprocess
import sys
from typing import Dict, List, Optional

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, ROOT)

from benchmarks.digits.datafree import set_epochs  # noqa: E402
from benchmarks.provenance import git_commit  # noqa: E402
from mmdiode.utils.cli import (ArgumentParser, ConfigError,  # noqa: E402
                               DictAction, fail, load_config)
from mmdiode.utils.fileio import dump_json_atomic  # noqa: E402

METRICS = ('map', 'map50', 'map75', 'map_s', 'map_m', 'map_l')
COPYPASTE = re.compile(r'bbox_mAP_copypaste: ((?:-?[0-9.]+ ?){6})')


def parse_args(argv: Optional[List[str]] = None):
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
                        'relative to the test dataset\'s data_root (default: '
                        'score the test split only)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='the change to screen, as in tools/train.py')
    return parser.parse_args(argv)


def prepare_config(args) -> str:
    """Writes ``<work-dir>/config.py``: the config with the change and the
    schedule folded in, training into ``<work-dir>/train``.

    Returns:
        str: The path of the written config.

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
            set_epochs(cfg, args.epochs or cfg.train_cfg.max_epochs,
                       args.checkpoint_interval)
        except ValueError as e:
            raise ConfigError(str(e)) from e
    cfg.work_dir = osp.join(args.work_dir, 'train')
    path = osp.join(args.work_dir, 'config.py')
    os.makedirs(args.work_dir, exist_ok=True)
    cfg.dump(path + '.tmp.py')
    os.replace(path + '.tmp.py', path)
    return path


def last_checkpoint(train_dir: str) -> Optional[str]:
    """The checkpoint ``last_checkpoint`` names, if training has written
    one."""
    marker = osp.join(train_dir, 'last_checkpoint')
    if not osp.isfile(marker):
        return None
    with open(marker) as f:
        path = f.read().strip()
    return path if osp.isfile(path) else None


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
    """The last ``bbox_mAP_copypaste`` line of a ``tools/test.py`` log.

    Raises:
        ConfigError: The log has no such line.
    """
    with open(log) as f:
        found = COPYPASTE.findall(f.read())
    if not found:
        raise ConfigError(f'no bbox_mAP_copypaste line in {log}: is the '
                          'test evaluator a CocoMetric with metric="bbox"?')
    return dict(zip(METRICS, map(float, found[-1].split())))


def score(config: str, checkpoint: str, work_dir: str, split: str,
          options: List[str]) -> Dict[str, float]:
    """Scores ``checkpoint`` with ``tools/test.py``; the log is
    ``<work-dir>/<split>.out`` (rewritten)."""
    log = osp.join(work_dir, f'{split}.out')
    if osp.exists(log):
        os.remove(log)
    argv = [osp.join(ROOT, 'tools', 'test.py'), config, checkpoint,
            '--work-dir', osp.join(work_dir, split)]
    run_tool(argv + (['--cfg-options'] + options if options else []), log)
    return read_metrics(log)


def val_options(config: str, ann_file: str) -> List[str]:
    """``--cfg-options`` that point the test loader and evaluator at the
    validation split's annotations."""
    cfg = load_config(config)
    data_root = cfg.test_dataloader.dataset.get('data_root', '') or ''
    return [f'test_dataloader.dataset.ann_file={ann_file}',
            f'test_evaluator.ann_file={osp.join(data_root, ann_file)}']


def screen(args) -> dict:
    config = prepare_config(args)
    train_dir = osp.join(args.work_dir, 'train')
    checkpoint = last_checkpoint(train_dir)
    final = load_config(config).train_cfg.get('max_epochs')
    done = checkpoint is not None and final is not None and \
        osp.basename(checkpoint) == f'epoch_{final}.pth'
    if done:
        print(f'training done: {checkpoint}')
    else:
        start = f'from {checkpoint}' if checkpoint else 'from the start'
        log = osp.join(args.work_dir, 'train.out')
        print(f'training {start}; log: {log}')
        run_tool([osp.join(ROOT, 'tools', 'train.py'), config, '--resume'],
                 osp.join(args.work_dir, 'train.out'))
        checkpoint = last_checkpoint(train_dir)
        if checkpoint is None:
            raise ConfigError(f'training wrote no checkpoint in {train_dir}')
    result = dict(commit=git_commit(), config=args.config,
                  epochs=final, cfg_options=args.cfg_options or {},
                  checkpoint=checkpoint)
    if args.val_ann_file:
        result['val'] = score(config, checkpoint, args.work_dir, 'val',
                              val_options(config, args.val_ann_file))
    result['test'] = score(config, checkpoint, args.work_dir, 'test', [])
    dump_json_atomic(result, osp.join(args.work_dir, 'screen.json'),
                     indent=1)
    return result


def summary_line(result: dict) -> str:
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
