"""Helpers for tests and timing.

* Tiny mmdet detectors, real mmdet modules with few channels: each function
  returns a model ``ConfigDict`` (mmdet heads read ``train_cfg``/``test_cfg``
  by attribute) for ``mmdet.registry.MODELS.build`` that works on 3-channel
  images of a few dozen pixels (sides divisible by 32).
* :func:`run_dist_tool`: a ``dist_*.sh`` launch (torchrun) of CPU
  processes, as the multi-process tests run them.
* Tiny runs of the long jobs, as files the tools take: a randomly
  initialised teacher checkpoint (:func:`save_tiny_teacher`), a synthesis
  config for ``tools/synthesize.py`` (:func:`write_tiny_synthesis_config`)
  and an on-the-fly data-free training config with ``DeepInversionHook``
  for ``tools/train.py`` (:func:`write_tiny_datafree_config`). They need no
  data set and run in seconds on a CPU; the bad-input sweep and
  ``tools/analysis_tools/kill_resume.py`` use them.
"""
import copy
import os
import os.path as osp
import pprint
import socket
import subprocess
import sys
from typing import Optional, Sequence, Tuple

from mmengine.config import ConfigDict

from mmdiode.utils.samples import make_data_samples  # noqa: F401 (re-export)

#: The data preprocessor of the tiny detectors (ImageNet mean/std, RGB),
#: unless they are given another.
TINY_PREPROCESSOR = dict(
    type='DetDataPreprocessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    pad_size_divisor=32)


def tiny_yolov3(num_classes: int = 3, widen_factor: float = 0.25,
                preprocessor: Optional[dict] = None) -> dict:
    """YOLOv3 with a MobileNetV2 backbone (widen 0.25: 8/24/80 channels)."""
    c = {0.25: [80, 24, 8], 0.5: [160, 48, 16], 1.0: [320, 96, 32]}[
        widen_factor]
    w = max(8, int(96 * widen_factor))
    return ConfigDict(
        type='YOLOV3',
        data_preprocessor=copy.deepcopy(preprocessor or TINY_PREPROCESSOR),
        backbone=dict(type='MobileNetV2', widen_factor=widen_factor,
                      out_indices=(2, 4, 6),
                      act_cfg=dict(type='LeakyReLU', negative_slope=0.1)),
        neck=dict(type='YOLOV3Neck', num_scales=3, in_channels=c,
                  out_channels=[w, w, w]),
        bbox_head=dict(
            type='YOLOV3Head', num_classes=num_classes,
            in_channels=[w, w, w], out_channels=[w, w, w],
            anchor_generator=dict(
                type='YOLOAnchorGenerator',
                base_sizes=[[(24, 24), (28, 32), (32, 28)],
                            [(12, 12), (14, 16), (16, 14)],
                            [(6, 6), (7, 8), (8, 7)]],
                strides=[32, 16, 8]),
            bbox_coder=dict(type='YOLOBBoxCoder'),
            featmap_strides=[32, 16, 8],
            loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=True,
                          loss_weight=1.0, reduction='sum'),
            loss_conf=dict(type='CrossEntropyLoss', use_sigmoid=True,
                           loss_weight=1.0, reduction='sum'),
            loss_xy=dict(type='CrossEntropyLoss', use_sigmoid=True,
                         loss_weight=2.0, reduction='sum'),
            loss_wh=dict(type='MSELoss', loss_weight=2.0, reduction='sum')),
        train_cfg=dict(assigner=dict(type='GridAssigner', pos_iou_thr=0.5,
                                     neg_iou_thr=0.5, min_pos_iou=0)),
        test_cfg=dict(nms_pre=1000, min_bbox_size=0, score_thr=0.05,
                      conf_thr=0.005, nms=dict(type='nms', iou_threshold=0.45),
                      max_per_img=100))


def _resnet_fpn(base_channels: int, fpn_channels: int) -> dict:
    c = base_channels
    return dict(
        backbone=dict(type='ResNet', depth=18, base_channels=c, num_stages=4,
                      out_indices=(0, 1, 2, 3), frozen_stages=-1,
                      norm_cfg=dict(type='BN', requires_grad=True),
                      norm_eval=False, style='pytorch'),
        neck=dict(type='FPN', in_channels=[c, 2 * c, 4 * c, 8 * c],
                  out_channels=fpn_channels, num_outs=5))


def tiny_faster_rcnn(num_classes: int = 3, base_channels: int = 8,
                     fpn_channels: int = 16,
                     preprocessor: Optional[dict] = None) -> dict:
    """Faster R-CNN R18-FPN with 8 base channels and a 32-d RoI head."""
    f = fpn_channels
    return ConfigDict(
        type='FasterRCNN',
        data_preprocessor=copy.deepcopy(preprocessor or TINY_PREPROCESSOR),
        **_resnet_fpn(base_channels, f),
        rpn_head=dict(
            type='RPNHead', in_channels=f, feat_channels=f,
            anchor_generator=dict(type='AnchorGenerator', scales=[4],
                                  ratios=[0.5, 1.0, 2.0],
                                  strides=[4, 8, 16, 32, 64]),
            bbox_coder=dict(type='DeltaXYWHBBoxCoder',
                            target_means=[.0, .0, .0, .0],
                            target_stds=[1.0, 1.0, 1.0, 1.0]),
            loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=True,
                          loss_weight=1.0),
            loss_bbox=dict(type='L1Loss', loss_weight=1.0)),
        roi_head=dict(
            type='StandardRoIHead',
            bbox_roi_extractor=dict(
                type='SingleRoIExtractor',
                roi_layer=dict(type='RoIAlign', output_size=7,
                               sampling_ratio=0),
                out_channels=f, featmap_strides=[4, 8, 16, 32]),
            bbox_head=dict(
                type='Shared2FCBBoxHead', in_channels=f, fc_out_channels=32,
                roi_feat_size=7, num_classes=num_classes,
                bbox_coder=dict(type='DeltaXYWHBBoxCoder',
                                target_means=[0., 0., 0., 0.],
                                target_stds=[0.1, 0.1, 0.2, 0.2]),
                reg_class_agnostic=False,
                loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False,
                              loss_weight=1.0),
                loss_bbox=dict(type='L1Loss', loss_weight=1.0))),
        train_cfg=dict(
            rpn=dict(
                assigner=dict(type='MaxIoUAssigner', pos_iou_thr=0.7,
                              neg_iou_thr=0.3, min_pos_iou=0.3,
                              match_low_quality=True, ignore_iof_thr=-1),
                sampler=dict(type='RandomSampler', num=64, pos_fraction=0.5,
                             neg_pos_ub=-1, add_gt_as_proposals=False),
                allowed_border=-1, pos_weight=-1, debug=False),
            rpn_proposal=dict(nms_pre=200, max_per_img=100,
                              nms=dict(type='nms', iou_threshold=0.7),
                              min_bbox_size=0),
            rcnn=dict(
                assigner=dict(type='MaxIoUAssigner', pos_iou_thr=0.5,
                              neg_iou_thr=0.5, min_pos_iou=0.5,
                              match_low_quality=False, ignore_iof_thr=-1),
                sampler=dict(type='RandomSampler', num=32, pos_fraction=0.25,
                             neg_pos_ub=-1, add_gt_as_proposals=True),
                pos_weight=-1, debug=False)),
        test_cfg=dict(
            rpn=dict(nms_pre=200, max_per_img=100,
                     nms=dict(type='nms', iou_threshold=0.7),
                     min_bbox_size=0),
            rcnn=dict(score_thr=0.05, nms=dict(type='nms', iou_threshold=0.5),
                      max_per_img=100)))


def tiny_retinanet(num_classes: int = 3, base_channels: int = 8,
                   fpn_channels: int = 16,
                   preprocessor: Optional[dict] = None) -> dict:
    """RetinaNet R18-FPN with 8 base channels (a dense, one-stage head)."""
    f = fpn_channels
    model = dict(
        type='RetinaNet',
        data_preprocessor=copy.deepcopy(preprocessor or TINY_PREPROCESSOR),
        **_resnet_fpn(base_channels, f),
        bbox_head=dict(
            type='RetinaHead', num_classes=num_classes, in_channels=f,
            stacked_convs=1, feat_channels=f,
            anchor_generator=dict(type='AnchorGenerator', octave_base_scale=2,
                                  scales_per_octave=1, ratios=[0.5, 1.0, 2.0],
                                  strides=[4, 8, 16, 32, 64]),
            bbox_coder=dict(type='DeltaXYWHBBoxCoder',
                            target_means=[.0, .0, .0, .0],
                            target_stds=[1.0, 1.0, 1.0, 1.0]),
            loss_cls=dict(type='FocalLoss', use_sigmoid=True, gamma=2.0,
                          alpha=0.25, loss_weight=1.0),
            loss_bbox=dict(type='L1Loss', loss_weight=1.0)),
        train_cfg=dict(
            assigner=dict(type='MaxIoUAssigner', pos_iou_thr=0.5,
                          neg_iou_thr=0.4, min_pos_iou=0, ignore_iof_thr=-1),
            sampler=dict(type='PseudoSampler'), allowed_border=-1,
            pos_weight=-1, debug=False),
        test_cfg=dict(nms_pre=200, min_bbox_size=0, score_thr=0.05,
                      nms=dict(type='nms', iou_threshold=0.5),
                      max_per_img=100))
    model['neck']['start_level'] = 0
    return ConfigDict(model)


def run_dist_tool(script: str,
                  args: Sequence[str],
                  cwd: str,
                  timeout: int = 600) -> subprocess.CompletedProcess:
    """Runs a ``dist_*.sh`` launcher (torchrun) of CPU processes on a free
    port.

    Each process gets one thread (2 processes on 2 cores), and torchrun the
    interpreter of the calling process.

    Args:
        script (str): Path of the launcher script, e.g. a checkout's
            ``dist_train.sh``.
        args (Sequence[str]): The script's arguments (config, number of
            processes, tool flags).
        cwd (str): Working directory of the launch.
        timeout (int): Seconds before the launch is killed. Defaults to 600.

    Returns:
        subprocess.CompletedProcess: With ``stdout``/``stderr`` as text.
    """
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    env = dict(os.environ, PYTHON=sys.executable, PORT=str(port),
               OMP_NUM_THREADS='1')
    return subprocess.run(['bash', script] + [str(a) for a in args],
                          cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


#: Class names of the tiny runs.
TINY_CLASSES: Tuple[str, ...] = ('a', 'b', 'c')


def save_tiny_teacher(path: str, seed: int = 0) -> str:
    """Saves a randomly initialised :func:`tiny_yolov3` (3 classes) as a
    checkpoint with ``meta.dataset_meta.classes``, as a Runner would.

    Args:
        path (str): The checkpoint file.
        seed (int): Seed of the initialisation. Defaults to 0.

    Returns:
        str: ``path``.
    """
    import torch
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    register_all_modules()
    torch.manual_seed(seed)
    model = MODELS.build(tiny_yolov3(num_classes=len(TINY_CLASSES)))
    torch.save(
        dict(state_dict=model.state_dict(),
             meta=dict(dataset_meta=dict(classes=list(TINY_CLASSES)))), path)
    return path


def write_tiny_synthesis_config(path: str,
                                teacher_ckpt: str,
                                num_images: int = 6,
                                batch_size: int = 2,
                                iterations: Tuple[int, int] = (6, 4)) -> str:
    """A ``tools/synthesize.py`` config: DIODE on :func:`tiny_yolov3`, 2x2
    tiled layouts, 32 then 64 px.

    Args:
        path (str): The config file to write.
        teacher_ckpt (str): From :func:`save_tiny_teacher`.
        num_images (int): Images of the job. Defaults to 6.
        batch_size (int): Images per batch. Defaults to 2.
        iterations (tuple[int, int]): Of the two stages. Defaults to (6, 4).

    Returns:
        str: ``path``.
    """
    model = pprint.pformat(tiny_yolov3(num_classes=3).to_dict())
    text = f'''custom_imports = dict(imports=['mmdiode'],
                      allow_failed_imports=False)
default_scope = 'mmdet'
teacher = dict(config=dict(model={model}), checkpoint={str(teacher_ckpt)!r})
layout_sampler = dict(type='BoxLayoutSampler', img_size=64,
                      strategy='tiling', tiles_per_side=2, min_size=0.4,
                      max_size=0.9)
synthesizer = dict(
    type='DeepInversion',
    bn_prior=dict(weight=0.1),
    image_prior=dict(tv_l1=1.0),
    augment=dict(flip_prob=0.0),
    stages=[dict(size=32, iterations={iterations[0]}, lr=0.1, jitter=2),
            dict(size=64, iterations={iterations[1]}, lr=0.05, jitter=4)],
    fp_sampling=dict(start=2, end=8, interval=3, score_thr=0.0))
synthesis = dict(num_images={num_images}, batch_size={batch_size}, seed=0)
vis_backends = [dict(type='LocalVisBackend')]
'''
    with open(path, 'w', encoding='utf-8') as f:
        f.write(text)
    return path


def write_tiny_datafree_config(path: str,
                               root: str,
                               teacher_ckpt: str,
                               max_iters: int = 4,
                               interval: int = 2,
                               checkpoint_interval: int = 2,
                               initial_batches: int = 1,
                               batch_size: int = 2,
                               pool_size: int = 1000,
                               iterations: int = 2) -> str:
    """A ``tools/train.py`` config: a :func:`tiny_yolov3` student distilled
    from the tiny teacher on 32 px images that ``DeepInversionHook``
    synthesizes into ``<root>/pool``; iteration-based, no validation.

    Args:
        path (str): The config file to write.
        root (str): Folder of the pool (``<root>/pool``).
        teacher_ckpt (str): From :func:`save_tiny_teacher`.
        max_iters (int): Training iterations. Defaults to 4.
        interval (int): Iterations between synthesis rounds. Defaults to 2.
        checkpoint_interval (int): Iterations between checkpoints.
            Defaults to 2.
        initial_batches (int): Batches synthesized before training.
            Defaults to 1.
        batch_size (int): Images per synthesized batch. Defaults to 2.
        pool_size (int): Most images in the pool. Defaults to 1000.
        iterations (int): Synthesis iterations per batch. Defaults to 2.

    Returns:
        str: ``path``.
    """
    from mmengine.config import Config
    size = 32
    cfg = dict(
        custom_imports=dict(imports=['mmdiode'], allow_failed_imports=False),
        default_scope='mmdet',
        model=dict(type='KDDetector',
                   student=tiny_yolov3(num_classes=3).to_dict(),
                   teacher=dict(config=tiny_yolov3(num_classes=3).to_dict(),
                                checkpoint=str(teacher_ckpt)),
                   distill_losses=dict(out=dict(type='OutputMSELoss')),
                   det_loss_weight=1.0,
                   classes=TINY_CLASSES),
        train_dataloader=dict(
            batch_size=2,
            num_workers=0,
            persistent_workers=False,
            sampler=dict(type='DefaultSampler', shuffle=True),
            dataset=dict(type='BoxSamplerDataset',
                         pool_dir=osp.join(str(root), 'pool'),
                         layout_sampler=dict(type='BoxLayoutSampler',
                                             min_size=0.3, max_size=0.8),
                         num_samples=8,
                         img_size=size,
                         seed=1,
                         pipeline=[dict(type='PackDetInputs')])),
        train_cfg=dict(type='IterBasedTrainLoop', max_iters=max_iters,
                       val_interval=max_iters + 1),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=1e-3,
                                          momentum=0.9)),
        default_hooks=dict(
            timer=dict(type='IterTimerHook'),
            logger=dict(type='LoggerHook', interval=1),
            param_scheduler=dict(type='ParamSchedulerHook'),
            checkpoint=dict(type='CheckpointHook', by_epoch=False,
                            interval=checkpoint_interval)),
        custom_hooks=[
            dict(type='DeepInversionHook',
                 synthesizer=dict(
                     type='DeepInversion',
                     bn_prior=dict(weight=0.1),
                     image_prior=dict(tv_l1=1.0),
                     augment=dict(flip_prob=0.0, erase_prob=0.0),
                     stages=[dict(size=size, iterations=iterations, lr=0.1,
                                  jitter=2)],
                     fp_sampling=dict(enable=False)),
                 pool_size=pool_size,
                 interval=interval,
                 batch_size=batch_size,
                 initial_batches=initial_batches,
                 seed=0)
        ],
        env_cfg=dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo')),
        log_processor=dict(by_epoch=False),
        log_level='WARNING',
        randomness=dict(seed=0))
    Config(cfg).dump(path)
    return path
