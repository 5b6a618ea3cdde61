"""mmdiode.models.utils.teacher: one place decides a teacher's classes."""
import pytest
import torch
from mmdet.registry import MODELS
from mmengine.config import ConfigDict

import mmdiode  # noqa: F401  (registers KDDetector)
from mmdiode.models.utils import (build_frozen_teacher, check_teacher_cfg,
                                  declared_teacher_classes)
from mmdiode.testing import tiny_yolov3

CLASSES = ('a', 'b', 'c')


def full_config(classes):
    """A full teacher config whose train set's metainfo names ``classes``."""
    return dict(
        model=tiny_yolov3(),
        train_dataloader=dict(
            dataset=dict(type='CocoDataset', metainfo=dict(classes=classes))))


def save_checkpoint(path: str, classes) -> str:
    model = MODELS.build(ConfigDict(tiny_yolov3()))
    torch.save(
        dict(meta=dict(dataset_meta=dict(classes=list(classes))),
             state_dict=model.state_dict()), path)
    return path


def test_class_precedence_explicit_then_checkpoint_then_config(tmp_path):
    ckpt = save_checkpoint(str(tmp_path / 't.pth'), ('x', 'y', 'z'))
    config = full_config(('p', 'q', 'r'))
    _, classes = build_frozen_teacher(dict(config=config))
    assert classes == ('p', 'q', 'r')
    _, classes = build_frozen_teacher(dict(config=config, checkpoint=ckpt))
    assert classes == ('x', 'y', 'z')
    model, classes = build_frozen_teacher(
        dict(config=config, checkpoint=ckpt, classes=CLASSES))
    assert classes == CLASSES
    assert not model.training
    assert not any(p.requires_grad for p in model.parameters())
    # A model config names no classes.
    assert build_frozen_teacher(dict(config=tiny_yolov3()))[1] is None


def test_declared_classes_need_no_weights():
    assert declared_teacher_classes(
        dict(config=full_config(CLASSES),
             checkpoint='never/read.pth')) == CLASSES
    assert declared_teacher_classes(
        dict(config=tiny_yolov3(), classes=['u', 'v', 'w'])) == ('u', 'v',
                                                                 'w')
    assert declared_teacher_classes(dict(config=tiny_yolov3())) is None


def test_bad_teacher_settings_name_the_fix():
    with pytest.raises(ValueError, match=r'dict\(config=..., checkpoint'):
        check_teacher_cfg('configs/teacher.py')
    with pytest.raises(ValueError, match="unknown teacher keys.*'classes'"):
        check_teacher_cfg(dict(config=tiny_yolov3(), ckpt='x.pth'))


def test_kd_detector_takes_the_teachers_explicit_classes():
    student = tiny_yolov3()
    teacher = dict(config=tiny_yolov3(), classes=CLASSES)
    MODELS.build(
        dict(type='KDDetector', student=student, teacher=teacher,
             classes=CLASSES))
    with pytest.raises(ValueError, match='class name mismatch'):
        MODELS.build(
            dict(type='KDDetector', student=student, teacher=teacher,
                 classes=('a', 'b', 'x')))
