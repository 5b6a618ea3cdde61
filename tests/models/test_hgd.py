"""HGD: all-stage correspondence, imitation, micro and macro re-weighting."""
import pytest
import torch
from kd_helpers import (backward_through_adaptations, build_detector,
                        record_stages)
from mmdet.registry import MODELS

import mmdiode.models.losses.hgd  # noqa: F401  (registers HGDLoss)
from mmdiode.models.distill_base import DistillContext
from mmdiode.testing import make_data_samples, tiny_faster_rcnn, tiny_yolov3

SIZE = 64
# R18-FPN: 4 backbone stages then 5 FPN levels = 9 stages.
STUDENT = [8, 16, 32, 64] + [16] * 5
TEACHER = [16, 32, 64, 128] + [32] * 5
# YOLOv3-MobileNetV2 (widen 0.25): backbone 8/24/80 at strides 8/16/32,
# neck 24 channels at strides 32/16/8 = 6 stages.
YOLO = [8, 24, 80] + [24] * 3
BOXES = [torch.tensor([[8., 8., 40., 40.]]), torch.zeros(0, 4)]


def samples(boxes=BOXES):
    return make_data_samples(boxes, [torch.zeros(len(b)).long()
                                     for b in boxes], SIZE)


def context(student, teacher, data_samples=None):
    images = torch.randn(2, 3, SIZE, SIZE)
    return DistillContext(student_outs=record_stages(student, images),
                          teacher_outs=record_stages(teacher, images),
                          data_samples=data_samples or samples(),
                          student_inputs=images, teacher_inputs=images)


def hgd(**kw):
    cfg = dict(type='HGDLoss', student_channels=STUDENT,
               teacher_channels=TEACHER)
    cfg.update(kw)
    return MODELS.build(cfg)


def test_hgd_distils_all_stages_with_gradients(models):
    student, teacher = models
    loss = hgd()
    student.zero_grad()
    out = loss(context(student, teacher))
    assert out['loss_hgd'].item() > 0
    assert [k for k in out if k.startswith('hgd_stage')] == [
        f'hgd_stage{k}' for k in range(9)]
    # mmengine sums only the keys containing 'loss'.
    total, log_vars = student.parse_losses(out)
    assert torch.equal(total, out['loss_hgd'])
    assert 'hgd_weight3' in log_vars
    total.backward()
    for layer in loss.correspondences:  # every stage: channels differ
        assert layer.adapt.conv.weight.grad.abs().sum() > 0
        assert layer.adapt.bn.weight.grad is not None
    assert student.backbone.conv1.weight.grad.abs().sum() > 0
    assert student.neck.fpn_convs[3].conv.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in teacher.parameters())


def test_hgd_zero_for_identical_features(models):
    student, _ = models
    loss = hgd(teacher_channels=STUDENT)
    assert all(isinstance(layer.adapt, torch.nn.Identity)
               for layer in loss.correspondences)
    outs = record_stages(student, torch.randn(2, 3, SIZE, SIZE))
    assert loss(DistillContext(outs, outs, samples()))['loss_hgd'] == 0
    other = record_stages(build_detector(tiny_faster_rcnn()),
                          torch.randn(2, 3, SIZE, SIZE))
    assert loss(DistillContext(outs, other, samples()))['loss_hgd'] > 0


def test_stage_imitation_is_variance_normalised():
    loss = hgd(micro_weighting='none', var_eps=0.)
    scales = torch.tensor([1., 10., 100., .1]).view(1, 4, 1, 1)
    teacher = torch.randn(2, 4, 8, 8) * scales
    # An error of one teacher standard deviation in every channel costs 1,
    # whatever the channel's magnitude.
    std = teacher.std(dim=(0, 2, 3), unbiased=False, keepdim=True)
    value = loss.stage_loss(teacher + std, teacher, samples())
    assert value.item() == pytest.approx(1.0, rel=1e-5)


def test_micro_weights_from_gt_and_attention():
    loss = hgd(micro_weighting='gt', alpha=1.0, beta=0.25)
    teacher = torch.rand(2, 4, 8, 8)  # stride 8 on the 64 px batch
    gt = loss.micro_weights(teacher, samples())
    assert gt.shape == (2, 1, 8, 8)
    assert torch.allclose(gt.sum(dim=(2, 3)), torch.full((2, 1), 64.))
    # Image 0: box [8, 40]^2 covers cells 1..4; inside weighs alpha/beta =
    # 4x outside. Image 1 has no box: uniform.
    assert gt[0, 0, 2, 2] == pytest.approx(4 * gt[0, 0, 7, 7].item())
    assert gt[0, 0, 1:5, 1:5].min() > gt[0, 0, 5:, 5:].max()
    assert torch.allclose(gt[1], torch.ones(1, 8, 8))

    # Attention: a hot spot in the teacher gets the largest weight.
    teacher[:, :, 6, 1] = 1.5
    att = hgd(micro_weighting='attention').micro_weights(teacher, samples())
    assert torch.allclose(att.sum(dim=(2, 3)), torch.full((2, 1), 64.))
    assert (att.flatten(1).argmax(1) == 6 * 8 + 1).all()
    sharper = hgd(micro_weighting='attention', temperature=0.5)
    sharp = sharper.micro_weights(teacher, samples())
    assert sharp[0, 0, 6, 1] > att[0, 0, 6, 1]

    # 'auto': GT weights where an image has boxes, attention where not.
    auto = hgd().micro_weights(teacher, samples())
    assert torch.allclose(auto[0], loss.micro_weights(teacher, samples())[0])
    assert torch.allclose(auto[1], att[1])
    none = hgd(micro_weighting='none').micro_weights(teacher, samples())
    assert torch.equal(none, torch.ones(2, 1, 8, 8))


def test_macro_weights_adaptive_and_fixed(models):
    student, teacher = models
    loss = hgd()
    first = torch.tensor([1., 2., 4., 8., 1., 1., 1., 1., 2.])
    weights = loss.macro_weights(first)
    assert weights.sum().item() == pytest.approx(9)
    # Inverse to the running loss: every weighted term is equal.
    products = weights * first
    assert torch.allclose(products, products[0].expand(9))
    second = torch.full((9, ), 2.)
    weights = loss.macro_weights(second)
    assert torch.allclose(loss.stage_loss_ema, 0.9 * first + 0.1 * second)
    assert weights.sum().item() == pytest.approx(9)
    # Evaluation does not move the running losses.
    loss.eval()
    loss.macro_weights(torch.ones(9))
    assert torch.allclose(loss.stage_loss_ema, 0.9 * first + 0.1 * second)
    # On real features the weighted stage terms come out equal too.
    loss = hgd()
    out = loss(context(student, teacher))
    terms = torch.stack([out[f'hgd_stage{k}'] * out[f'hgd_weight{k}']
                         for k in range(9)])
    assert torch.allclose(terms, terms[0].expand(9), rtol=1e-4)
    assert out['loss_hgd'].item() == pytest.approx(terms.sum().item(),
                                                   rel=1e-4)
    fixed = hgd(stage_weights=[1.] * 4 + [0.] * 5)
    out = fixed(context(student, teacher))
    expected = sum(out[f'hgd_stage{k}'] for k in range(4))
    assert out['loss_hgd'].item() == pytest.approx(expected.item(), rel=1e-5)
    with pytest.raises(ValueError, match='stage_weights'):
        hgd(stage_weights=[1.] * 3)


def test_stage_count_mismatch_and_explicit_pairs(models):
    _, teacher = models
    with pytest.raises(ValueError, match='6 stages and the teacher 9'):
        hgd(student_channels=YOLO)
    yolo = build_detector(tiny_yolov3())
    # YOLO backbone (strides 8/16/32) onto the teacher's backbone stages
    # 0..2 (strides 4/8/16): channels and resolution differ; the YOLO neck
    # (strides 32/16/8) onto the FPN levels of the same strides.
    pairs = [(0, 0), (1, 1), (2, 2), (3, 7), (4, 6), (5, 5)]
    loss = hgd(student_channels=YOLO, stage_pairs=pairs)
    yolo.zero_grad()
    value = loss(context(yolo, teacher))['loss_hgd']
    backward_through_adaptations(loss, value)
    assert yolo.backbone.conv1.conv.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match='out of range'):
        hgd(student_channels=YOLO, stage_pairs=[(6, 0)])
    # Declared channels that do not match the recorded stage count.
    wrong = hgd(student_channels=STUDENT[:4] + [16] * 4,
                stage_pairs=[(k, k) for k in range(8)])
    with pytest.raises(ValueError, match='give 9 stages'):
        wrong(context(build_detector(tiny_faster_rcnn()), teacher))


def test_invalid_options_raise():
    with pytest.raises(ValueError, match='micro_weighting'):
        hgd(micro_weighting='box')
    with pytest.raises(ValueError, match='alpha and beta'):
        hgd(beta=0.)
