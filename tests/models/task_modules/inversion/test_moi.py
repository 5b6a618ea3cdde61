"""MultiObjectImpressions: no data statistics, classes from the classifier."""
import pytest
import torch
from conftest import build_teacher, gn_teacher, set_classifier, three_boxes
from kd_helpers import FP_SAMPLING_ONCE
from mmdet.registry import TASK_UTILS

from mmdiode.models.task_modules.inversion import (ClassCoOccurrence,
                                                   DeepInversion,
                                                   MultiObjectImpressions)

STAGES = [
    dict(size=32, iterations=2, lr=0.1, jitter=4),
    dict(size=64, iterations=2, lr=0.01, jitter=8)
]


def test_labels_come_from_class_co_occurrence():
    teacher = build_teacher('faster_rcnn')
    set_classifier(teacher)
    moi = MultiObjectImpressions(
        teacher,
        temperature=0.05,
        stages=STAGES,
        fp_sampling=dict(enable=False))
    sampler = moi.label_sampler
    assert isinstance(sampler, ClassCoOccurrence)
    assert sampler.temperature == 0.05
    assert sampler.classifier_weight == 'roi_head.bbox_head.fc_cls.weight'
    result = moi.synthesize(three_boxes(n=8), torch.Generator().manual_seed(0))
    for labels in result.labels:
        rest = set(labels[1:].tolist())
        assert rest <= ({2} if int(labels[0]) == 2 else {0, 1})


def test_synthesis_uses_no_bn_statistics_and_the_full_two_stage_loss():
    teacher = build_teacher('faster_rcnn')
    moi = TASK_UTILS.build(
        dict(
            type='MultiObjectImpressions',
            teacher=teacher,
            stages=STAGES,
            fp_sampling=FP_SAMPLING_ONCE))
    assert isinstance(moi, DeepInversion) and moi.bn_weight == 0
    result = moi.synthesize(three_boxes(), torch.Generator().manual_seed(0))
    history = result.loss_history
    assert 'loss_bn' not in history
    assert {
        'loss_rpn_cls', 'loss_rpn_bbox', 'loss_cls', 'loss_bbox', 'loss_tv_l1'
    } <= set(history)
    assert result.images.shape == (2, 64, 64, 3) and result.valid.all()
    # Pseudo-targets were refreshed with the teacher's detections.
    assert all(len(b) > 3 for b in result.boxes)
    assert all(not m._forward_hooks for m in teacher.modules())


def test_works_on_a_teacher_without_batchnorm():
    teacher = gn_teacher('faster_rcnn')
    with pytest.raises(ValueError, match='no BatchNorm'):
        DeepInversion(teacher)
    moi = MultiObjectImpressions(
        teacher, stages=STAGES, fp_sampling=dict(enable=False))
    result = moi.synthesize(three_boxes(), torch.Generator().manual_seed(1))
    assert result.valid.all()


def test_bad_arguments():
    teacher = build_teacher('faster_rcnn')
    with pytest.raises(ValueError, match='no data statistics'):
        MultiObjectImpressions(teacher, bn_prior=dict(weight=0.1))
    with pytest.raises(ValueError, match='no stage may set bn_weight'):
        MultiObjectImpressions(
            teacher,
            stages=[dict(size=32, iterations=1, lr=0.1, bn_weight=0.1)])
    with pytest.raises(ValueError, match="'roi_head.fc' is not a parameter"):
        MultiObjectImpressions(teacher, classifier_weight='roi_head.fc')
    with pytest.raises(ValueError, match='temperature'):
        MultiObjectImpressions(teacher, temperature=0.0)
    with pytest.raises(ValueError, match='instead of label_sampler'):
        MultiObjectImpressions(
            teacher, label_sampler=dict(type='ClassCoOccurrence'))
