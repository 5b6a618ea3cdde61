"""FalsePositiveSampler: which teacher detections become new targets."""
import pytest
import torch
from mmdet.structures import DetDataSample
from mmengine.structures import InstanceData

from mmdiode.models.task_modules.inversion import FalsePositiveSampler
from mmdiode.testing import unscaled_metainfo


def test_schedule():
    sampler = FalsePositiveSampler(start=4, end=12, interval=4)
    assert [i for i in range(20) if sampler.is_due(i)] == [4, 8, 12]
    assert not FalsePositiveSampler(enable=False, start=0).is_due(0)
    with pytest.raises(ValueError, match='interval'):
        FalsePositiveSampler(interval=0)


def test_selection_rules_on_hand_made_detections():
    sampler = FalsePositiveSampler(
        score_thr=0.2, iou_thr=0.35, min_area=0.01, max_area=0.85)
    targets = torch.tensor([[0., 0., 50., 50.]])
    preds = InstanceData(
        bboxes=torch.tensor([
            [60., 60., 90., 90.],  # new object: kept
            [60., 0., 90., 30.],  # but the score is too low
            [5., 5., 50., 50.],  # overlaps the target (IoU 0.81)
            [95., 95., 97., 97.],  # area 4 / 10000 < 0.01
            [0., 0., 96., 96.],  # area 0.92 > 0.85
            [40., 60., 70., 99.],  # IoU 0 with the target: kept
            [70., -20., 120., 20.],  # clipped to 70, 0, 100, 20: kept
        ]),
        scores=torch.tensor([0.9, 0.1, 0.9, 0.9, 0.9, 0.3, 0.5]),
        labels=torch.tensor([1, 1, 2, 0, 0, 2, 0]))
    found = sampler.select(preds, targets, (100, 100))
    assert found.bboxes.tolist() == [[60., 60., 90.,
                                      90.], [40., 60., 70., 99.],
                                     [70., 0., 100., 20.]]
    assert found.labels.tolist() == [1, 2, 0]
    # Without targets only score and area rules apply.
    assert len(sampler.select(preds, torch.zeros(0, 4), (100, 100))) == 4


def test_sample_appends_teacher_detections_after_the_targets(teachers):
    teacher = teachers['retinanet']
    sampler = FalsePositiveSampler(
        score_thr=0.0, iou_thr=0.35, min_area=0.0, max_area=1.0)
    meta = unscaled_metainfo(64, 64)
    boxes = [torch.tensor([[8., 8., 40., 40.]]), torch.zeros(0, 4)]
    labels = [torch.tensor([2]), torch.zeros(0, dtype=torch.long)]
    torch.manual_seed(0)
    new_boxes, new_labels = sampler.sample(teacher, torch.randn(
        2, 3, 64, 64), [DetDataSample(metainfo=meta) for _ in range(2)], boxes,
                                           labels)
    assert torch.equal(new_boxes[0][:1], boxes[0])
    assert new_labels[0][0] == 2
    assert all(len(b) > len(old) for b, old in zip(new_boxes, boxes))
    assert all(len(b) == len(lb) for b, lb in zip(new_boxes, new_labels))
    assert new_labels[0].dtype == torch.long
