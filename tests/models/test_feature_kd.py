"""FitNet / Mimic, FGFI and PKD losses on real tiny mmdet features."""
import pytest
import torch
from kd_helpers import (backward_through_adaptations, build_detector,
                        record_stages)
from mmdet.registry import MODELS
from mmdet.utils import register_all_modules

import mmdiode.models.losses.feature_kd  # noqa: F401  (registers losses)
from mmdiode.models.distill_base import DistillContext
from mmdiode.models.losses.correspondence import gt_box_masks
from mmdiode.testing import (make_data_samples, tiny_faster_rcnn,
                             tiny_retinanet, tiny_yolov3)

SIZE = 64
# R18-FPN with base 8 / FPN 16 (student) and base 16 / FPN 32 (teacher);
# the neck has 5 levels at strides 4..64: 16, 8, 4, 2, 1 px on 64 px.
STUDENT_NECK = [16] * 5
TEACHER_NECK = [32] * 5
BOXES = [torch.tensor([[8., 8., 40., 40.]]),
         torch.tensor([[30., 4., 60., 30.], [2., 44., 20., 62.]])]


def setup_module():
    register_all_modules()
    torch.manual_seed(0)


def samples(boxes=BOXES):
    return make_data_samples(boxes, [torch.zeros(len(b)).long()
                                     for b in boxes], SIZE)


def context(student, teacher, images=None, data_samples=None):
    images = torch.randn(2, 3, SIZE, SIZE) if images is None else images
    return DistillContext(student_outs=record_stages(student, images),
                          teacher_outs=record_stages(teacher, images),
                          data_samples=data_samples or samples(),
                          student_inputs=images, teacher_inputs=images)


def test_fitnet_zero_for_identical_features_positive_otherwise(models):
    student, teacher = models
    loss = MODELS.build(dict(type='FitNetLoss', student_channels=STUDENT_NECK,
                             teacher_channels=STUDENT_NECK))
    outs = record_stages(student, torch.randn(2, 3, SIZE, SIZE))
    same = DistillContext(outs, outs, samples())
    assert loss(same)['loss_fitnet'].item() == 0
    other = build_detector(tiny_faster_rcnn())
    other_outs = record_stages(other, torch.randn(2, 3, SIZE, SIZE))
    diff = DistillContext(outs, other_outs, samples())
    assert loss(diff)['loss_fitnet'].item() > 0


def test_fitnet_channel_and_stride_mismatch_gradients(models):
    student, teacher = models
    # Student level i+1 (stride 2x) imitates teacher level i: both the
    # channels (16 -> 32) and the resolution differ.
    loss = MODELS.build(dict(
        type='FitNetLoss', student_channels=STUDENT_NECK,
        teacher_channels=TEACHER_NECK,
        stage_pairs=[(1, 0), (2, 1), (3, 2), (4, 3)]))
    student.zero_grad()
    teacher.zero_grad()
    value = loss(context(student, teacher))['loss_fitnet']
    backward_through_adaptations(loss, value)
    assert student.neck.fpn_convs[1].conv.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in teacher.parameters())


def test_mimic_only_imitates_inside_boxes(models):
    student, _ = models
    outs = record_stages(student, torch.randn(2, 3, SIZE, SIZE))
    neck = outs['neck']
    # The "student" differs from the teacher only outside the GT boxes.
    noisy = tuple(
        f + torch.randn_like(f) * (1 - gt_box_masks(samples(), f.shape[-2:],
                                                    f.device))
        for f in neck)
    ctx = DistillContext({'neck': noisy}, {'neck': neck}, samples())
    kw = dict(student_channels=STUDENT_NECK, teacher_channels=STUDENT_NECK)
    mimic = MODELS.build(dict(type='MimicLoss', **kw))
    fitnet = MODELS.build(dict(type='FitNetLoss', **kw))
    assert mimic(ctx)['loss_mimic'].item() == 0
    assert fitnet(ctx)['loss_fitnet'].item() > 0
    # Noise inside the boxes is seen, normalised by the mask size: unit
    # Gaussian noise everywhere gives about 1 per level.
    noisy_all = tuple(f + torch.randn_like(f) for f in neck)
    ctx = DistillContext({'neck': noisy_all}, {'neck': neck}, samples())
    assert 5 * 0.7 < mimic(ctx)['loss_mimic'].item() < 5 * 1.3
    empty = samples([torch.zeros(0, 4), torch.zeros(0, 4)])
    ctx = DistillContext({'neck': noisy_all}, {'neck': neck}, empty)
    assert mimic(ctx)['loss_mimic'].item() == 0


def test_gt_box_masks_cover_overlapped_cells():
    mask = gt_box_masks(samples(), (8, 8), torch.device('cpu'))  # stride 8
    assert mask.shape == (2, 1, 8, 8)
    # Box [8, 40] x [8, 40] overlaps cells 1..4 (cell 5 starts at 40).
    expected = torch.zeros(8, 8)
    expected[1:5, 1:5] = 1
    assert torch.equal(mask[0, 0], expected)
    assert mask[1, 0, 0, 4] == 1 and mask[1, 0, 6, 0] == 1
    assert mask[1, 0, 7, 7] == 0


def test_feature_losses_clear_errors(models):
    student, teacher = models
    with pytest.raises(ValueError, match='stage_pairs'):
        MODELS.build(dict(type='FitNetLoss', student_channels=[16] * 4,
                          teacher_channels=[32] * 5))
    ctx = context(student, teacher)
    bad_channels = MODELS.build(dict(type='FitNetLoss',
                                     student_channels=[8] * 5,
                                     teacher_channels=TEACHER_NECK))
    with pytest.raises(ValueError, match='student channels'):
        bad_channels(ctx)
    missing = MODELS.build(dict(type='PKDLoss', student_channels=[16],
                                teacher_channels=[32],
                                student_modules=['rpn_head'],
                                teacher_modules=['rpn_head']))
    with pytest.raises(KeyError, match="'rpn_head' was not recorded"):
        missing(ctx)
    with pytest.raises(ValueError, match='mask'):
        MODELS.build(dict(type='FitNetLoss', student_channels=[16],
                          teacher_channels=[16], mask='proposals'))


def fgfi(**kw):
    anchors = tiny_retinanet()['bbox_head']['anchor_generator']
    cfg = dict(type='FGFILoss', student_channels=STUDENT_NECK,
               teacher_channels=TEACHER_NECK, anchor_generator=anchors)
    cfg.update(kw)
    return MODELS.build(cfg)


def test_fgfi_mask_near_gt_and_empty_without(models):
    loss = fgfi()
    sizes = [(16, 16), (8, 8), (4, 4), (2, 2), (1, 1)]
    masks = loss.imitation_masks(samples(), sizes, torch.device('cpu'))
    assert [tuple(m.shape) for m in masks] == [(2, 1, h, w)
                                               for h, w in sizes]
    total = sum(m.sum() for m in masks)
    assert total > 0
    # Image 0's box spans pixels 8..40 (centre 24): every imitated location
    # of every level has its anchor centre (x * stride) near that box and
    # the location nearest the centre is imitated on some level.
    for m, stride in zip(masks, [4, 8, 16, 32, 64]):
        ys, xs = torch.nonzero(m[0, 0], as_tuple=True)
        assert ((ys * stride >= 0) & (ys * stride <= 48)).all()
        assert ((xs * stride >= 0) & (xs * stride <= 48)).all()
    assert any(m[0, 0, 24 // s, 24 // s] == 1
               for m, s in zip(masks, [4, 8, 16, 32, 64]))
    # Far from image 0's box: bottom-right corner of the finest level.
    assert masks[0][0, 0, 15, 15] == 0
    empty = samples([torch.zeros(0, 4), torch.zeros(0, 4)])
    empty_masks = loss.imitation_masks(empty, sizes, torch.device('cpu'))
    assert all(m.sum() == 0 for m in empty_masks)


def test_fgfi_loss_values_and_gradients(models):
    student, teacher = models
    loss = fgfi()
    student.zero_grad()
    value = loss(context(student, teacher))['loss_fgfi']
    assert value.item() > 0
    value.backward()
    assert all(layer.adapt.conv.weight.grad is not None
               for layer in loss.correspondences)
    assert all(p.grad is None for p in teacher.parameters())
    empty = samples([torch.zeros(0, 4), torch.zeros(0, 4)])
    assert loss(context(student, teacher,
                        data_samples=empty))['loss_fgfi'].item() == 0
    # Same widths, no adaptation, identical features: nothing to imitate.
    same = fgfi(student_channels=STUDENT_NECK, teacher_channels=STUDENT_NECK,
                always_adapt=False)
    outs = record_stages(student, torch.randn(2, 3, SIZE, SIZE))
    assert same(DistillContext(outs, outs, samples()))['loss_fgfi'] == 0


def test_fgfi_rejects_anchor_levels_out_of_order(models):
    student, teacher = models
    anchors = tiny_retinanet()['bbox_head']['anchor_generator']
    anchors['strides'] = anchors['strides'][::-1]
    loss = fgfi(anchor_generator=anchors)
    with pytest.raises(ValueError, match='follow the stage pairs'):
        loss(context(student, teacher))
    with pytest.raises(ValueError, match='levels'):
        fgfi(stage_pairs=[(0, 0)])


def test_fgfi_on_yolo_neck_with_the_heads_anchors():
    # YOLOv3 neck levels come at strides 32/16/8, as do the head's anchors.
    student = build_detector(tiny_yolov3(widen_factor=0.25))
    teacher = build_detector(tiny_yolov3(widen_factor=0.5)).eval()
    loss = MODELS.build(dict(
        type='FGFILoss', student_channels=[24] * 3, teacher_channels=[48] * 3,
        anchor_generator=tiny_yolov3()['bbox_head']['anchor_generator']))
    ctx = context(student, teacher)
    masks = loss.imitation_masks(ctx.data_samples, [(2, 2), (4, 4), (8, 8)],
                                 torch.device('cpu'))
    # The 32 px and 30x26 px boxes fit the 24-32 px anchors of stride 32,
    # the 18 px box the 12-16 px anchors of stride 16; no box fits the
    # 6-8 px anchors of stride 8, so that level is not imitated.
    assert masks[0][0].sum() > 0 and masks[0][1].sum() > 0
    assert masks[1][1].sum() > 0
    assert masks[2].sum() == 0
    value = loss(ctx)['loss_fgfi']
    assert value.item() > 0
    value.backward()
    assert student.neck.conv1.conv.weight.grad.abs().sum() > 0


def test_pkd_is_one_minus_pearson_and_scale_invariant(models):
    student, teacher = models
    loss = MODELS.build(dict(type='PKDLoss', student_channels=STUDENT_NECK,
                             teacher_channels=STUDENT_NECK))
    assert loss.loss_weight == 6.0
    outs = record_stages(student, torch.randn(2, 3, SIZE, SIZE))
    same = DistillContext(outs, outs, samples())
    assert loss(same)['loss_pkd'].item() == pytest.approx(0, abs=1e-6)
    # Pearson correlation ignores a per-channel affine change of the
    # teacher.
    affine = {'neck': tuple(3 * f + 1 for f in outs['neck'])}
    assert loss(DistillContext(outs, affine, samples()))[
        'loss_pkd'].item() == pytest.approx(0, abs=1e-4)
    other = record_stages(build_detector(tiny_faster_rcnn()),
                          torch.randn(2, 3, SIZE, SIZE))
    value = loss(DistillContext(outs, other, samples()))['loss_pkd']
    expected = 0.
    for s, t in zip(outs['neck'], other['neck']):
        s = s.transpose(0, 1).flatten(1)
        t = t.transpose(0, 1).flatten(1)
        s, t = s - s.mean(1, keepdim=True), t - t.mean(1, keepdim=True)
        r = (s * t).sum(1) / (s.norm(dim=1) * t.norm(dim=1))
        expected += (1 - r).mean()
    assert value.item() == pytest.approx(6 * expected.item(), rel=1e-3)


def test_pkd_adapts_channels_and_resolution(models):
    student, teacher = models
    loss = MODELS.build(dict(type='PKDLoss', student_channels=STUDENT_NECK,
                             teacher_channels=TEACHER_NECK,
                             stage_pairs=[(0, 1), (1, 2)]))
    student.zero_grad()
    value = loss(context(student, teacher))['loss_pkd']
    assert 0 < value.item() < 6 * 2 * 2
    value.backward()
    assert loss.correspondences[0].adapt.conv.weight.grad.abs().sum() > 0
    assert student.neck.fpn_convs[0].conv.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in teacher.parameters())
