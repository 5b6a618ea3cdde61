"""Fixtures of the model tests (helpers live in kd_helpers.py)."""
import pytest
import torch
from kd_helpers import (CLASSES, build_detector, make_tiny_coco,
                        register_adapted_neck_mse, runner_config, save_teacher,
                        tiny_pair)


@pytest.fixture(scope='session', autouse=True)
def _registered():
    """mmdet's and mmdiode's modules in the registries, one torch thread."""
    torch.set_num_threads(1)
    from mmdet.utils import register_all_modules
    register_all_modules()
    import mmdiode  # noqa: F401


@pytest.fixture(scope='session')
def kd_run(tmp_path_factory, _registered):
    """Trains a YOLOv3 KDDetector 2 iterations with mmengine's Runner on a
    tiny COCO set (validating with CocoMetric and TeacherEvalHook), then
    runs ``Runner.test()``. Returns what the tests inspect."""
    from mmengine.config import Config
    from mmengine.runner import Runner
    register_adapted_neck_mse()
    root = tmp_path_factory.mktemp('kd_run')
    coco = make_tiny_coco(str(root))
    student, teacher = tiny_pair('yolov3')
    # Untrained heads score below the default thresholds; keep every box so
    # that CocoMetric has detections to score.
    student['test_cfg'].update(score_thr=0.0, conf_thr=0.0)
    teacher_ckpt = str(root / 'teacher.pth')
    teacher_state = save_teacher(teacher, teacher_ckpt)
    model = dict(
        type='KDDetector',
        student=student,
        teacher=dict(config=teacher, checkpoint=teacher_ckpt),
        distill_losses=dict(
            out=dict(type='OutputMSELoss', module='bbox_head'),
            feat=dict(
                type='TestAdaptedNeckMSE',
                student_channels=24,
                teacher_channels=48)),
        classes=CLASSES)
    cfg = runner_config(model, coco, str(root / 'work'))
    cfg.update(
        custom_hooks=[dict(type='TeacherEvalHook')], experiment_name='kd_run')
    runner = Runner.from_cfg(Config(cfg))
    runner.train()
    hub = runner.message_hub
    teacher_map = hub.get_scalar('val/teacher/coco/bbox_mAP').current()
    student_map = hub.get_scalar('val/coco/bbox_mAP').current()
    test_metrics = runner.test()
    return dict(
        coco=coco,
        root=root,
        student=student,
        teacher_state=teacher_state,
        teacher_after={
            k: v.clone()
            for k, v in runner.model.teacher.state_dict().items()
        },
        checkpoint=str(root / 'work' / 'iter_2.pth'),
        model=runner.model,
        teacher_map=teacher_map,
        student_map=student_map,
        test_metrics=test_metrics)


@pytest.fixture(scope='module')
def models(_registered):
    """A tiny Faster R-CNN R18-FPN student (base 8, FPN 16) and its frozen
    teacher (base 16, FPN 32), for the feature-distillation tests."""
    from mmdiode.testing import tiny_faster_rcnn
    torch.manual_seed(0)
    student = build_detector(tiny_faster_rcnn())
    teacher = build_detector(
        tiny_faster_rcnn(base_channels=16, fpn_channels=32)).eval()
    return student, teacher
