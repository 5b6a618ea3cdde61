"""Helpers for tests and timing.

* Tiny mmdet detectors, real mmdet modules with few channels: each function
  returns a model ``ConfigDict`` (mmdet heads read ``train_cfg``/``test_cfg``
  by attribute) for ``mmdet.registry.MODELS.build`` that works on 3-channel
  images of a few dozen pixels (sides divisible by 32).
* :func:`run_dist_tool`: a ``tools/dist_*.sh`` launch (torchrun) of CPU
  processes, as the multi-process tests run them.
"""
import copy
import os
import os.path as osp
import socket
import subprocess
import sys
from typing import Optional, Sequence

from mmengine.config import ConfigDict

from mmdiode.utils.samples import make_data_samples  # noqa: F401 (re-export)

_PREPROCESSOR = dict(
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
        data_preprocessor=copy.deepcopy(preprocessor or _PREPROCESSOR),
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
        data_preprocessor=copy.deepcopy(preprocessor or _PREPROCESSOR),
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
        data_preprocessor=copy.deepcopy(preprocessor or _PREPROCESSOR),
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
                  cwd: Optional[str] = None,
                  timeout: int = 600) -> subprocess.CompletedProcess:
    """Runs ``tools/<script>`` (``dist_train.sh`` etc.) on a free port.

    Each process gets one thread (2 processes on 2 cores), and torchrun the
    interpreter of the calling process.

    Args:
        script (str): File name in ``tools/``, e.g. ``'dist_train.sh'``.
        args (Sequence[str]): The script's arguments (config, number of
            processes, tool flags).
        cwd (str, optional): Working directory. Defaults to the repository.
        timeout (int): Seconds before the launch is killed. Defaults to 600.

    Returns:
        subprocess.CompletedProcess: With ``stdout``/``stderr`` as text.
    """
    root = osp.dirname(osp.dirname(osp.abspath(__file__)))
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    env = dict(os.environ, PYTHON=sys.executable, PORT=str(port),
               OMP_NUM_THREADS='1')
    return subprocess.run(['bash', osp.join(root, 'tools', script)] +
                          [str(a) for a in args],
                          cwd=cwd or root, env=env, capture_output=True,
                          text=True, timeout=timeout)
