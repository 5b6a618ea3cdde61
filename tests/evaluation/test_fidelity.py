import json
import os.path as osp

import pytest
import torch
from mmdet.registry import DATASETS, MODELS
from mmdet.utils import register_all_modules
from mmengine.config import ConfigDict
from mmengine.dataset import pseudo_collate
from mmengine.optim import OptimWrapper

from mmdiode.datasets import SyntheticCocoWriter
from mmdiode.evaluation import fidelity_report
from mmdiode.evaluation.fidelity import bn_prior_drop, coco_test_loader
from mmdiode.models.task_modules import BoxLayoutSampler
from mmdiode.testing import tiny_yolov3

CLASSES = ('a', 'b', 'c')
SIZE = 64
NUM = 6


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    """Six 64 px images with one bright target box each on a dark ground."""
    root = str(tmp_path_factory.mktemp('synth'))
    sampler = BoxLayoutSampler(CLASSES, img_size=SIZE, seed=1)
    writer = SyntheticCocoWriter(root, CLASSES, num_images=NUM, batch_size=4)
    for batch in writer.pending_batches():
        indices = list(writer.batch_indices(batch))
        layouts = [sampler.sample(i) for i in indices]
        images = torch.zeros(len(indices), 3, SIZE, SIZE)
        for img, layout in zip(images, layouts):
            x0, y0, x1, y1 = layout.bboxes[0].round().astype(int)
            img[int(layout.labels[0]), y0:y1, x0:x1] = 1.0
        writer.write_batch(batch, images, layouts)
    writer.merge()
    return root


def _tiny_teacher():
    # A ConfigDict, as a Config file gives: YOLOv3's predict reads test_cfg
    # by attribute.
    return MODELS.build(ConfigDict(tiny_yolov3(num_classes=len(CLASSES))))


@pytest.fixture(scope='module')
def teacher():
    register_all_modules()
    torch.manual_seed(0)
    model = _tiny_teacher()
    model.dataset_meta = dict(classes=CLASSES)
    return model


def test_report_numbers_and_plots(data_root, teacher, tmp_path):
    teacher.train()
    report = fidelity_report(
        teacher,
        data_root,
        'annotations.json',
        out_dir=str(tmp_path),
        batch_size=4)
    assert teacher.training  # the caller's mode is restored
    for key in ('bbox_mAP', 'bbox_mAP_50'):
        assert 0.0 <= report[key] <= 1.0
    assert report['bbox_mAP'] <= report['bbox_mAP_50']
    assert report['num_images'] == NUM and report['num_boxes'] == NUM
    assert sum(report['class_counts'].values()) == NUM
    assert list(report['class_counts']) == list(CLASSES)
    assert 0.2 * SIZE - 1e-3 <= report['box_size']['width']['min']
    assert report['box_size']['height']['max'] <= 0.8 * SIZE + 1e-3
    with open(osp.join(tmp_path, 'fidelity.json')) as f:
        assert json.load(f) == report
    for name in ('class_hist.png', 'box_size_hist.png'):
        with open(osp.join(tmp_path, name), 'rb') as f:
            assert f.read(8) == b'\x89PNG\r\n\x1a\n'


def test_report_goes_beside_the_data_set(data_root, teacher):
    fidelity_report(teacher, data_root)
    for name in ('fidelity.json', 'class_hist.png', 'box_size_hist.png'):
        assert osp.exists(osp.join(data_root, name))


def test_trained_teacher_scores_higher(data_root, tmp_path):
    """The metric follows the teacher: fitting it to the targets raises mAP.

    The teacher is trained on the synthesized images through its own
    ``train_step`` (the Runner's path), so the mAP must move from near 0 to
    clearly above it if images, targets and predictions are aligned.
    """
    register_all_modules()
    torch.manual_seed(0)
    model = _tiny_teacher()
    before = fidelity_report(model, data_root, out_dir=str(tmp_path))
    dataset = DATASETS.build(
        dict(
            type='CocoDataset',
            data_root=data_root,
            ann_file='annotations.json',
            data_prefix=dict(img=''),
            metainfo=dict(classes=CLASSES),
            pipeline=[
                dict(type='LoadImageFromFile'),
                dict(type='LoadAnnotations', with_bbox=True),
                dict(type='Resize', scale_factor=1.0, keep_ratio=True),
                dict(type='PackDetInputs')
            ]))
    data = pseudo_collate([dataset[i] for i in range(NUM)])
    optim = OptimWrapper(torch.optim.Adam(model.parameters(), lr=3e-3))
    model.train()
    for _ in range(100):
        model.train_step(data, optim)
    after = fidelity_report(model, data_root, out_dir=str(tmp_path))
    # Measured: 0.0 / 0.0 before, 0.71 / 1.0 after 100 steps.
    assert before['bbox_mAP_50'] < 0.1
    assert after['bbox_mAP_50'] > 0.8
    assert after['bbox_mAP'] > before['bbox_mAP'] + 0.3


def test_no_detection_is_map_zero(data_root, tmp_path):
    model = _tiny_teacher()
    # Every score is below the threshold: CocoMetric sees no detection.
    model.bbox_head.test_cfg['score_thr'] = 2.0
    report = fidelity_report(model, data_root, out_dir=str(tmp_path))
    assert report['bbox_mAP'] == 0.0 and report['bbox_mAP_50'] == 0.0


def test_bn_prior_drop_is_large_when_running_stats_are_the_images(data_root):
    """A teacher whose BN running statistics are those of the written images
    scores them far below noise (only the biased/unbiased variance gap of
    the small deep maps remains); with its initial statistics it does not.
    """
    register_all_modules()
    torch.manual_seed(0)
    model = _tiny_teacher()
    cfg = dict(p=2, first_bn_multiplier=2.0, layer_pattern='.*', weight=1.0)
    untouched = bn_prior_drop(model, data_root, 'annotations.json', cfg,
                              batch_size=NUM)
    loader = coco_test_loader(data_root, 'annotations.json', NUM)
    data = model.data_preprocessor(next(iter(loader)), False)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.momentum = 1.0  # running stats := this batch's
    model.train()
    with torch.no_grad():
        model(data['inputs'], mode='tensor')
    fitted = bn_prior_drop(model, data_root, 'annotations.json', cfg,
                           batch_size=NUM)
    assert model.training  # the caller's mode is restored
    assert fitted['drop'] == pytest.approx(fitted['initial'] /
                                           fitted['final'])
    assert fitted['drop'] > 10
    assert fitted['drop'] > 5 * untouched['drop']


def test_bn_prior_drop_of_a_two_stage_teacher(data_root):
    """A Faster R-CNN teacher (whose RPN reads the samples' shapes even in
    'tensor' mode, e.g. for MOI's images) is measured too."""
    from mmdiode.testing import tiny_faster_rcnn
    register_all_modules()
    torch.manual_seed(0)
    model = MODELS.build(ConfigDict(tiny_faster_rcnn(num_classes=3)))
    cfg = dict(p=2, first_bn_multiplier=2.0, layer_pattern='.*', weight=1.0)
    report = bn_prior_drop(model, data_root, 'annotations.json', cfg,
                           batch_size=NUM)
    assert report['initial'] > 0 and report['final'] > 0
    assert report['drop'] == pytest.approx(report['initial'] /
                                           report['final'])
