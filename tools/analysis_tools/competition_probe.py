#!/usr/bin/env python
"""How strong should the synthesizer's competition term be? A probe.

Adaptive DeepInversion's competition term (``competition.weight`` of the
synthesizer of a ``DeepInversionHook``, docs/en/synthesis.md) trades the
teacher's fidelity for the student's disagreement, and the scale of the
divergence depends on the pair and on how far the student has learnt, so
its weight is chosen by measurement. This tool takes an on-the-fly
data-free config and a checkpoint of its model (the student as far as it
has trained), synthesizes one batch of the train set's layouts with the
hook's synthesizer at each ``--weights`` value (same layouts, same seed)
and prints, per weight, the fraction of the batch's targets the teacher
finds in the images (score >= 0.3, IoU >= 0.5), the divergence ``D`` of the
student from the teacher on the final images (the term's loss, unaugmented)
and each loss term's first and last value. Weight 0 is the recipe without
the term (its ``D`` is measured all the same). Writes ``--out`` (json)::

    python tools/analysis_tools/competition_probe.py \\
        configs/diode/diode_yolov3-mv2_yolov3-mv2-x0.5_24e_digits.py \\
        work_dirs/screen/epoch_6.pth --weights 0 10 30 100 \\
        --out work_dirs/competition_probe.json

The config's competition ``loss`` is the divergence; without one,
``--loss`` must name it (a Python dict literal).
"""
import ast
import copy
import os.path as osp
import sys
import time
from typing import Dict, List, Optional

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, ROOT)

import mmdiode  # noqa: E402,F401
from mmdiode.utils.cli import (ArgumentParser, ConfigError,  # noqa: E402
                               DictAction, fail, load_config)
from mmdiode.utils.fileio import dump_json_atomic  # noqa: E402


def parse_args(argv=None):
    parser = ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='on-the-fly data-free config')
    parser.add_argument('checkpoint', help='checkpoint of its model')
    parser.add_argument('--weights', type=float, nargs='+',
                        default=[0.0, 10.0, 30.0, 100.0],
                        help='competition weights to probe')
    parser.add_argument('--num-images', type=int, default=16,
                        help='images of the batch (default: 16)')
    parser.add_argument('--first-layout', type=int, default=100000,
                        help='index of the batch\'s first layout in the '
                        'train set (default: 100000, past those a run '
                        'synthesizes)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--device', help='cpu or cuda (default: cuda when '
                        'available)')
    parser.add_argument('--loss', help='the divergence (a Python dict '
                        'literal), when the config has none, e.g. '
                        '"{\'type\': \'YOLOv3OutputKDLoss\', '
                        '\'box_weight\': 0.0}"')
    parser.add_argument('--out', help='json of the rows')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings in the config, key=value')
    args = parser.parse_args(argv)
    if args.num_images < 1:
        parser.error(f'--num-images must be >= 1, got {args.num_images}')
    if any(w < 0 for w in args.weights):
        parser.error('--weights must be >= 0')
    return args


def hook_synthesizer(cfg, loss: Optional[str] = None) -> dict:
    """The ``DeepInversionHook``'s synthesizer config, with a divergence."""
    hooks = [h for h in cfg.get('custom_hooks', [])
             if h.get('type') == 'DeepInversionHook']
    if not hooks:
        raise ConfigError('the config has no DeepInversionHook: give an '
                          'on-the-fly data-free config')
    synth = copy.deepcopy(dict(hooks[0]['synthesizer']))
    competition = dict(synth.get('competition') or {})
    if loss is not None:
        try:
            competition['loss'] = ast.literal_eval(loss)
        except (ValueError, SyntaxError):
            competition['loss'] = None
        if not isinstance(competition['loss'], dict):
            raise ConfigError(f'--loss {loss!r} is not a Python dict literal')
    if not competition.get('loss'):
        raise ConfigError('the synthesizer has no competition loss: give '
                          '--loss, e.g. "{\'type\': \'YOLOv3OutputKDLoss\', '
                          '\'box_weight\': 0.0}"')
    synth['competition'] = competition
    return synth


def train_layouts(cfg, first: int, num: int) -> list:
    """``(boxes, labels)`` of the train set's layouts ``first..first+num-1``
    (the ``BoxSamplerDataset``'s, whose classes are the teacher's)."""
    from mmdet.registry import DATASETS, TASK_UTILS

    from mmdiode.engine.hooks.deep_inversion_hook import teacher_classes
    dataset = cfg.train_dataloader.dataset
    while dataset.get('type') != 'BoxSamplerDataset':
        if 'dataset' not in dataset:
            raise ConfigError('the train set is no BoxSamplerDataset')
        dataset = dataset['dataset']
    dataset = DATASETS.build(dict(dataset, pool_dir=None))
    classes = dataset.declared_classes or teacher_classes(cfg.model)
    if not classes:
        raise ConfigError('the teacher\'s classes are unknown: set the train '
                          'set\'s metainfo=dict(classes=...)')
    sampler = TASK_UTILS.build(
        dict(dataset.layout_sampler_cfg, classes=tuple(classes)))
    return [sampler.sample(first + i).as_tensors() for i in range(num)]


def probe(args) -> List[Dict]:
    import torch
    from mmdet.registry import MODELS, TASK_UTILS
    from mmdet.structures import DetDataSample
    from mmengine.registry import init_default_scope
    from mmengine.runner import load_checkpoint

    from mmdiode.models.task_modules.inversion import EarlyExit
    cfg = load_config(args.config, args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    synth_cfg = hook_synthesizer(cfg, args.loss)
    device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    model = MODELS.build(cfg.model)
    load_checkpoint(model, args.checkpoint, map_location='cpu')
    model.to(device)  # the teacher with it (KDDetector._apply)
    student, teacher = model.student, model.teacher
    student.train()  # as the hook finds it
    layouts = train_layouts(cfg, args.first_layout, args.num_images)
    # Scores the final images: the divergence at weight 1, the targets
    # found with the early exit's rule.
    scorer = TASK_UTILS.build(
        dict(synth_cfg, teacher=teacher,
             competition=dict(synth_cfg['competition'], weight=1.0)))
    scorer.attach_student(student)
    found_rule = EarlyExit(enable=True)
    rows = []
    for weight in args.weights:
        engine = TASK_UTILS.build(
            dict(synth_cfg, teacher=teacher,
                 competition=dict(synth_cfg['competition'], weight=weight)))
        engine.attach_student(student)
        start = time.perf_counter()
        result = engine.synthesize(
            layouts, torch.Generator().manual_seed(args.seed))
        seconds = time.perf_counter() - start
        # Images whose pixels were not finite are dropped, as the hook does.
        valid = result.valid.nonzero().flatten().tolist()
        x = engine.pixel_space.to_model(
            result.images[valid].permute(0, 3, 1, 2).to(device))
        boxes = [result.boxes[i].to(device) for i in valid]
        labels = [result.labels[i].to(device) for i in valid]
        h, w = engine.final_size
        samples = [
            DetDataSample(metainfo=dict(
                img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w),
                batch_input_shape=(h, w), scale_factor=(1.0, 1.0)))
            for _ in valid
        ]
        competition = scorer.competition
        with torch.no_grad(), competition.frozen_student(), \
                competition.recording(teacher) as teacher_outs:
            teacher._forward(x, samples)
            divergence = float(
                competition.disagreement(teacher, x, samples, teacher_outs))
            found = found_rule.targets_found(teacher, x, samples, boxes,
                                             labels)
        row = dict(weight=weight, images=len(valid), found=round(found, 4),
                   divergence=round(divergence, 4),
                   seconds=round(seconds, 1),
                   losses={k: [round(v[0], 4), round(v[1], 4)]
                           for k, v in result.loss_history.items()})
        rows.append(row)
        terms = ' '.join(f'{k} {v[0]:.4g}->{v[1]:.4g}'
                         for k, v in row['losses'].items()
                         if k in ('loss_task', 'loss_bn', 'loss_compete'))
        print(f'weight={weight:g} found={found:.3f} D={divergence:.4f} '
              f'{terms} ({seconds:.0f} s)', flush=True)
    return rows


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        rows = probe(args)
    except (ConfigError, ValueError, FileNotFoundError) as e:
        return fail(e)
    if args.out:
        dump_json_atomic(dict(config=args.config, checkpoint=args.checkpoint,
                              num_images=args.num_images, rows=rows),
                         args.out)
        print(f'wrote {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
