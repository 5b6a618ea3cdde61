"""Fidelity of a synthesized data set: does the teacher see the targets?

The teacher detects objects on the synthesized images and mmdet's
``CocoMetric`` scores its detections against the targets the images were
synthesized for (the test loop's own code path: ``CocoDataset``, the
teacher's ``test_step`` with its data preprocessor, an mmengine
``Evaluator``). Histograms of the targets' classes and box sizes show
whether the layouts cover the classes and scales evenly.
"""
import json
import os
import os.path as osp
from collections import Counter
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from mmdet.registry import DATASETS, METRICS
from mmengine.dataset import pseudo_collate
from mmengine.evaluator import Evaluator
from torch import nn
from torch.utils.data import DataLoader

from ..models.task_modules.inversion.bn_prior import BNStatisticsPrior
from ..models.task_modules.inversion.input_space import PixelSpace
from ..utils.fileio import dump_json_atomic

# mmdet's test pipeline, without the resize: images are scored at the
# resolution they were synthesized at. ``Resize(scale_factor=1.0)`` changes
# no pixel but records the scale factor the detectors' rescaling needs.
TEST_PIPELINE = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale_factor=1.0, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor'))
]

# The CocoMetric results the report keeps (under these names).
METRIC_KEYS = ('bbox_mAP', 'bbox_mAP_50')


def fidelity_report(teacher: nn.Module,
                    data_root: str,
                    ann_file: str = 'annotations.json',
                    out_dir: Optional[str] = None,
                    batch_size: int = 8,
                    device: str = 'cpu',
                    bn_prior: Optional[dict] = None) -> Dict:
    """Scores the teacher on synthesized images against their targets.

    Writes ``fidelity.json``, ``class_hist.png`` and ``box_size_hist.png``
    into ``out_dir``. The teacher is moved to ``device`` and left there; its
    train/eval mode is restored.

    Args:
        teacher (nn.Module): An mmdet detector with its data preprocessor.
        data_root (str): Folder of the data set (image ``file_name`` values
            are relative to it).
        ann_file (str): COCO json, relative to ``data_root`` or absolute.
            Its categories (in id order) must be the teacher's classes.
            Defaults to ``'annotations.json'``.
        out_dir (str, optional): Where the report goes. Defaults to
            ``data_root`` (beside the data set).
        batch_size (int): Images per forward pass. Defaults to 8.
        device (str): Device of the forward passes. Defaults to ``'cpu'``.
        bn_prior (dict, optional): The synthesizer's ``bn_prior`` config
            (``p``, ``first_bn_multiplier``, ``layer_pattern``; ``weight``
            is ignored). When given, the report also has ``bn_prior``: see
            :func:`bn_prior_drop`. Defaults to None.

    Returns:
        dict: ``bbox_mAP`` and ``bbox_mAP_50`` (COCO mAP@[.5:.95] and
        mAP@0.5, in [0, 1]; 0 when the teacher detects nothing),
        ``bn_prior`` (with ``bn_prior`` given),
        ``num_images``, ``num_boxes``, ``class_counts`` (name -> boxes) and
        ``box_size`` (min/mean/max of box widths and heights in pixels).
    """
    ann_path = osp.join(data_root, ann_file)
    out_dir = data_root if out_dir is None else out_dir
    with open(ann_path, encoding='utf-8') as f:
        coco = json.load(f)
    classes = category_names(coco)
    metrics = teacher_map(teacher, data_root, ann_file, classes, batch_size,
                          device)
    widths, heights = box_sides(coco)
    counts = class_counts(coco)
    report = dict(
        metrics,
        num_images=len(coco['images']),
        num_boxes=len(coco['annotations']),
        class_counts=counts,
        box_size=dict(width=_summary(widths), height=_summary(heights)))
    if bn_prior is not None:
        report['bn_prior'] = bn_prior_drop(teacher, data_root, ann_file,
                                           bn_prior, batch_size, device)
    os.makedirs(out_dir, exist_ok=True)
    dump_json_atomic(report, osp.join(out_dir, 'fidelity.json'))
    plot_class_histogram(counts, osp.join(out_dir, 'class_hist.png'))
    plot_box_size_histogram(widths, heights,
                            osp.join(out_dir, 'box_size_hist.png'))
    return report


def category_names(coco: dict) -> List[str]:
    """Category names of a COCO dict, in category id order."""
    if not coco.get('categories'):
        raise ValueError('the annotation file has no categories')
    return [
        c['name'] for c in sorted(coco['categories'], key=lambda c: c['id'])
    ]


def coco_test_loader(data_root: str,
                     ann_file: str,
                     batch_size: int,
                     classes: Optional[Sequence[str]] = None) -> DataLoader:
    """A loader of a COCO data set's images as a teacher's test step takes
    them (``TEST_PIPELINE``: no resizing, no augmentation), in order."""
    metainfo = None if classes is None else dict(classes=tuple(classes))
    dataset = DATASETS.build(
        dict(
            type='CocoDataset',
            data_root=data_root,
            ann_file=ann_file,
            data_prefix=dict(img=''),
            metainfo=metainfo,
            test_mode=True,
            pipeline=TEST_PIPELINE))
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=0,
        collate_fn=pseudo_collate)


def bn_prior_drop(teacher: nn.Module,
                  data_root: str,
                  ann_file: str,
                  bn_prior: dict,
                  batch_size: int = 8,
                  device: str = 'cpu',
                  seed: int = 0) -> Dict[str, float]:
    """The BN-statistics prior on the written images against initial noise.

    Both sides are scored alike: the teacher's forward (``mode='tensor'``,
    no augmentation) on batches of ``batch_size`` images at the data set's
    size, the prior averaged over the batches. The written images are the
    PNGs as a student will read them (quantised to uint8); the initial
    images are what :class:`~mmdiode.models.task_modules.DeepInversion`
    starts from with ``init='noise'``: standard normal noise in the
    teacher's input space, clamped to valid pixels, one noise batch per
    image batch.

    Args:
        teacher (nn.Module): An mmdet detector with BatchNorm layers.
        data_root (str): Folder of the data set.
        ann_file (str): COCO json, relative to ``data_root`` or absolute.
        bn_prior (dict): ``p``, ``first_bn_multiplier``, ``layer_pattern``
            (defaults as
            :class:`~mmdiode.models.task_modules.BNStatisticsPrior`); other
            keys (``weight``) are ignored.
        batch_size (int): Images per batch. Defaults to 8.
        device (str): Device of the forward passes. Defaults to ``'cpu'``.
        seed (int): Seed of the noise. Defaults to 0.

    Returns:
        dict: ``initial`` and ``final`` (mean prior per batch) and ``drop``
        (``initial / final``).
    """
    prior_cfg = {
        k: v
        for k, v in bn_prior.items()
        if k in ('p', 'first_bn_multiplier', 'layer_pattern')
    }
    loader = coco_test_loader(data_root, ann_file, batch_size)
    generator = torch.Generator().manual_seed(seed)
    was_training = teacher.training
    teacher.to(device).eval()
    space = PixelSpace.from_preprocessor(teacher.data_preprocessor)
    initial, final = [], []
    try:
        with torch.no_grad(), BNStatisticsPrior(teacher, **prior_cfg) as bn:
            for data in loader:
                data = teacher.data_preprocessor(data, False)
                inputs = data['inputs']
                noise = space.clamp_(
                    torch.randn(inputs.shape, generator=generator).to(inputs))
                for images, scores in ((inputs, final), (noise, initial)):
                    bn.reset()
                    # The samples' shapes: a two-stage teacher's RPN needs
                    # them even in 'tensor' mode.
                    teacher(images, data['data_samples'], mode='tensor')
                    scores.append(float(bn.loss()))
    finally:
        teacher.train(was_training)
    initial_mean = float(np.mean(initial))
    final_mean = float(np.mean(final))
    return dict(
        initial=initial_mean,
        final=final_mean,
        drop=initial_mean / max(final_mean, 1e-12))


def teacher_map(teacher: nn.Module, data_root: str, ann_file: str,
                classes: Sequence[str], batch_size: int,
                device: str) -> Dict[str, float]:
    """The teacher's COCO bbox mAP and mAP@0.5 on a COCO data set.

    Args:
        teacher (nn.Module): An mmdet detector.
        data_root (str): Folder the image file names are relative to.
        ann_file (str): COCO json, relative to ``data_root`` or absolute.
        classes (Sequence[str]): Class names in the teacher's label order.
        batch_size (int): Images per forward pass.
        device (str): Device of the forward passes.

    Returns:
        dict: ``bbox_mAP`` and ``bbox_mAP_50``.
    """
    teacher_classes = getattr(teacher, 'dataset_meta', None) or {}
    teacher_classes = teacher_classes.get('classes')
    if teacher_classes is not None and tuple(teacher_classes) != tuple(
            classes):
        raise ValueError(f'the data set\'s classes {tuple(classes)} are not '
                         f'the teacher\'s {tuple(teacher_classes)}')
    loader = coco_test_loader(data_root, ann_file, batch_size, classes)
    dataset = loader.dataset
    evaluator = Evaluator(
        METRICS.build(
            dict(
                type='CocoMetric',
                ann_file=osp.join(data_root, ann_file),
                metric='bbox')))
    evaluator.dataset_meta = dataset.metainfo
    was_training = teacher.training
    teacher.to(device).eval()
    try:
        with torch.no_grad():
            for data in loader:
                evaluator.process(teacher.test_step(data), data)
    finally:
        teacher.train(was_training)
    # This process scored every image, so the metric is computed here:
    # Evaluator.evaluate would gather results from all ranks of a process
    # group, and in a sharded synthesis rank 0 reports alone.
    metric, = evaluator.metrics
    results = metric.compute_metrics(metric.results)
    metric.results.clear()
    # CocoMetric returns no keys when the teacher detected nothing at all:
    # that is an mAP of 0.
    return {key: float(results.get(key, 0.0)) for key in METRIC_KEYS}


def class_counts(coco: dict) -> Dict[str, int]:
    """Number of boxes per category name of a COCO dict, in id order."""
    per_id = Counter(a['category_id'] for a in coco['annotations'])
    return {
        c['name']: per_id[c['id']]
        for c in sorted(coco['categories'], key=lambda c: c['id'])
    }


def box_sides(coco: dict) -> Tuple[np.ndarray, np.ndarray]:
    """Widths and heights of a COCO dict's boxes, each shape (K,)."""
    boxes = np.array([a['bbox'] for a in coco['annotations']],
                     dtype=np.float64).reshape(-1, 4)
    return boxes[:, 2], boxes[:, 3]


def _summary(values: np.ndarray) -> Dict[str, float]:
    if not len(values):
        return dict(min=0.0, mean=0.0, max=0.0)
    return dict(
        min=float(values.min()),
        mean=float(values.mean()),
        max=float(values.max()))


def plot_class_histogram(counts: Dict[str, int], path: str) -> None:
    """Bar chart of the number of target boxes per class, saved as PNG."""
    fig = Figure(figsize=(max(4.0, 0.35 * len(counts) + 1.5), 3.0))
    ax = fig.add_subplot()
    ax.bar(range(len(counts)), list(counts.values()))
    ax.set_xticks(range(len(counts)), list(counts), rotation=90)
    ax.set_ylabel('target boxes')
    ax.set_title('classes of the targets')
    _save(fig, path)


def plot_box_size_histogram(widths: np.ndarray,
                            heights: np.ndarray,
                            path: str,
                            bins: int = 20) -> None:
    """Histograms of the target boxes' widths and heights, saved as PNG."""
    fig = Figure(figsize=(5.0, 3.0))
    ax = fig.add_subplot()
    ax.hist([widths, heights], bins=bins, label=['width', 'height'])
    ax.set_xlabel('pixels')
    ax.set_ylabel('target boxes')
    ax.set_title('box sizes of the targets')
    ax.legend()
    _save(fig, path)


def _save(fig: Figure, path: str) -> None:
    # The Agg canvas renders without pyplot, so no global backend changes.
    FigureCanvasAgg(fig)
    fig.tight_layout()
    fig.savefig(path, format='png', dpi=100)
