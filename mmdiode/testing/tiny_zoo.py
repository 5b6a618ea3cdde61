"""Tiny detectors of mmdet's model zoo families, for tests.

Each family's model config is read from mmdet's own config file (installed
with mmdet under ``mmdet/.mim/configs``) and shrunk: a few channels, one
stacked conv or transformer layer, few proposals or queries, 3 classes, no
pretrained initialisation and no batch augments, so that the detectors run
on 64 px images in milliseconds on the CPU. Everything else (detector,
backbone, neck and head types, losses, assigners, box coders, preprocessor
normalisation) stays mmdet's, so the tests exercise each family's own
``loss()`` and ``predict()``.

A ``'teacher'`` is twice as wide as a ``'student'`` of the same family, as in
a distillation pair; both have the same head layout (levels, priors, box
coding), so output distillation can pair them.

Example::

    from mmdet.registry import MODELS
    from mmdiode.testing.tiny_zoo import tiny_detector
    teacher = MODELS.build(tiny_detector('rtmdet', role='teacher'))
"""
import copy
import functools
import os.path as osp
from typing import Any, Callable, Dict, Tuple

import torch
from mmengine.config import Config, ConfigDict
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from mmdiode.utils.samples import make_data_samples

__all__ = [
    'FAMILIES', 'MMDET_CONFIGS', 'calibrate_batchnorm', 'mmdet_model_config',
    'tiny_detector'
]

#: The mmdet config each family is derived from (relative to mmdet's
#: ``.mim/configs``).
MMDET_CONFIGS: Dict[str, str] = dict(
    retinanet='retinanet/retinanet_r18_fpn_1x_coco.py',
    fcos='fcos/fcos_r18_fpn_gn-head-center-normbbox-centeronreg-giou_'
    '8xb8-amp-lsj-200e_coco.py',
    atss='atss/atss_r18_fpn_8xb8-amp-lsj-200e_coco.py',
    yolox='yolox/yolox_tiny_8xb8-300e_coco.py',
    rtmdet='rtmdet/rtmdet_tiny_8xb32-300e_coco.py',
    yolov3='yolo/yolov3_mobilenetv2_8xb24-320-300e_coco.py',
    ssd='ssd/ssdlite_mobilenetv2-scratch_8xb24-600e_coco.py',
    faster_rcnn='faster_rcnn/faster-rcnn_r18_fpn_8xb8-amp-lsj-200e_coco.py',
    cascade_rcnn='cascade_rcnn/cascade-rcnn_r18_fpn_8xb8-amp-lsj-200e_'
    'coco.py',
    dino='dino/dino-4scale_r50_8xb2-12e_coco.py')

#: Every family :func:`tiny_detector` builds.
FAMILIES: Tuple[str, ...] = tuple(MMDET_CONFIGS)

#: Base width of each role: ResNet base channels, neck channels are 2x.
_WIDTHS = dict(student=8, teacher=16)


def mmdet_config_root() -> str:
    """The folder of mmdet's installed config files."""
    import mmdet
    root = osp.join(osp.dirname(mmdet.__file__), '.mim', 'configs')
    if not osp.isdir(root):
        raise FileNotFoundError(
            f'mmdet\'s config files are not installed ({root} is missing); '
            'install mmdet from its wheel (pip install mmdet), which ships '
            'them')
    return root


@functools.lru_cache(maxsize=None)
def _model_of(path: str) -> dict:
    return Config.fromfile(osp.join(mmdet_config_root(),
                                    path)).model.to_dict()


def mmdet_model_config(family: str) -> dict:
    """The ``model`` of mmdet's config of a family, as a plain dict copy."""
    if family not in MMDET_CONFIGS:
        raise KeyError(f'unknown family {family!r}; known: {FAMILIES}')
    return copy.deepcopy(_model_of(MMDET_CONFIGS[family]))


def _merge(base: Any, update: Any) -> Any:
    """``update`` merged into ``base``: dicts key by key, else replaced."""
    if isinstance(base, dict) and isinstance(update, dict):
        merged = dict(base)
        for key, value in update.items():
            merged[key] = _merge(base.get(key), value)
        return merged
    return copy.deepcopy(update)


def _resnet(w: int, out_indices=(0, 1, 2, 3)) -> dict:
    """A ResNet-18 with ``w`` base channels, randomly initialised."""
    return dict(depth=18, base_channels=w, init_cfg=None,
                out_indices=out_indices)


def _fpn(w: int, f: int) -> dict:
    return dict(in_channels=[w, 2 * w, 4 * w, 8 * w], out_channels=f)


#: Group norm of the heads of few channels (mmdet's have 32 groups).
_GN = dict(type='GN', num_groups=4, requires_grad=True)


def _retinanet(w: int, f: int, c: int) -> dict:
    return dict(
        backbone=_resnet(w), neck=_fpn(w, f),
        bbox_head=dict(num_classes=c, in_channels=f, feat_channels=f,
                       stacked_convs=1),
        test_cfg=dict(nms_pre=100))


def _gn_dense_head(w: int, f: int, c: int) -> dict:
    """FCOS and ATSS: :func:`_retinanet` with group norm in the head.

    Args:
        w (int): Base channels of the ResNet-18.
        f (int): Channels of the FPN levels and of the head's convs.
        c (int): Classes of the head.

    Returns:
        dict: The update of mmdet's model config.
    """
    model = _retinanet(w, f, c)
    model['bbox_head']['norm_cfg'] = _GN
    return model


def _csp_widen(w: int) -> float:
    """CSPDarknet/CSPNeXt widen factor whose stem has ``w / 2`` channels
    (their P5 stages have 64, 128, 256, 512, 1024 channels at 1.0)."""
    return w / 128


def _yolox(w: int, f: int, c: int) -> dict:
    widen = _csp_widen(w)
    return dict(
        backbone=dict(widen_factor=widen, init_cfg=None),
        neck=dict(in_channels=[int(256 * widen),
                               int(512 * widen),
                               int(1024 * widen)], out_channels=f),
        bbox_head=dict(num_classes=c, in_channels=f, feat_channels=f,
                       stacked_convs=1))


def _rtmdet(w: int, f: int, c: int) -> dict:
    widen = _csp_widen(w)
    bn = dict(type='BN')  # SyncBN needs a process group to train
    return dict(
        backbone=dict(widen_factor=widen, init_cfg=None, norm_cfg=bn),
        neck=dict(in_channels=[int(256 * widen),
                               int(512 * widen),
                               int(1024 * widen)], out_channels=f,
                  norm_cfg=bn),
        bbox_head=dict(num_classes=c, in_channels=f, feat_channels=f,
                       stacked_convs=1, norm_cfg=bn),
        test_cfg=dict(nms_pre=100, max_per_img=100))


def _yolov3(w: int, f: int, c: int) -> dict:
    widen = w / 32  # MobileNetV2 stages of 32, 96, 320 channels at 1.0
    return dict(
        backbone=dict(widen_factor=widen, init_cfg=None),
        neck=dict(in_channels=[int(320 * widen),
                               int(96 * widen),
                               int(32 * widen)], out_channels=[f, f, f]),
        bbox_head=dict(num_classes=c, in_channels=[f, f, f],
                       out_channels=[f, f, f]),
        test_cfg=dict(nms_pre=100))


def _ssd(w: int, f: int, c: int) -> dict:
    widen = w / 32
    # MobileNetV2's last conv keeps 1280 channels for widen_factor <= 1.
    channels = (int(96 * widen), 1280, 2 * f, f, f, f)
    # SSDLite's 320 px anchors scaled to 64 px images (levels of strides
    # 16, 32 and four 1x1 maps).
    scale = 64 / 320
    return dict(
        backbone=dict(widen_factor=widen, init_cfg=None),
        neck=dict(in_channels=channels[:2], out_channels=channels,
                  init_cfg=None),
        bbox_head=dict(
            num_classes=c, in_channels=channels, init_cfg=None,
            anchor_generator=dict(
                strides=[16, 32, 64, 64, 64, 64],
                min_sizes=[round(s * scale) for s in (48, 100, 150, 202,
                                                      253, 304)],
                max_sizes=[round(s * scale) for s in (100, 150, 202, 253,
                                                      304, 320)])),
        test_cfg=dict(nms_pre=100, max_per_img=100))


def _rpn_and_proposals(f: int) -> dict:
    return dict(
        rpn_head=dict(in_channels=f, feat_channels=f),
        train_cfg=dict(
            rpn=dict(sampler=dict(num=64)),
            rpn_proposal=dict(nms_pre=200, max_per_img=100)),
        test_cfg=dict(rpn=dict(nms_pre=200, max_per_img=100)))


def _faster_rcnn(w: int, f: int, c: int) -> dict:
    return _merge(
        _rpn_and_proposals(f),
        dict(
            backbone=_resnet(w), neck=_fpn(w, f),
            roi_head=dict(
                bbox_roi_extractor=dict(out_channels=f),
                bbox_head=dict(num_classes=c, in_channels=f,
                               fc_out_channels=2 * f)),
            train_cfg=dict(rcnn=dict(sampler=dict(num=64)))))


def _cascade_rcnn(w: int, f: int, c: int) -> dict:
    model = _merge(
        _rpn_and_proposals(f),
        dict(backbone=_resnet(w), neck=_fpn(w, f),
             roi_head=dict(bbox_roi_extractor=dict(out_channels=f))))
    model['_stage'] = dict(num_classes=c, in_channels=f,
                           fc_out_channels=2 * f)
    return model


def _dino(w: int, f: int, c: int) -> dict:
    # DINO's decoder encodes reference points with 128 features per
    # coordinate (fixed in mmdet), which needs 256 embedding dimensions.
    d = 256
    attn = dict(embed_dims=d)
    ffn = dict(embed_dims=d, feedforward_channels=d)
    return dict(
        num_queries=20,
        backbone=_resnet(w, out_indices=(1, 2, 3)),
        neck=dict(in_channels=[2 * w, 4 * w, 8 * w], out_channels=d),
        encoder=dict(num_layers=1, layer_cfg=dict(self_attn_cfg=attn,
                                                  ffn_cfg=ffn)),
        decoder=dict(num_layers=2, layer_cfg=dict(
            self_attn_cfg=attn, cross_attn_cfg=attn, ffn_cfg=ffn)),
        bbox_head=dict(num_classes=c),
        dn_cfg=dict(group_cfg=dict(num_dn_queries=10)),
        test_cfg=dict(max_per_img=20))


_SHRINK: Dict[str, Callable[[int, int, int], dict]] = dict(
    retinanet=_retinanet, fcos=_gn_dense_head, atss=_gn_dense_head,
    yolox=_yolox, rtmdet=_rtmdet, yolov3=_yolov3, ssd=_ssd,
    faster_rcnn=_faster_rcnn, cascade_rcnn=_cascade_rcnn, dino=_dino)


def tiny_detector(family: str,
                  role: str = 'student',
                  num_classes: int = 3) -> ConfigDict:
    """A tiny model config of one family, derived from mmdet's config.

    Args:
        family (str): One of :data:`FAMILIES`.
        role (str): ``'student'`` (8 base channels) or ``'teacher'`` (16).
            Defaults to 'student'.
        num_classes (int): Classes of the head(s). Defaults to 3.

    Returns:
        ConfigDict: The model config (mmdet's heads read ``train_cfg`` and
        ``test_cfg`` by attribute), for ``mmdet.registry.MODELS.build``.
    """
    if role not in _WIDTHS:
        raise ValueError(f'role must be one of {sorted(_WIDTHS)}, got '
                         f'{role!r}')
    w = _WIDTHS[role]
    model = mmdet_model_config(family)
    update = _SHRINK[family](w, 2 * w, num_classes)
    if family == 'rtmdet' and role == 'teacher':
        # RTMDet-s and larger exponentiate their box distances (the tiny
        # model clamps them), as the model-zoo RTMDet-l teacher of
        # configs/kd/output-kl_rtmdet-l_rtmdet-tiny_300e_coco.py does.
        update['bbox_head']['exp_on_reg'] = True
    stage = update.pop('_stage', None)
    model = _merge(model, update)
    if stage is not None:  # Cascade R-CNN: every stage's box head
        model['roi_head']['bbox_head'] = [
            _merge(head, stage) for head in model['roi_head']['bbox_head']
        ]
    # Batch augments pad or resize to COCO sizes; tests feed 64 px images.
    model['data_preprocessor']['batch_augments'] = None
    return ConfigDict(model)


def calibrate_batchnorm(model: nn.Module,
                        size: int = 64,
                        batches: int = 3,
                        seed: int = 0) -> nn.Module:
    """Measures a detector's BatchNorm running statistics on random images.

    With PyTorch's initial weights and unit running variances, an untrained
    detector's eval-mode features shrink by orders of magnitude per stage,
    so its outputs barely depend on its input, which no trained detector
    does. Averaging the statistics over a few random batches (in training
    mode, cumulative average, through the whole network: heads have
    BatchNorm layers too) gives features of unit scale, as training does.

    Args:
        model (nn.Module): A built mmdet detector (left in eval mode).
        size (int): Side of the random (N, 3, size, size) batches in model
            space. Defaults to 64.
        batches (int): Number of batches of 4 images. Defaults to 3.
        seed (int): Seed of the images. Defaults to 0.

    Returns:
        nn.Module: ``model``.
    """
    norms = [
        m for m in model.modules()
        if isinstance(m, _BatchNorm) and m.running_mean is not None
    ]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches
    model.eval()
    for m in norms:
        m.train()
    g = torch.Generator().manual_seed(seed)
    samples = make_data_samples([torch.zeros(0, 4)] * 4,
                                [torch.zeros(0, dtype=torch.int64)] * 4, size)
    with torch.no_grad():
        for _ in range(batches):
            # The whole network (heads have BatchNorm layers too).
            model._forward(torch.randn(4, 3, size, size, generator=g),
                           samples)
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    return model.eval()
