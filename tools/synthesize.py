#!/usr/bin/env python
"""Synthesize a labelled COCO data set from a detector alone (DIODE / MOI).

    python tools/synthesize.py configs/diode/diode_yolov3-mv2_synth_digits.py \
        --teacher-ckpt work_dirs/yolov3_teacher/final.pth \
        --out data/synth_yolov3 --num-images 1000 --viz
    # several processes/GPUs: each rank writes its shard, rank 0 merges
    bash tools/dist_synthesize.sh CONFIG 8 --out DIR ...  # torchrun, 8 GPUs
    bash tools/dist_synthesize.sh CONFIG 2 --out DIR ...  # no CUDA: 2 CPUs

Killed at any moment and restarted with the same command, it continues where
it stopped. The output loads in mmdet's CocoDataset as is
(``annotations.json`` + ``images/``); ``fidelity.json`` and the histograms
beside it report how well the teacher detects its own targets.
"""
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import mmdiode  # noqa: E402,F401
from mmdiode.utils import ConfigError, default_work_dir  # noqa: E402
from mmdiode.utils.checkpoint import CheckpointError  # noqa: E402
from mmdiode.utils.cli import (ArgumentParser, DictAction,  # noqa: E402
                               check_cfg_options, fail, parse_launcher_args)


def parse_args(argv=None):
    parser = ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='synthesis config')
    parser.add_argument('--teacher-ckpt', help='teacher checkpoint '
                        '(overrides teacher.checkpoint of the config)')
    parser.add_argument('--out', required=True, help='output data root')
    parser.add_argument('--num-images', type=int,
                        help='images to synthesize (overrides the config)')
    parser.add_argument('--iterations', type=int,
                        help='total optimisation iterations per image; the '
                        'stages keep their proportions')
    parser.add_argument('--seed', type=int,
                        help='seed of layouts and synthesis (overrides)')
    parser.add_argument('--work-dir', help='logs and tensorboard files')
    parser.add_argument('--viz', action='store_true',
                        help='write viz.png, a grid of images with boxes')
    parser.add_argument('--device', default=None,
                        help='cpu or cuda (default: cuda when available)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings in the config, key=value')
    return parse_launcher_args(parser, argv)


def build_cfg(args):
    from mmdiode.apis import scale_schedule
    from mmdiode.apis.synthesis import load_synthesis_config
    cfg = load_synthesis_config(args.config)
    check_cfg_options(cfg, args.cfg_options)
    cfg.merge_from_dict(args.cfg_options or {})
    if osp.exists(args.out) and not osp.isdir(args.out):
        raise ConfigError(f'--out {args.out} is a file, not a folder: give '
                          'the folder the data set goes to')
    if args.teacher_ckpt:
        cfg.teacher.checkpoint = args.teacher_ckpt
    ckpt = cfg.teacher.get('checkpoint')
    if ckpt and '://' not in ckpt and not osp.isfile(ckpt):
        raise CheckpointError(f'teacher checkpoint not found: {ckpt}')
    if args.num_images is not None:
        if args.num_images < 1:
            raise ConfigError('--num-images must be >= 1')
        cfg.synthesis.num_images = args.num_images
    if args.seed is not None:
        cfg.synthesis.seed = args.seed
    if args.iterations is not None:
        if args.iterations < 1:
            raise ConfigError('--iterations must be >= 1')
        cfg.synthesizer = scale_schedule(cfg.synthesizer, args.iterations)
    return cfg


def synthesize(cfg, args) -> int:
    """Runs this process's share of the job; rank 0 reports. Exit code."""
    import torch
    from mmengine.registry import init_default_scope

    from mmdiode.apis import SynthesisJob
    from mmdiode.utils.dist import local_cuda_device
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    if device == 'cuda':  # ranks beyond the GPU count share them
        device = local_cuda_device(int(os.environ.get('LOCAL_RANK', 0)),
                                   torch.cuda.device_count())
    try:
        job = SynthesisJob(cfg, args.out,
                           args.work_dir or default_work_dir(args.config),
                           torch.device(device))
    except (ValueError, CheckpointError, OSError) as e:
        return fail(e)
    try:
        report = job.run()
    except (ConfigError, OSError) as e:
        return fail(e)
    if report is not None:
        if args.viz:
            print(f'wrote {job.write_grid()}')
        print('fidelity: teacher bbox_mAP={:.4f} bbox_mAP_50={:.4f} on {} '
              'images ({})'.format(report['bbox_mAP'], report['bbox_mAP_50'],
                                   report['num_images'],
                                   osp.join(args.out, 'fidelity.json')))
    return 0


def main(argv=None) -> int:
    args = parse_args(argv)
    from mmdiode.utils.dist import (check_launch_env, destroy_dist,
                                    init_dist_any_device)
    try:
        check_launch_env(args.launcher, share_gpus=True)
        cfg = build_cfg(args)
        # Without CUDA the ranks are CPU processes talking over gloo; with
        # more ranks than GPUs they share the GPUs (gloo as well).
        init_dist_any_device(args.launcher,
                             cfg.get('env_cfg', {}).get('dist_cfg', {}),
                             share_gpus=True)
    except (ConfigError, CheckpointError) as e:
        return fail(e)
    try:
        return synthesize(cfg, args)
    finally:
        destroy_dist()


if __name__ == '__main__':
    sys.exit(main())
