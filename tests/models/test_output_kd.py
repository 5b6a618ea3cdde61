"""Output distillation losses: formulas, zero at agreement, real detectors."""
import copy

import pytest
import torch
import torch.nn.functional as F
from kd_helpers import batch, build_kd, tiny_pair
from mmdet.registry import MODELS
from mmengine.config import ConfigDict

from mmdiode.models import DistillContext
from mmdiode.models.losses.output_kd import (binary_kl_with_log_probs,
                                             binary_kl_with_logits,
                                             softmax_kl_with_logits)
from mmdiode.testing import tiny_retinanet, tiny_yolov3
from mmdiode.testing.tiny_zoo import tiny_detector
from mmdiode.utils.cli import ConfigError

LOSSES = dict(
    yolov3=dict(
        mse=dict(type='OutputMSELoss'),
        soft=dict(type='YOLOv3OutputKDLoss', temperature=2.0)),
    faster_rcnn=dict(
        rpn=dict(type='DenseHeadKDLoss', module='rpn_head'),
        roi=dict(type='RoIHeadKDLoss', temperature=2.0, reg_loss='mse')),
    retinanet=dict(
        dense=dict(type='DenseHeadKDLoss', temperature=2.0, reg_loss='mse')))


def _distill_terms(losses):
    return {k: v for k, v in losses.items() if '.' in k}


def test_binary_kl_matches_its_definition_and_vanishes_at_agreement():
    s, t = torch.randn(50), torch.randn(50)
    tau = 2.0
    p, q = (t / tau).sigmoid(), (s / tau).sigmoid()
    expected = p * (p / q).log() + (1 - p) * ((1 - p) / (1 - q)).log()
    torch.testing.assert_close(binary_kl_with_logits(s, t, tau), expected)
    assert (binary_kl_with_logits(t, t, tau) == 0).all()
    assert (binary_kl_with_logits(s, t, tau) >= -1e-6).all()


def test_softmax_kl_matches_its_definition():
    s, t = torch.randn(7, 4), torch.randn(7, 4)
    p, q = (t / 3).softmax(-1), (s / 3).softmax(-1)
    torch.testing.assert_close(
        softmax_kl_with_logits(s, t, 3.0), (p * (p / q).log()).sum(-1))
    assert torch.allclose(softmax_kl_with_logits(t, t), torch.zeros(7))


def test_output_mse_is_the_sum_of_per_level_means():
    loss = MODELS.build(
        dict(type='OutputMSELoss', module='head', loss_weight=0.5))
    s = (torch.randn(2, 6, 4, 4), torch.randn(2, 6, 2, 2))
    t = (torch.randn(2, 6, 4, 4), torch.randn(2, 6, 2, 2))
    ctx = DistillContext(
        student_outs={'head': (s, )},
        teacher_outs={'head': (t, )},
        data_samples=[])
    expected = 0.5 * (F.mse_loss(s[0], t[0]) + F.mse_loss(s[1], t[1]))
    torch.testing.assert_close(loss(ctx)['loss_mse'], expected)
    ctx.teacher_outs['head'] = (t[:1], )
    with pytest.raises(ValueError, match='gives 2 tensors, the teacher 1'):
        loss(ctx)
    ctx.teacher_outs['head'] = ((t[0], t[1][..., :1]), )
    with pytest.raises(ValueError, match=r'tensor 1 has shape'):
        loss(ctx)
    with pytest.raises(KeyError, match='was not recorded'):
        loss(DistillContext(student_outs={}, teacher_outs={}, data_samples=[]))


@pytest.mark.parametrize('kind', ['yolov3', 'faster_rcnn', 'retinanet'])
def test_zero_when_the_teacher_is_the_student(kind, tmp_path):
    """Same architecture, weights and preprocessing: every term is 0."""
    student, _ = tiny_pair(kind)
    model = build_kd(
        student, copy.deepcopy(student), distill_losses=LOSSES[kind])
    model.teacher.load_state_dict(model.student.state_dict())
    model.eval()  # BN on running statistics in both
    terms = _distill_terms(model.loss(*batch()))
    assert len(terms) >= 2
    for name, value in terms.items():
        assert value.abs().item() < 1e-6, name


@pytest.mark.parametrize('kind', ['yolov3', 'faster_rcnn', 'retinanet'])
def test_wider_teacher_gives_finite_positive_terms_with_gradients(kind):
    student, teacher = tiny_pair(kind)
    model = build_kd(student, teacher, distill_losses=LOSSES[kind])
    terms = _distill_terms(model.loss(*batch()))
    for name, value in terms.items():
        assert torch.isfinite(value) and value > 0, name
    sum(terms.values()).backward()
    grads = [p.grad for p in model.student.parameters() if p.grad is not None]
    assert grads and sum(g.abs().sum() for g in grads) > 0


def _head_ctx(cfg, student_maps, teacher_maps):
    """A context around real heads (for layout attributes) with given maps."""
    student = MODELS.build(ConfigDict(cfg))
    teacher = MODELS.build(ConfigDict(cfg))
    ctx = DistillContext(
        student_outs={'bbox_head': student_maps},
        teacher_outs={'bbox_head': teacher_maps},
        data_samples=[],
        student=student,
        teacher=teacher)
    # DenseHeadKDLoss re-runs the teacher head (in the student's mode) into
    # this slot; given maps stand in for it.
    ctx.extra['bbox_head.teacher_outputs'] = teacher_maps
    return ctx


def test_yolov3_soft_terms_only_count_where_the_teacher_sees_objects():
    cfg = tiny_yolov3()
    a, k = 3, 8  # 3 anchors, 5 + 3 classes
    sizes = (2, 4, 8)
    teacher = [torch.randn(1, a * k, n, n) for n in sizes]
    for m in teacher:
        m.view(1, a, k, m.shape[-2], m.shape[-1])[:, :, 4] = -30.0
    # Exactly one confident object: level 0, anchor 1, cell (0, 0).
    teacher[0].view(1, a, k, 2, 2)[0, 1, 4, 0, 0] = 30.0
    loss = MODELS.build(dict(type='YOLOv3OutputKDLoss'))

    def terms(edit):
        student = [m.clone() for m in teacher]
        edit(student[0].view(1, a, k, 2, 2))
        return loss(_head_ctx(cfg, (tuple(student), ), (tuple(teacher), )))

    def elsewhere(v):  # class and box outputs of an empty cell
        v[0, 0, :4, 1, 1] += 3.0
        v[0, 0, 5:, 1, 1] += 3.0

    def at_object(v):
        v[0, 1, :4, 0, 0] += 3.0
        v[0, 1, 5:, 0, 0] += 3.0

    quiet = terms(elsewhere)
    assert quiet['loss_cls'] < 1e-6 and quiet['loss_box'] < 1e-6
    assert quiet['loss_obj'] == 0
    loud = terms(at_object)
    assert loud['loss_cls'] > 0.1 and loud['loss_box'] > 0.1
    obj = terms(lambda v: v[0, 0, 4].fill_(0.0))  # sigma 0.5, not ~0
    assert obj['loss_obj'] > 0 and obj['loss_cls'] == 0


def test_dense_regression_is_weighted_by_teacher_confidence():
    cfg = tiny_retinanet()
    sizes = (16, 8, 4, 2, 1)
    a, c = 3, 3
    t_cls = [torch.full((1, a * c, n, n), -30.0) for n in sizes]
    t_cls[2].view(1, a, c, 4, 4)[0, 2, 1, 3, 0] = 30.0  # one confident box
    t_reg = [torch.randn(1, a * 4, n, n) for n in sizes]
    loss = MODELS.build(dict(type='DenseHeadKDLoss', reg_loss='l1'))

    def reg_loss(level, anchor, y, x):
        s_reg = [m.clone() for m in t_reg]
        s_reg[level].view(1, a, 4, sizes[level], sizes[level])[0, anchor, :, y,
                                                               x] += 0.5
        ctx = _head_ctx(cfg, ([m.clone() for m in t_cls], s_reg),
                        (t_cls, t_reg))
        out = loss(ctx)
        assert out['loss_cls'] == 0
        return out['loss_reg']

    assert reg_loss(0, 0, 5, 5) < 1e-6  # a background anchor
    torch.testing.assert_close(
        reg_loss(2, 2, 3, 0), torch.tensor(2.0), atol=1e-4,
        rtol=1e-4)  # 4 coords x 0.5


def test_dense_layout_mismatch_is_a_clear_build_error():
    student = tiny_retinanet()
    student['bbox_head']['anchor_generator']['ratios'] = [1.0]
    with pytest.raises(ConfigError, match='num_base_priors=1'):
        build_kd(student, tiny_retinanet(), distill_losses=LOSSES['retinanet'])
    student = tiny_retinanet()
    student['bbox_head']['bbox_coder']['target_stds'] = [.1, .1, .2, .2]
    with pytest.raises(ConfigError, match='box coder stds differ'):
        build_kd(student, tiny_retinanet(), distill_losses=LOSSES['retinanet'])


def test_bad_loss_arguments_raise():
    with pytest.raises(ValueError, match='temperature must be > 0'):
        MODELS.build(dict(type='DenseHeadKDLoss', temperature=0))
    with pytest.raises(ValueError, match="reg_loss must be one of"):
        MODELS.build(dict(type='RoIHeadKDLoss', reg_loss='huber'))


def test_binary_kl_of_log_probabilities_matches_its_definition():
    s, t = -torch.rand(50) * 5, -torch.rand(50) * 5  # log probabilities
    p, q = t.exp(), s.exp()
    expected = p * (p / q).log() + (1 - p) * ((1 - p) / (1 - q)).log()
    torch.testing.assert_close(binary_kl_with_log_probs(s, t), expected)
    assert (binary_kl_with_log_probs(t, t) == 0).all()


def _same_weights_pair(family):
    """A KD wrapper whose teacher is its student (same config, weights)."""
    cfg = tiny_detector(family)
    loss = dict(out=dict(type='DenseHeadKDLoss'))
    if family == 'cascade_rcnn':
        loss = dict(roi=dict(type='RoIHeadKDLoss', stage=1, reg_loss='mse'))
    model = build_kd(cfg, copy.deepcopy(cfg), distill_losses=loss)
    model.teacher.load_state_dict(model.student.state_dict())
    return model


@pytest.mark.parametrize('family', ['fcos', 'yolox', 'ssd', 'cascade_rcnn'])
def test_zero_for_score_factor_softmax_and_cascade_heads(family):
    """FCOS (centerness) and YOLOX (objectness) distil the joint score, SSD
    a softmax, Cascade R-CNN a middle stage: 0 for the same weights."""
    model = _same_weights_pair(family).eval()
    # Cascade R-CNN's own terms have dots too ('s0.loss_cls').
    terms = {
        k: v
        for k, v in model.loss(*batch()).items()
        if k.startswith(('out.', 'roi.'))
    }
    assert len(terms) == 2
    for name, value in terms.items():
        assert value.abs().item() < 1e-6, name


def test_teacher_head_runs_in_the_students_mode():
    """FCOS with norm_on_bbox scales its box outputs by the stride in eval
    mode only: the teacher's head (eval) runs in the training student's
    mode, so identical weights give identical outputs."""
    model = _same_weights_pair('fcos').train()  # norm_eval: BN stays eval
    assert model.student.bbox_head.norm_on_bbox
    terms = _distill_terms(model.loss(*batch()))
    assert terms['out.loss_reg'].item() < 1e-6
    assert terms['out.loss_cls'].item() < 1e-6
    assert not model.teacher.bbox_head.training


def _detr_ctx(student_out, teacher_out, num_queries=6):
    cfg = tiny_detector('dino')
    cfg['num_queries'] = num_queries
    student = MODELS.build(copy.deepcopy(cfg))
    teacher = MODELS.build(copy.deepcopy(cfg))
    samples = batch(num_boxes=(1, 1))[1]
    return DistillContext(
        student_outs={'bbox_head': student_out},
        teacher_outs={'bbox_head': teacher_out},
        data_samples=samples,
        student=student,
        teacher=teacher)


def test_detr_query_loss_matches_queries_before_comparing():
    """(layers, N, Q, C) logits and boxes: a permutation of the teacher's
    queries (set prediction has no order) costs nothing, a changed query
    does; the student's leading (denoising) queries are ignored."""
    g = torch.Generator().manual_seed(0)
    cls = torch.randn(2, 2, 6, 3, generator=g)
    boxes = torch.rand(2, 2, 6, 4, generator=g) * 0.4 + 0.3
    perm = torch.tensor([3, 0, 5, 1, 4, 2])
    denoising = torch.randn(2, 2, 4, 3), torch.rand(2, 2, 4, 4)
    student = (torch.cat([denoising[0], cls], 2),
               torch.cat([denoising[1], boxes], 2))
    loss = MODELS.build(dict(type='DETRQueryKDLoss'))
    same = loss(_detr_ctx(student, (cls[:, :, perm], boxes[:, :, perm])))
    assert set(same) == {'loss_cls', 'loss_bbox', 'loss_iou'}
    for name, value in same.items():
        assert value.abs().item() < 1e-5, name
    shifted = boxes.clone()
    shifted[-1, 0, 2] = shifted[-1, 0, 2] * 0.5
    moved = loss(_detr_ctx((cls, shifted), (cls, boxes)))
    assert moved['loss_bbox'] > 0 and moved['loss_iou'] > 0
