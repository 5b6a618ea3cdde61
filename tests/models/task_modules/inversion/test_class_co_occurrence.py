"""ClassCoOccurrence: labels from the teacher's classifier similarities."""
import pytest
import torch
from conftest import build_teacher, set_classifier, three_boxes
from mmdet.registry import TASK_UTILS

from mmdiode.models.task_modules.inversion import (ClassCoOccurrence,
                                                   DeepInversion)

STAGES = [dict(size=64, iterations=2, lr=0.1, jitter=4)]


def test_relabelling_follows_classifier_similarity():
    teacher = build_teacher('faster_rcnn')
    set_classifier(teacher)
    sampler = TASK_UTILS.build(
        dict(type='ClassCoOccurrence', teacher=teacher, temperature=0.05))
    assert sampler.probs.shape == (3, 3)
    torch.testing.assert_close(sampler.probs.sum(1), torch.ones(3))
    # Class 2 is dissimilar to 0 and 1: never drawn with them.
    assert sampler.probs[0, 2] < 1e-6 and sampler.probs[2, 2] > 0.99
    generator = torch.Generator().manual_seed(0)
    layouts = sampler.relabel(three_boxes(n=60, k=3), generator)
    firsts = []
    for (boxes, labels), (old_boxes, _) in zip(layouts, three_boxes(60, 3)):
        assert torch.equal(boxes, old_boxes) and labels.dtype == torch.long
        first = int(labels[0])
        firsts.append(first)
        rest = set(labels[1:].tolist())
        assert rest <= ({2} if first == 2 else {0, 1})
    assert set(firsts) == {0, 1, 2}  # the first class is uniform


def test_a_layout_without_boxes_keeps_no_labels():
    sampler = ClassCoOccurrence(build_teacher('faster_rcnn'))
    (boxes, labels), = sampler.relabel(
        [(torch.zeros(0, 4), torch.zeros(0, dtype=torch.long))])
    assert boxes.shape == (0, 4) and labels.shape == (0, )


def test_deep_inversion_relabels_every_batch_with_its_generator():
    teacher = build_teacher('faster_rcnn')
    set_classifier(teacher)
    engine = DeepInversion(
        teacher,
        stages=STAGES,
        fp_sampling=dict(enable=False),
        label_sampler=dict(type='ClassCoOccurrence', temperature=0.05))
    assert engine.uses_bn_prior  # DIODE's prior stays on
    layouts = three_boxes(n=4, k=3)
    result = engine.synthesize(layouts, torch.Generator().manual_seed(3))
    expected = engine.label_sampler.relabel(layouts,
                                            torch.Generator().manual_seed(3))
    for got, (_, want) in zip(result.labels, expected):
        assert torch.equal(got, want)
    again = engine.synthesize(layouts, torch.Generator().manual_seed(3))
    assert torch.equal(again.images, result.images)


def test_bad_arguments():
    teacher = build_teacher('faster_rcnn')
    with pytest.raises(ValueError, match="'roi_head.fc' is not a parameter"):
        ClassCoOccurrence(teacher, classifier_weight='roi_head.fc')
    with pytest.raises(ValueError, match='temperature must be > 0'):
        ClassCoOccurrence(teacher, temperature=0.0)
    with pytest.raises(ValueError, match='at least 2-D'):
        ClassCoOccurrence(
            teacher, classifier_weight='roi_head.bbox_head.fc_cls.bias')
    yolov3 = build_teacher('yolov3')
    with pytest.raises(ValueError, match='Cannot tell the classes'):
        ClassCoOccurrence(
            yolov3, classifier_weight='backbone.conv1.conv.weight')
    # Boxes, objectness and classes in one conv: no per-class rows.
    with pytest.raises(ValueError, match='Cannot tell the classes'):
        ClassCoOccurrence(
            yolov3, classifier_weight='bbox_head.convs_pred.0.weight')
    # One block of classes per anchor: which rows are a class's is unclear.
    with pytest.raises(ValueError, match='Cannot tell the classes'):
        ClassCoOccurrence(
            build_teacher('retinanet'),
            classifier_weight='bbox_head.retina_cls.weight')
