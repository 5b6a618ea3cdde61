"""Teacher agreement: the teacher's detections as a data set's annotations,
scored through the Runner's own validation loop with CocoMetric."""
import json
import os.path as osp

import pytest
import torch
from mmdet.registry import MODELS
from mmdet.utils import register_all_modules
from mmengine.config import Config, ConfigDict

from mmdiode.datasets import SyntheticCocoWriter
from mmdiode.evaluation import TEACHER_ANN_FILE, write_teacher_annotations
from mmdiode.evaluation.fidelity import coco_test_loader
from mmdiode.models.task_modules import BoxLayoutSampler
from mmdiode.testing import tiny_yolov3

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CLASSES = ('a', 'b', 'c')
SIZE = 64


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    """Eight 64 px images of seeded noise with bright boxes."""
    root = str(tmp_path_factory.mktemp('agreement'))
    sampler = BoxLayoutSampler(CLASSES, img_size=SIZE, seed=3)
    writer = SyntheticCocoWriter(root, CLASSES, num_images=8, batch_size=4)
    generator = torch.Generator().manual_seed(0)
    for batch in writer.pending_batches():
        indices = list(writer.batch_indices(batch))
        layouts = [sampler.sample(i) for i in indices]
        images = torch.rand(len(indices), 3, SIZE, SIZE, generator=generator)
        writer.write_batch(batch, images, layouts)
    writer.merge()
    return root


@pytest.fixture(scope='module')
def teacher():
    register_all_modules()
    torch.manual_seed(0)
    model = MODELS.build(ConfigDict(tiny_yolov3(num_classes=len(CLASSES))))
    model.dataset_meta = dict(classes=CLASSES)
    return model.eval()


def teacher_detections(teacher, data_root):
    """img_id -> (boxes xyxy, labels, scores) of the teacher's predict()."""
    out = {}
    with torch.no_grad():
        for data in coco_test_loader(data_root, 'annotations.json', 4,
                                     CLASSES):
            for sample in teacher.test_step(data):
                pred = sample.pred_instances
                out[sample.img_id] = (pred.bboxes, pred.labels, pred.scores)
    return out


def score_quantile(detections, q):
    scores = torch.cat([s for _, _, s in detections.values()])
    return float(torch.quantile(scores, q))


def test_annotations_are_the_teachers_detections_above_the_threshold(
        data_root, teacher):
    detections = teacher_detections(teacher, data_root)
    thr = score_quantile(detections, 0.8)
    path = write_teacher_annotations(teacher, data_root, score_thr=thr)
    assert path == osp.join(data_root, TEACHER_ANN_FILE)
    with open(path) as f:
        coco = json.load(f)
    with open(osp.join(data_root, 'annotations.json')) as f:
        source = json.load(f)
    assert coco['images'] == source['images']
    assert coco['categories'] == source['categories']
    assert coco['info']['annotated_by'] == 'teacher'
    expected = []
    for img_id, (boxes, labels, scores) in sorted(detections.items()):
        for box, label, score in zip(boxes.tolist(), labels.tolist(),
                                     scores.tolist()):
            if score >= thr:
                x1, y1, x2, y2 = box
                expected.append((img_id, label + 1,
                                 [x1, y1, x2 - x1, y2 - y1], score))
    got = [(a['image_id'], a['category_id'], a['bbox'], a['score'])
           for a in coco['annotations']]
    assert len(got) == len(expected) > 0
    for (gi, gc, gb, gs), (ei, ec, eb, es) in zip(got, expected):
        assert (gi, gc) == (ei, ec)
        assert gb == pytest.approx(eb, abs=1e-4)
        assert gs == pytest.approx(es, abs=1e-6)
    assert [a['id'] for a in coco['annotations']] == list(
        range(1, len(got) + 1))
    # Deterministic: the same file, byte for byte, when written again.
    first = open(path, 'rb').read()
    write_teacher_annotations(teacher, data_root, score_thr=thr)
    assert open(path, 'rb').read() == first


def test_bad_threshold_is_refused(data_root, teacher):
    with pytest.raises(ValueError, match='score_thr'):
        write_teacher_annotations(teacher, data_root, score_thr=1.5)


def test_teacher_agrees_with_itself_in_the_runners_val_loop(
        data_root, teacher, tmp_path):
    """The base recipe's val settings, through Runner.val(): the teacher
    scored against its own detections has agreement mAP@0.5 of 1."""
    from mmengine.runner import Runner
    detections = teacher_detections(teacher, data_root)
    write_teacher_annotations(teacher, data_root,
                              score_thr=score_quantile(detections, 0.8))
    ckpt = tmp_path / 'teacher.pth'
    torch.save(dict(state_dict=teacher.state_dict()), ckpt)
    recipe = Config.fromfile(
        osp.join(ROOT, 'configs/_base_/datasets/digits_agreement.py'))
    val_dataloader = recipe.agreement_val_dataloader
    val_dataloader.dataset.data_root = data_root
    val_dataloader.dataset.metainfo = dict(classes=CLASSES)
    val_evaluator = recipe.agreement_val_evaluator
    val_evaluator.ann_file = osp.join(data_root, TEACHER_ANN_FILE)
    for setting in (val_dataloader, val_evaluator):
        setting.pop('_delete_')  # a merge key: the file is loaded alone
    cfg = Config(dict(
        model=tiny_yolov3(num_classes=len(CLASSES)),
        work_dir=str(tmp_path / 'work'),
        default_scope='mmdet',
        load_from=str(ckpt),
        val_dataloader=val_dataloader.to_dict(),
        val_evaluator=val_evaluator.to_dict(),
        val_cfg=dict(type='ValLoop'),
        env_cfg=dict(dist_cfg=dict(backend='gloo')),
        default_hooks=dict(logger=dict(type='LoggerHook'))))
    metrics = Runner.from_cfg(cfg).val()
    assert metrics['agreement/bbox_mAP_50'] == pytest.approx(1.0)
    assert metrics['agreement/bbox_mAP'] == pytest.approx(1.0)
