"""Adaptive DeepInversion's competition term with a real tiny YOLOv3 pair
(teacher and student with different input normalisations)."""
import pytest
import torch
from conftest import build_teacher, two_layouts
from kd_helpers import TEACHER_PREPROCESSOR

from mmdiode.models.task_modules.inversion import (DeepInversion,
                                                   StudentCompetition)
from mmdiode.testing import make_data_samples
from mmdiode.utils.cli import ConfigError

KL = dict(type='YOLOv3OutputKDLoss', box_weight=0.0)
ONE_STAGE = [dict(size=64, iterations=1, lr=0.1)]


def _student():
    """A narrower tiny YOLOv3 in training mode, ImageNet-normalised."""
    return build_teacher('yolov3', seed=1, widen_factor=0.25).train()


@pytest.fixture(scope='module')
def teacher(_registered):
    return build_teacher('yolov3', preprocessor=TEACHER_PREPROCESSOR)


def _engine(teacher, weight=2.0, **kwargs):
    return DeepInversion(teacher,
                         stages=kwargs.pop('stages', ONE_STAGE),
                         fp_sampling=dict(enable=False),
                         competition=dict(weight=weight, loss=KL),
                         **kwargs)


def test_the_term_is_subtracted_from_the_total(teacher):
    engine = _engine(teacher, image_prior=dict(tv_l1=3.0))
    engine.attach_student(_student())
    history = engine.synthesize(two_layouts(),
                                torch.Generator().manual_seed(0)).loss_history
    first = {k: v[0] for k, v in history.items()}
    assert first['loss_compete'] > 0
    assert first['loss'] == pytest.approx(
        first['loss_task'] + 0.1 * first['loss_bn'] +
        3.0 * first['loss_tv_l1'] - 2.0 * first['loss_compete'],
        rel=1e-5)


def test_alone_it_drives_teacher_and_student_apart(teacher):
    """With every other term at 0 the images move to where the two
    networks disagree more."""
    engine = _engine(teacher,
                     weight=1.0,
                     stages=[dict(size=64, iterations=8, lr=0.1)],
                     bn_prior=dict(weight=0.0),
                     image_prior=dict(tv_l1=0.0),
                     task_loss=dict(weight=0.0),
                     augment=dict(flip_prob=0.0, brightness=0.0,
                                  contrast=0.0, erase_prob=0.0))
    engine.attach_student(_student())
    start, end = engine.synthesize(
        two_layouts(), torch.Generator().manual_seed(0)).loss_history[
            'loss_compete']
    assert end > start


def test_the_student_is_left_as_it_was(teacher):
    student = _student()
    student.zero_grad()
    before = {k: v.clone() for k, v in student.state_dict().items()}
    flags = [p.requires_grad for p in student.parameters()]
    engine = _engine(teacher)
    engine.attach_student(student)
    engine.synthesize(two_layouts(), torch.Generator().manual_seed(0))
    assert student.training
    assert [p.requires_grad for p in student.parameters()] == flags
    assert all(p.grad is None for p in student.parameters())
    after = student.state_dict()
    # BatchNorm running statistics included: the student ran in eval mode.
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_off_by_default_and_without_a_student_it_says_why(teacher):
    off = DeepInversion(teacher, stages=ONE_STAGE,
                        fp_sampling=dict(enable=False))
    assert not off.competition.enabled
    off.attach_student(_student())  # a no-op
    assert 'loss_compete' not in off.synthesize(
        two_layouts(), torch.Generator().manual_seed(0)).loss_history
    with pytest.raises(ValueError, match='only DeepInversionHook'):
        _engine(teacher).synthesize(two_layouts())
    with pytest.raises(ValueError, match='needs loss'):
        StudentCompetition(weight=1.0)
    with pytest.raises(ValueError, match='>= 0'):
        StudentCompetition(weight=-1.0, loss=KL)
    with pytest.raises(TypeError, match='not a BaseDistillLoss'):
        StudentCompetition(weight=1.0, loss=dict(type='mmdet.L1Loss'))


def test_a_pair_the_divergence_cannot_compare_is_refused(teacher):
    engine = _engine(teacher)
    other = build_teacher('retinanet')
    with pytest.raises(ConfigError, match='YOLOv3OutputKDLoss'):
        engine.attach_student(other)
    with pytest.raises(ValueError, match=r"unknown keys \['wieght'\]"):
        DeepInversion(teacher, competition=dict(wieght=1.0))


def _detached(outs):
    if isinstance(outs, torch.Tensor):
        return outs.detach()
    if isinstance(outs, (list, tuple)):
        return type(outs)(_detached(o) for o in outs)
    return {k: _detached(v) for k, v in outs.items()}


def test_the_gradient_reaches_the_pixels_through_both_networks(teacher):
    """The divergence's pixel gradient changes when the teacher's
    recorded outputs are cut from the graph: the teacher's path counts."""
    engine = _engine(teacher)
    engine.attach_student(_student())
    competition = engine.competition
    samples = make_data_samples([torch.zeros(0, 4)] * 2,
                                [torch.zeros(0, dtype=torch.long)] * 2, 64)
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    grads = []
    for cut in (False, True):
        pixels = x.clone().requires_grad_(True)
        with competition.frozen_student(), \
                competition.recording(teacher) as outs:
            teacher._forward(pixels, samples)
        if cut:
            outs = _detached(outs)
        divergence = competition.disagreement(teacher, pixels, samples, outs)
        divergence.backward()
        grads.append(pixels.grad)
    assert grads[1].abs().sum() > 0  # the student's path alone
    assert not torch.allclose(grads[0], grads[1])
