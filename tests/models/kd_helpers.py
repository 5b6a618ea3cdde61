"""Helpers for the model tests: tiny detector pairs, batches, a tiny COCO
set written to disk, Runner configs on it, and settings shared with the
synthesis tests."""
import json
import os.path as osp

import numpy as np
import torch

from mmdiode.testing import TINY_PREPROCESSOR

CLASSES = ('a', 'b', 'c')
IMG_SIZE = 64


def make_tiny_coco(root: str,
                   num_images: int = 4,
                   size: int = IMG_SIZE,
                   seed: int = 0) -> dict:
    """Writes random-noise PNG images with 1-2 random boxes in COCO format.

    Args:
        root (str): Folder to write ``images/`` and ``ann.json`` into.
        num_images (int): Number of images.
        size (int): Side of the square images.
        seed (int): Seed of the noise and boxes.

    Returns:
        dict: ``ann_file`` and ``img_dir`` (absolute paths).
    """
    import mmcv
    rng = np.random.default_rng(seed)
    images, annotations = [], []
    for i in range(num_images):
        name = f'{i:03d}.png'
        mmcv.imwrite(
            rng.integers(0, 256, (size, size, 3), dtype=np.uint8),
            osp.join(root, 'images', name))
        images.append(dict(id=i + 1, file_name=name, width=size, height=size))
        for _ in range(rng.integers(1, 3)):
            w, h = rng.uniform(0.3, 0.7, 2) * size
            x, y = rng.uniform(0, size - w), rng.uniform(0, size - h)
            annotations.append(
                dict(
                    id=len(annotations) + 1,
                    image_id=i + 1,
                    category_id=int(rng.integers(1,
                                                 len(CLASSES) + 1)),
                    bbox=[float(x), float(y),
                          float(w), float(h)],
                    area=float(w * h),
                    iscrowd=0))
    categories = [dict(id=i + 1, name=c) for i, c in enumerate(CLASSES)]
    ann_file = osp.join(root, 'ann.json')
    with open(ann_file, 'w') as f:
        json.dump(
            dict(
                images=images, annotations=annotations, categories=categories),
            f)
    return dict(ann_file=ann_file, img_dir=osp.join(root, 'images'))


def runner_config(model: dict,
                  coco: dict,
                  work_dir: str,
                  max_iters: int = 2) -> dict:
    """A complete iteration-based Runner config on a tiny COCO set.

    Training runs ``max_iters`` iterations at batch 2 and validates at the
    end with ``CocoMetric``; the test set is the same images.
    """
    pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations', with_bbox=True),
        dict(type='Resize', scale=(IMG_SIZE, IMG_SIZE), keep_ratio=True),
        dict(type='PackDetInputs'),
    ]

    def loader(shuffle):
        return dict(
            batch_size=2,
            num_workers=0,
            persistent_workers=False,
            sampler=dict(type='DefaultSampler', shuffle=shuffle),
            dataset=dict(
                type='CocoDataset',
                metainfo=dict(classes=CLASSES),
                ann_file=coco['ann_file'],
                data_root='',
                data_prefix=dict(img=coco['img_dir'] + '/'),
                filter_cfg=dict(filter_empty_gt=False),
                pipeline=pipeline))

    evaluator = dict(
        type='CocoMetric', ann_file=coco['ann_file'], metric='bbox')
    return dict(
        default_scope='mmdet',
        model=model,
        work_dir=work_dir,
        train_dataloader=loader(True),
        val_dataloader=loader(False),
        test_dataloader=loader(False),
        val_evaluator=evaluator,
        test_evaluator=evaluator,
        train_cfg=dict(
            type='IterBasedTrainLoop',
            max_iters=max_iters,
            val_interval=max_iters),
        val_cfg=dict(type='ValLoop'),
        test_cfg=dict(type='TestLoop'),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=1e-3, momentum=0.9)),
        default_hooks=dict(
            timer=dict(type='IterTimerHook'),
            logger=dict(type='LoggerHook', interval=1),
            param_scheduler=dict(type='ParamSchedulerHook'),
            checkpoint=dict(
                type='CheckpointHook', interval=max_iters, by_epoch=False)),
        env_cfg=dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo')),
        log_level='WARNING',
        randomness=dict(seed=0))


# False-positive sampling once, after the first iteration, of every
# detection (score 0, any area): a random tiny teacher's detections join the
# targets.
FP_SAMPLING_ONCE = dict(
    start=1, end=1, interval=1, score_thr=0.0, min_area=0.0, max_area=1.0)

# The tiny detectors' preprocessor with another normalisation (mean 0 /
# std 255, BGR): the YOLOv3 teacher's of tiny_pair.
TEACHER_PREPROCESSOR = dict(
    TINY_PREPROCESSOR,
    mean=[0., 0., 0.],
    std=[255., 255., 255.],
    bgr_to_rgb=False)


def tiny_pair(kind: str):
    """(student, teacher) configs; the teacher is wider and, for YOLOv3,
    normalises differently (mean 0 / std 255, BGR) from the student
    (ImageNet mean/std, RGB)."""
    from mmdiode.testing import tiny_faster_rcnn, tiny_retinanet, tiny_yolov3
    if kind == 'yolov3':
        return (tiny_yolov3(widen_factor=0.25),
                tiny_yolov3(
                    widen_factor=0.5, preprocessor=TEACHER_PREPROCESSOR))
    if kind == 'faster_rcnn':
        return (tiny_faster_rcnn(),
                tiny_faster_rcnn(base_channels=16, fpn_channels=32))
    if kind == 'retinanet':
        return (tiny_retinanet(),
                tiny_retinanet(base_channels=16, fpn_channels=32))
    raise ValueError(kind)


def build_kd(student: dict, teacher: dict, checkpoint=None, **kwargs):
    """A KDDetector from model configs (teacher weights from ``checkpoint``
    or as built)."""
    from mmdet.registry import MODELS
    return MODELS.build(
        dict(
            type='KDDetector',
            student=student,
            teacher=dict(config=teacher, checkpoint=checkpoint),
            **kwargs))


def save_teacher(teacher_cfg: dict, path: str, classes=CLASSES) -> dict:
    """Builds a teacher, saves it like a Runner checkpoint (with
    ``meta.dataset_meta.classes``) and returns its state dict."""
    from mmdet.registry import MODELS
    from mmengine.config import ConfigDict
    model = MODELS.build(ConfigDict(teacher_cfg))
    state = {k: v.clone() for k, v in model.state_dict().items()}
    torch.save(
        dict(
            meta=dict(dataset_meta=dict(classes=list(classes))),
            state_dict=state), path)
    return state


def batch(num_boxes=(1, 2), size: int = IMG_SIZE, seed: int = 0):
    """Student-normalised random inputs (2, 3, size, size) and samples with
    ``num_boxes[i]`` random boxes (0 gives an image without ground truth)."""
    from mmdiode.testing import make_data_samples
    g = torch.Generator().manual_seed(seed)
    boxes, labels = [], []
    for k in num_boxes:
        xy = torch.rand(k, 2, generator=g) * size / 2
        wh = (torch.rand(k, 2, generator=g) * 0.4 + 0.2) * size
        boxes.append(torch.cat([xy, (xy + wh).clamp(max=size)], dim=1))
        labels.append(torch.randint(0, len(CLASSES), (k, ), generator=g))
    inputs = torch.randn(len(num_boxes), 3, size, size, generator=g)
    return inputs, make_data_samples(boxes, labels, size)


def register_adapted_neck_mse():
    """A distillation loss that owns parameters (a 1x1 adaptation conv), as
    feature losses do: MSE between adapted student and teacher neck level 0.
    """
    from mmdet.registry import MODELS
    from torch import nn

    from mmdiode.models import BaseDistillLoss

    class _AdaptedNeckMSE(BaseDistillLoss):

        def __init__(self,
                     student_channels: int,
                     teacher_channels: int,
                     loss_weight: float = 1.0) -> None:
            super().__init__(loss_weight=loss_weight)
            self.adapt = nn.Conv2d(student_channels, teacher_channels, 1)
            self.student_modules = ['neck']
            self.teacher_modules = ['neck']

        def forward(self, ctx):
            s = self.adapt(ctx.student_outs['neck'][0])
            t = ctx.teacher_outs['neck'][0]
            return dict(loss_feat=self.loss_weight *
                        torch.nn.functional.mse_loss(s, t))

    MODELS.register_module(
        name='TestAdaptedNeckMSE', module=_AdaptedNeckMSE, force=True)


def build_detector(cfg: dict):
    """An mmdet detector from a config dict (registries already filled)."""
    from mmdet.registry import MODELS
    from mmengine.config import ConfigDict
    return MODELS.build(ConfigDict(cfg))


def record_stages(model, images: torch.Tensor) -> dict:
    """What the KD wrapper's hooks record for 'backbone' and 'neck'.

    Args:
        model: A detector with ``backbone`` and ``neck``.
        images (Tensor): Shape (N, 3, H, W).

    Returns:
        dict: ``{'backbone': tuple of (N, C_i, H_i, W_i), 'neck': ...}``.
    """
    backbone = model.backbone(images)
    return {'backbone': backbone, 'neck': model.neck(backbone)}


def backward_through_adaptations(loss, value) -> None:
    """Checks that ``value``, what the correspondence loss ``loss``
    returned, is finite and positive, and that its backward reaches every
    stage's 1x1 adaptation conv."""
    assert torch.isfinite(value) and value.item() > 0
    value.backward()
    assert all(layer.adapt.conv.weight.grad.abs().sum() > 0
               for layer in loss.correspondences)
