#!/usr/bin/env python
"""Evaluate a checkpoint with mmdet's test harness (CocoMetric etc.).

Same flags as mmdet's ``tools/test.py``::

    python tools/test.py configs/detectors/yolov3-mv2_24e_digits.py \
        work_dirs/yolov3_teacher/epoch_24.pth --out results.pkl --show-dir viz
    bash tools/dist_test.sh CONFIG CKPT 8      # torchrun, 8 GPUs
    bash tools/dist_test.sh CONFIG CKPT 2      # no CUDA: 2 CPU processes, gloo
"""
import json
import os.path as osp
import sys
from functools import partial

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import mmdiode  # noqa: E402,F401
from mmdiode.utils import (ConfigError, check_checkpoint_fits,  # noqa: E402
                           default_work_dir, load_checkpoint_file, load_config)
from mmdiode.utils.cli import (ArgumentParser, DictAction,  # noqa: E402
                               build_runner, check_data_files,
                               parse_launcher_args, run_runner_tool)


def parse_args(argv=None):
    parser = ArgumentParser(description='Test (and eval) a model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the dir to save the metrics')
    parser.add_argument('--out', help='dump predictions to a pickle file')
    parser.add_argument('--show', action='store_true',
                        help='show prediction results in a window')
    parser.add_argument('--show-dir',
                        help='dir (inside the work dir) to save drawings')
    parser.add_argument('--wait-time', type=float, default=2)
    parser.add_argument('--allow-partial', action='store_true',
                        help='evaluate even if the checkpoint leaves some of '
                        'the model\'s tensors unloaded (refused by default: '
                        'it is then a checkpoint of another model)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings in the config, key=value')
    return parse_launcher_args(parser, argv)


def enable_visualization(cfg, args):
    """Turns on mmdet's DetVisualizationHook for --show / --show-dir."""
    hooks = cfg.default_hooks
    if 'visualization' not in hooks:
        raise ConfigError('--show/--show-dir need default_hooks.'
                          'visualization=dict(type="DetVisualizationHook")')
    hooks.visualization.draw = True
    if args.show:
        hooks.visualization.show = True
        hooks.visualization.wait_time = args.wait_time
    if args.show_dir:
        hooks.visualization.test_out_dir = args.show_dir


def run_test(cfg, args, state_dict: dict) -> dict:
    """Builds the Runner, checks that the checkpoint fits its model, adds
    --out's dump, and runs the test loop."""
    runner = build_runner(cfg)
    if not args.allow_partial:
        model = runner.model
        check_checkpoint_fits(
            getattr(model, 'module', model), state_dict, args.checkpoint,
            hint=f' than {args.config}; --allow-partial evaluates it anyway')
    if args.out is not None:
        from mmdet.evaluation import DumpDetResults
        runner.test_evaluator.metrics.append(
            DumpDetResults(out_file_path=args.out))
    return runner.test()


def prepare_test(args) -> tuple:
    """Checks the options and the inputs and folds the options into the
    config; returns the config and the test run on it (see
    :func:`run_runner_tool`)."""
    if args.out is not None and not args.out.endswith(('.pkl', '.pickle')):
        raise ConfigError('--out must end with .pkl or .pickle')
    cfg = load_config(args.config, args.cfg_options)
    check_data_files(cfg, ('test_dataloader', ))
    # A clear error before building.
    ckpt = load_checkpoint_file(args.checkpoint)
    cfg.launcher = args.launcher
    cfg.work_dir = args.work_dir or cfg.get('work_dir') or \
        default_work_dir(args.config)
    cfg.load_from = args.checkpoint
    if args.show or args.show_dir:
        enable_visualization(cfg, args)
    return cfg, partial(run_test, cfg, args, ckpt.get('state_dict', ckpt))


def main(argv=None) -> int:
    args = parse_args(argv)
    code, metrics = run_runner_tool(args.launcher, partial(prepare_test, args))
    if code:
        return code
    # One machine-readable line, for scripts that collect results, in one
    # write: print() writes the text and the newline separately, and the
    # lines of several ranks on one pipe (PYTHONUNBUFFERED) would interleave.
    sys.stdout.write('metrics_json=' + json.dumps(
        {k: float(v) for k, v in metrics.items()
         if isinstance(v, (int, float))}, sort_keys=True) + '\n')
    sys.stdout.flush()
    return 0


if __name__ == '__main__':
    sys.exit(main())
