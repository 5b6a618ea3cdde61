"""The teacher/student matrix over mmdet's detector families.

Every family of :mod:`mmdiode.testing.tiny_zoo` (tiny models derived from
mmdet's own configs, random weights, BatchNorm statistics measured on random
images) is a teacher and a student: (a) DeepInversion with the BN prior lowers
its task loss, (b) false-positive sampling works on its ``predict()``, (c) a KD
step with the output loss that fits it and the teacher's pseudo-labels runs
through mmengine's Runner, and (d) ``tools/extract_student.py`` gives a
checkpoint that the plain student config evaluates with CocoMetric. A Faster
R-CNN teacher trains an RTMDet student through pseudo-labels and feature KD,
and output losses between different heads are a build-time error.
``pytest -m detector_matrix`` runs exactly these tests
(docs/en/detector_families.md tabulates them).
"""
import copy
import os.path as osp
from typing import Callable, Dict

import pytest
import torch
from kd_helpers import CLASSES, make_tiny_coco, runner_config
from mmdet.registry import MODELS
from mmengine.config import Config, ConfigDict
from mmengine.runner import Runner, load_checkpoint
from tool_loader import load_tool

from mmdiode.models.task_modules.inversion import (BNStatisticsPrior,
                                                   DeepInversion)
from mmdiode.testing import make_data_samples
from mmdiode.testing.tiny_zoo import (FAMILIES, calibrate_batchnorm,
                                      tiny_detector)
from mmdiode.utils.cli import ConfigError

pytestmark = pytest.mark.detector_matrix

#: The output distillation each family's pair is trained with.
OUTPUT_LOSSES: Dict[str, dict] = dict(
    retinanet=dict(out=dict(type='DenseHeadKDLoss')),
    fcos=dict(out=dict(type='DenseHeadKDLoss')),  # + centerness factors
    atss=dict(out=dict(type='DenseHeadKDLoss')),  # + centerness factors
    yolox=dict(out=dict(type='DenseHeadKDLoss')),  # + objectness factors
    rtmdet=dict(out=dict(type='DenseHeadKDLoss')),
    yolov3=dict(out=dict(type='YOLOv3OutputKDLoss')),
    ssd=dict(out=dict(type='DenseHeadKDLoss')),  # softmax classes
    faster_rcnn=dict(
        rpn=dict(type='DenseHeadKDLoss', module='rpn_head'),
        roi=dict(type='RoIHeadKDLoss')),
    cascade_rcnn=dict(
        rpn=dict(type='DenseHeadKDLoss', module='rpn_head'),
        **{f'roi{i}': dict(type='RoIHeadKDLoss', stage=i)
           for i in range(3)}),
    dino=dict(out=dict(type='DETRQueryKDLoss')))

#: The task term a few iterations lower. RTMDet's quality focal loss aims
#: its class scores at the IoU of the predicted boxes, so while the boxes
#: improve its class term rises: its box term is the one that falls.
FALLING_TERM = dict(rtmdet='loss_bbox')

LAYOUTS = [(torch.tensor([[8., 8., 40., 48.]]), torch.tensor([1])),
           (torch.tensor([[4., 30., 30., 60.], [34., 4., 62., 28.]]),
            torch.tensor([0, 2]))]
NO_AUGMENT = dict(flip_prob=0.0, brightness=0.0, contrast=0.0, erase_prob=0.0)


def _keep_all_detections(cfg: dict) -> dict:
    """Score thresholds of every ``test_cfg`` set to 0: random heads score
    below mmdet's thresholds, and the tests need detections."""

    def visit(node, in_test_cfg=False):
        if isinstance(node, dict):
            for key, value in node.items():
                if in_test_cfg and key in ('score_thr', 'conf_thr'):
                    node[key] = 0.0
                else:
                    visit(value, in_test_cfg or key == 'test_cfg')

    cfg = copy.deepcopy(cfg)
    visit(cfg)
    return cfg


def _model_cfg(family: str, role: str) -> ConfigDict:
    return ConfigDict(_keep_all_detections(tiny_detector(family, role)))


@pytest.fixture(scope='module')
def teachers(_registered) -> Dict[str, torch.nn.Module]:
    """Every family's teacher, initialised as a Runner would and with its
    BatchNorm statistics measured on random images."""
    models = {}
    for family in FAMILIES:
        torch.manual_seed(0)
        model = MODELS.build(_model_cfg(family, 'teacher'))
        model.init_weights()
        models[family] = calibrate_batchnorm(model)
    return models


@pytest.fixture(scope='module')
def teacher_checkpoints(teachers, tmp_path_factory) -> Dict[str, str]:
    """The teachers saved as Runner checkpoints (with their classes)."""
    root = tmp_path_factory.mktemp('matrix_teachers')
    paths = {}
    for family, model in teachers.items():
        paths[family] = str(root / f'{family}.pth')
        torch.save(
            dict(
                meta=dict(dataset_meta=dict(classes=list(CLASSES))),
                state_dict=model.state_dict()), paths[family])
    return paths


@pytest.fixture(scope='module')
def coco(tmp_path_factory) -> dict:
    return make_tiny_coco(str(tmp_path_factory.mktemp('matrix_coco')))


def _kd_model(student: str, teacher: str, checkpoint: str,
              distill_losses: dict) -> dict:
    return dict(
        type='KDDetector',
        student=_model_cfg(student, 'student'),
        teacher=dict(
            config=_model_cfg(teacher, 'teacher'), checkpoint=checkpoint),
        distill_losses=distill_losses,
        # Every detection of the random teacher becomes a target, in place
        # of the images' ground truth.
        pseudo_label=dict(score_thr=0.0, replace_gt=True),
        classes=CLASSES)


def _train(model: dict, coco: dict, work_dir: str, name: str) -> Runner:
    """One KD iteration through mmengine's Runner (checkpoint, no val)."""
    cfg = runner_config(model, coco, work_dir, max_iters=1)
    cfg.update(
        val_dataloader=None,
        val_cfg=None,
        val_evaluator=None,
        experiment_name=name)
    runner = Runner.from_cfg(Config(cfg))
    runner.train()
    return runner


@pytest.fixture(scope='module')
def kd_runs(teacher_checkpoints, coco,
            tmp_path_factory) -> Callable[[str], dict]:
    """Trains each family's pair once, on first request: the Runner's
    logged losses and the KD checkpoint."""
    runs = {}

    def run(family: str) -> dict:
        if family not in runs:
            work = str(tmp_path_factory.mktemp(f'kd_{family}'))
            runner = _train(
                _kd_model(family, family, teacher_checkpoints[family],
                          OUTPUT_LOSSES[family]), coco, work, f'kd_{family}')
            logged = {
                key[len('train/'):]: runner.message_hub.get_scalar(
                    key).current()
                for key in runner.message_hub.log_scalars
                if key.startswith('train/')
            }
            runs[family] = dict(
                logged=logged, checkpoint=osp.join(work, 'iter_1.pth'),
                work=work)
        return runs[family]

    return run


# --- (a) DeepInversion lowers the task loss, with the BN prior ------------


@pytest.mark.parametrize('family', FAMILIES)
def test_synthesis_lowers_the_task_loss_with_the_bn_prior(teachers, family):
    teacher = teachers[family]
    prior = BNStatisticsPrior(teacher)
    layers = [name for name, _ in prior.layers]
    prior.remove()
    assert layers
    if family == 'dino':
        # ResNet's 20 BatchNorm layers; the neck has GroupNorm and the
        # transformer LayerNorm, which keep no statistics.
        assert len(layers) == 20
        assert all(name.startswith('backbone.') for name in layers)
    engine = DeepInversion(
        teacher,
        stages=[dict(size=64, iterations=20, lr=0.005)],
        bn_prior=dict(weight=0.003),
        image_prior=dict(tv_l1=0.3),
        augment=NO_AUGMENT,
        fp_sampling=dict(enable=False))
    steps = []
    result = engine.synthesize(
        LAYOUTS,
        torch.Generator().manual_seed(0),
        callback=lambda i, stage, losses: steps.append(
            {k: float(v) for k, v in losses.items()}))
    assert result.valid.all() and result.restarts == 0
    assert all(torch.isfinite(torch.tensor(s['loss_bn'])) for s in steps)
    # Mean of the first and of the last 5 iterations: the teachers' own
    # samplers and assigners make single steps noisy.
    term = FALLING_TERM.get(family, 'loss_task')
    first = sum(s[term] for s in steps[:5]) / 5
    last = sum(s[term] for s in steps[-5:]) / 5
    assert last < first, (term, first, last)


# --- (b) false-positive sampling on the teacher's predict() ----------------


@pytest.mark.parametrize('family', FAMILIES)
def test_false_positive_sampling_uses_the_teachers_predictions(
        teachers, family):
    engine = DeepInversion(
        teachers[family],
        stages=[dict(size=64, iterations=1, lr=0.005)],
        augment=NO_AUGMENT,
        # Every confident-enough, non-overlapping detection of the random
        # teacher joins the targets after the first iteration.
        fp_sampling=dict(
            start=0, end=0, interval=1, score_thr=0.0, min_area=0.0,
            max_area=1.0))
    result = engine.synthesize(LAYOUTS, torch.Generator().manual_seed(0))
    for (boxes, labels), new_boxes, new_labels in zip(
            LAYOUTS, result.boxes, result.labels):
        assert len(new_boxes) > len(boxes)  # sampled ones are appended
        torch.testing.assert_close(new_boxes[:len(boxes)], boxes)
        assert torch.equal(new_labels[:len(labels)], labels)
        added = new_boxes[len(boxes):]
        assert (added >= 0).all() and (added <= 64).all()
        assert ((new_labels >= 0) & (new_labels < len(CLASSES))).all()


# --- (c) a KD step with output distillation and pseudo-labels ---------------


@pytest.mark.parametrize('family', FAMILIES)
def test_kd_step_with_output_loss_and_pseudo_labels_through_runner(
        teacher_checkpoints, kd_runs, family):
    # The pseudo-labels: images without ground truth get the teacher's
    # detections as targets of the student's own loss.
    model = MODELS.build(
        _kd_model(family, family, teacher_checkpoints[family],
                  OUTPUT_LOSSES[family]))
    model.student.init_weights()
    model.train()
    samples = make_data_samples([torch.zeros(0, 4)] * 2,
                                [torch.zeros(0, dtype=torch.int64)] * 2, 64)
    losses = model.loss(torch.randn(2, 3, 64, 64), samples)
    assert all(len(s.gt_instances) > 0 for s in samples)
    assert any('.' not in k and 'loss' in k for k in losses)  # student's

    logged = kd_runs(family)['logged']
    for name in OUTPUT_LOSSES[family]:
        terms = [k for k in logged if k.startswith(f'{name}.loss')]
        assert terms, (name, sorted(logged))
        for key in terms:
            assert torch.isfinite(torch.tensor(logged[key])), key
    assert torch.isfinite(torch.tensor(logged['loss']))


# --- (d) the extracted student, evaluated by its plain config ---------------


@pytest.mark.parametrize('family', FAMILIES)
def test_extracted_student_evaluates_with_coco_metric(kd_runs, coco, family,
                                                      tmp_path):
    run = kd_runs(family)
    out = str(tmp_path / 'student.pth')
    assert load_tool('extract_student').main([run['checkpoint'], out]) == 0
    student_cfg = _model_cfg(family, 'student')
    plain = MODELS.build(copy.deepcopy(student_cfg))
    load_checkpoint(plain, out, map_location='cpu', strict=True)

    cfg = runner_config(student_cfg, coco, str(tmp_path / 'test'))
    cfg.update(load_from=out, experiment_name=f'student_{family}')
    metrics = Runner.from_cfg(Config(cfg)).test()
    assert 'coco/bbox_mAP' in metrics


# --- feature KD on every family's neck --------------------------------------


def _neck_channels(cfg: dict) -> list:
    """Channels of every neck level of a detector config (one forward)."""
    model = MODELS.build(copy.deepcopy(cfg)).eval()
    with torch.no_grad():
        return [f.shape[1] for f in model.extract_feat(
            torch.zeros(1, 3, 64, 64))]


@pytest.mark.parametrize('family', FAMILIES)
def test_feature_kd_on_the_neck_levels(teacher_checkpoints, family):
    student_channels = _neck_channels(_model_cfg(family, 'student'))
    teacher_channels = _neck_channels(_model_cfg(family, 'teacher'))
    model = MODELS.build(
        _kd_model(family, family, teacher_checkpoints[family],
                  dict(feat=dict(type='FitNetLoss',
                                 student_channels=student_channels,
                                 teacher_channels=teacher_channels))))
    model.student.init_weights()
    model.train()
    samples = make_data_samples([torch.zeros(0, 4)] * 2,
                                [torch.zeros(0, dtype=torch.int64)] * 2, 64)
    losses = model.loss(torch.randn(2, 3, 64, 64), samples)
    loss = losses['feat.loss_fitnet']
    assert torch.isfinite(loss) and loss > 0
    loss.backward()
    assert model.student.neck is not None
    grads = [p.grad for p in model.student.neck.parameters()]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)
    for p in model.distill_losses.feat.parameters():
        assert p.grad is not None


# --- across families ---------------------------------------------------------


def test_cross_family_pair_trains_with_pseudo_labels_and_feature_kd(
        teacher_checkpoints, coco, tmp_path):
    # Faster R-CNN's FPN levels have strides 4-64, RTMDet's neck 8-32:
    # RTMDet's 3 levels imitate FPN levels 1-3 (same strides).
    fitnet = dict(
        type='FitNetLoss',
        student_modules=['neck'],
        teacher_modules=['neck'],
        student_channels=[16, 16, 16],
        teacher_channels=[32] * 5,
        stage_pairs=[(0, 1), (1, 2), (2, 3)])
    runner = _train(
        _kd_model('rtmdet', 'faster_rcnn', teacher_checkpoints['faster_rcnn'],
                  dict(feat=fitnet)), coco, str(tmp_path), 'kd_cross')
    hub = runner.message_hub
    for key in ('train/feat.loss_fitnet', 'train/loss_cls', 'train/loss_bbox'):
        assert torch.isfinite(torch.tensor(hub.get_scalar(key).current()))
    assert osp.isfile(tmp_path / 'iter_1.pth')


@pytest.mark.parametrize(
    'student,teacher,loss',
    [('rtmdet', 'faster_rcnn', dict(type='DenseHeadKDLoss')),
     ('rtmdet', 'yolox', dict(type='DenseHeadKDLoss')),
     ('faster_rcnn', 'cascade_rcnn', dict(type='RoIHeadKDLoss')),
     ('yolov3', 'rtmdet', dict(type='OutputMSELoss')),
     ('dino', 'rtmdet', dict(type='DETRQueryKDLoss'))])
def test_output_loss_between_different_heads_is_a_build_error(
        student, teacher, loss):
    with pytest.raises(ConfigError) as error:
        MODELS.build(
            _kd_model(student, teacher, None, dict(out=loss)))
    message = str(error.value)
    assert loss['type'] in message
    assert 'cannot pair two different heads' in message
    for name in ('OutputMSELoss', 'YOLOv3OutputKDLoss', 'DenseHeadKDLoss',
                 'RoIHeadKDLoss', 'DETRQueryKDLoss', 'pseudo_label',
                 'FitNetLoss'):
        assert name in message


def test_cascade_roi_loss_needs_a_stage(teacher_checkpoints):
    with pytest.raises(ConfigError, match='give stage=<index>'):
        MODELS.build(
            _kd_model('cascade_rcnn', 'cascade_rcnn',
                      teacher_checkpoints['cascade_rcnn'],
                      dict(roi=dict(type='RoIHeadKDLoss'))))
