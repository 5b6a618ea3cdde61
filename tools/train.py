#!/usr/bin/env python
"""Train a detector (or a KD/data-free wrapper) with mmengine's Runner.

Same flags as mmdet's ``tools/train.py``::

    python tools/train.py configs/detectors/yolov3-mv2_24e_digits.py
    python tools/train.py CONFIG --work-dir DIR --amp --resume
    bash tools/dist_train.sh CONFIG 8          # torchrun, 8 GPUs
    bash tools/dist_train.sh CONFIG 2          # no CUDA: 2 CPU processes, gloo
"""
import logging
import os.path as osp
import sys
from functools import partial

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmengine.logging import print_log  # noqa: E402

import mmdiode  # noqa: E402,F401  (registers components and safe globals)
from mmdiode.utils import (ConfigError, check_checkpoint_fits,  # noqa: E402
                           default_work_dir, load_checkpoint_file, load_config)
from mmdiode.utils.cli import (ArgumentParser, DictAction,  # noqa: E402
                               build_runner, check_data_files,
                               parse_launcher_args, run_runner_tool)


def parse_args(argv=None):
    parser = ArgumentParser(description='Train a detector')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument('--amp', action='store_true',
                        help='enable automatic-mixed-precision training')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the lr by the actual total batch size')
    parser.add_argument(
        '--resume', nargs='?', type=str, const='auto',
        help='resume from the given checkpoint, or from the latest one in '
        'the work dir when no path is given')
    parser.add_argument(
        '--allow-partial', action='store_true',
        help='start from a load_from checkpoint even if it fits fewer than '
        'half of the model\'s tensors (refused by default: it is then a '
        'checkpoint of another model)')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings in the config, key=value, e.g. '
        'train_cfg.max_epochs=3')
    return parse_launcher_args(parser, argv)


def apply_args(cfg, args):
    """Folds the command-line flags into the config, as mmdet does."""
    cfg.launcher = args.launcher
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = default_work_dir(args.config)
    if args.amp:
        if cfg.optim_wrapper.get('type', 'OptimWrapper') == 'AmpOptimWrapper':
            print_log('AMP is already enabled in the config', 'current',
                      logging.WARNING)
        else:
            cfg.optim_wrapper.type = 'AmpOptimWrapper'
            cfg.optim_wrapper.loss_scale = 'dynamic'
    if args.auto_scale_lr:
        if 'auto_scale_lr' not in cfg or 'base_batch_size' not in \
                cfg.auto_scale_lr:
            raise ConfigError('--auto-scale-lr needs auto_scale_lr.'
                              'base_batch_size in the config')
        cfg.auto_scale_lr.enable = True
    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif args.resume is not None:
        if not osp.isfile(args.resume):
            raise ConfigError(f'--resume checkpoint not found: {args.resume}')
        cfg.resume, cfg.load_from = True, args.resume
    check_schedule(cfg)
    return cfg


def check_schedule(cfg) -> None:
    """Refuses a schedule that trains nothing (mmengine would end at once,
    exit 0, and leave the previous checkpoints as if they were the run's)."""
    train_cfg = cfg.get('train_cfg') or {}
    for key in ('max_epochs', 'max_iters'):
        value = train_cfg.get(key)
        if value is not None and (not isinstance(value, int) or value < 1):
            raise ConfigError(f'train_cfg.{key} must be an integer >= 1, got '
                              f'{value!r}')


def used_loaders(cfg) -> tuple:
    """The data loaders whose files must exist before a training run:
    validation only when the config validates on a set that is not made by
    the run itself (``TeacherAgreementValLoop`` synthesizes its set on first
    use)."""
    val_cfg = cfg.get('val_cfg')
    if val_cfg and cfg.get('val_evaluator') and \
            not makes_its_val_set(val_cfg.get('type')):
        return ('train_dataloader', 'val_dataloader')
    return ('train_dataloader', )


def makes_its_val_set(loop_type) -> bool:
    """Whether a ``val_cfg.type`` (a name, scoped or not, or a class) is
    ``TeacherAgreementValLoop`` or a subclass of it."""
    from mmdet.registry import LOOPS

    from mmdiode.engine.runner import TeacherAgreementValLoop
    if isinstance(loop_type, str):
        try:
            loop_type = LOOPS.get(loop_type)
        except Exception:  # a scope that is not installed: not ours
            return False
    return isinstance(loop_type, type) and issubclass(
        loop_type, TeacherAgreementValLoop)


#: Least share of the model's tensors a ``load_from`` checkpoint must fit:
#: fine-tuning with a new head (other classes) loads most of a model, a
#: checkpoint of another architecture almost none of it.
LOAD_FROM_MIN_FRACTION = 0.5


def check_load_from(runner, cfg) -> None:
    """Refuses a ``load_from`` checkpoint that fits too little of the model
    (mmengine would only warn and train from random weights)."""
    path = cfg.get('load_from')
    if not path or cfg.get('resume') or '://' in path:
        return
    ckpt = load_checkpoint_file(path)
    model = runner.model
    check_checkpoint_fits(getattr(model, 'module', model),
                          ckpt.get('state_dict', ckpt), f'load_from {path}',
                          min_fraction=LOAD_FROM_MIN_FRACTION,
                          hint='; --allow-partial starts from it anyway')


def train(cfg, allow_partial: bool = False) -> None:
    """Builds the Runner of the config and trains."""
    runner = build_runner(cfg)
    if not allow_partial:
        check_load_from(runner, cfg)
    runner.train()


def prepare_train(args) -> tuple:
    """Loads the config, folds the options into it and checks the data
    files; returns the config and the training on it (see
    :func:`run_runner_tool`)."""
    cfg = apply_args(load_config(args.config, args.cfg_options), args)
    check_data_files(cfg, used_loaders(cfg))
    return cfg, partial(train, cfg, args.allow_partial)


def main(argv=None) -> int:
    args = parse_args(argv)
    return run_runner_tool(args.launcher, partial(prepare_train, args))[0]


if __name__ == '__main__':
    sys.exit(main())
