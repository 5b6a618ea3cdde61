"""DeepInversion engine with real tiny YOLOv3, Faster R-CNN and RetinaNet."""
import pytest
import torch
from conftest import build_teacher, gn_teacher, two_layouts
from kd_helpers import FP_SAMPLING_ONCE
from mmdet.registry import TASK_UTILS

from mmdiode.models.task_modules.inversion import (DeepInversion,
                                                   SynthesisResult)

NO_AUGMENT = dict(flip_prob=0.0, brightness=0.0, contrast=0.0, erase_prob=0.0)
NO_FP = dict(enable=False)


def _engine(teacher, stages=(dict(size=64, iterations=6, lr=0.1), ), **kwargs):
    return DeepInversion(
        teacher, stages=list(stages), **{
            'fp_sampling': NO_FP,
            **kwargs
        })


@pytest.mark.parametrize('name', ['yolov3', 'faster_rcnn', 'retinanet'])
def test_every_teacher_lowers_the_total_loss(teachers, name):
    engine = _engine(teachers[name], augment=NO_AUGMENT)
    result = engine.synthesize(two_layouts(), torch.Generator().manual_seed(0))
    assert isinstance(result, SynthesisResult)
    assert result.images.shape == (2, 64, 64, 3)
    assert result.images.dtype == torch.uint8
    assert result.valid.tolist() == [True, True]
    history = result.loss_history
    assert {'loss', 'loss_task', 'loss_bn', 'loss_tv_l1',
            'loss_cls'} <= set(history)
    assert history['loss'][1] < history['loss'][0]
    assert [len(b) for b in result.boxes] == [1, 2]


def test_total_is_the_weighted_sum_of_the_terms(teachers):
    engine = _engine(
        teachers['retinanet'],
        stages=[dict(size=64, iterations=1, lr=0.1)],
        bn_prior=dict(weight=0.5),
        image_prior=dict(tv_l1=3.0, l2=2.0),
        task_loss=dict(weight=0.25, term_weights=dict(loss_cls=4.0)))
    initial = {
        k: v[0]
        for k, v in engine.synthesize(two_layouts(),
                                      torch.Generator().manual_seed(
                                          0)).loss_history.items()
    }
    task = 4.0 * initial['loss_cls'] + initial['loss_bbox']
    assert initial['loss_task'] == pytest.approx(task, rel=1e-5)
    assert initial['loss'] == pytest.approx(
        0.25 * task + 0.5 * initial['loss_bn'] + 3.0 * initial['loss_tv_l1'] +
        2.0 * initial['loss_l2'],
        rel=1e-5)
    assert 'loss_tv_l2' not in initial  # weight 0: not computed


def test_stage_weights_override_the_global_ones(teachers):
    engine = _engine(
        teachers['retinanet'],
        stages=[
            dict(size=64, iterations=1, lr=0.1),
            dict(size=64, iterations=1, lr=0.1, bn_weight=2.0,
                 task_weight=0.5)
        ],
        bn_prior=dict(weight=0.0),
        image_prior=dict(tv_l1=3.0))
    assert engine.uses_bn_prior
    history = engine.synthesize(two_layouts(),
                                torch.Generator().manual_seed(0)).loss_history
    first = {k: v[0] for k, v in history.items()}
    polish = {k: v[1] for k, v in history.items()}
    # Stage 0 keeps the global weights: BN computed (logged) but weighted 0.
    assert first['loss'] == pytest.approx(
        first['loss_task'] + 3.0 * first['loss_tv_l1'], rel=1e-5)
    assert polish['loss'] == pytest.approx(
        0.5 * polish['loss_task'] + 2.0 * polish['loss_bn'] +
        3.0 * polish['loss_tv_l1'],
        rel=1e-5)


def test_a_stage_without_augmentation_ignores_the_generator(teachers):
    heavy = dict(brightness=0.5, contrast=0.5, erase_prob=1.0)

    def first_losses(augment, seed):
        engine = _engine(
            teachers['retinanet'],
            stages=[dict(size=64, iterations=1, lr=0.1, augment=augment)],
            augment=heavy,
            init='mean')
        return engine.synthesize(two_layouts(), torch.Generator().manual_seed(
            seed)).loss_history['loss'][0]

    # Mean init draws nothing, so only the augmentations can differ.
    assert first_losses(False, 0) == first_losses(False, 1)
    assert first_losses(True, 0) != first_losses(True, 1)


def test_stages_upsample_to_the_final_size(teachers):
    calls = []
    engine = _engine(
        teachers['yolov3'],
        stages=[
            dict(size=32, iterations=3, lr=0.1, jitter=4),
            dict(size=64, iterations=2, lr=0.01, min_lr=0.001, jitter=8)
        ])
    assert engine.final_size == (64, 64)
    result = engine.synthesize(
        two_layouts(),
        torch.Generator().manual_seed(0),
        callback=lambda it, stage, losses: calls.append(
            (it, stage, losses['loss'].requires_grad)))
    assert calls == [(0, 0, False), (1, 0, False), (2, 0, False),
                     (3, 1, False), (4, 1, False)]
    assert result.images.shape == (2, 64, 64, 3)
    # Boxes went down to 32 px and back up: the layouts come back unchanged.
    for (boxes, labels), out_boxes, out_labels in zip(
            two_layouts(), result.boxes, result.labels):
        torch.testing.assert_close(out_boxes, boxes)
        assert torch.equal(out_labels, labels)


def test_false_positive_sampling_adds_targets(teachers):
    engine = _engine(
        teachers['yolov3'],
        stages=[dict(size=64, iterations=3, lr=0.1)],
        fp_sampling=FP_SAMPLING_ONCE)
    result = engine.synthesize(two_layouts(), torch.Generator().manual_seed(0))
    for (boxes, labels), out_boxes, out_labels in zip(
            two_layouts(), result.boxes, result.labels):
        assert len(out_boxes) > len(boxes)
        torch.testing.assert_close(out_boxes[:len(boxes)], boxes)
        assert torch.equal(out_labels[:len(labels)], labels)
        assert bool((out_boxes >= 0).all() and (out_boxes <= 64).all())


def _inject_nan(teacher, at_call, into='input', image=None):
    """Forward pre-hook on the backbone: NaN into its input or gradient."""
    state = dict(calls=0, inputs=[])

    def hook(module, args):
        state['inputs'].append(args[0].detach().clone())
        call, state['calls'] = state['calls'], state['calls'] + 1
        if call not in at_call:
            return None
        if into == 'input':
            return (args[0] * float('nan'), ) + args[1:]

        def nan_grad(grad):
            grad = grad.clone()
            grad[image] = float('nan')
            return grad

        # A non-leaf copy: without augmentation args[0] is the optimised
        # leaf itself, whose hooks would outlive this step.
        images = args[0] * 1.0
        images.register_hook(nan_grad)
        return (images, ) + args[1:]

    return teacher.backbone.register_forward_pre_hook(hook), state


def test_non_finite_loss_restarts_only_the_broken_images(teachers):
    teacher = teachers['retinanet']
    # A NaN gradient for image 1 at step 2 makes its pixels NaN; step 3's
    # loss is then NaN: skipped, image 1 re-initialised, image 0 kept.
    handle, state = _inject_nan(teacher, at_call={2}, into='grad', image=1)
    try:
        result = _engine(
            teacher,
            augment=NO_AUGMENT).synthesize(two_layouts(),
                                           torch.Generator().manual_seed(0))
    finally:
        handle.remove()
    inputs = state['inputs']
    assert result.restarts == 1 and result.valid.tolist() == [True, True]
    assert torch.isnan(inputs[3][1]).all() and torch.isfinite(
        inputs[3][0]).all()
    assert torch.equal(inputs[4][0], inputs[3][0])  # step 3 was skipped
    assert torch.isfinite(inputs[4][1]).all()  # fresh noise
    assert len(result.loss_history) > 0


def test_too_many_restarts_raise(teachers):
    teacher = teachers['yolov3']
    handle, _ = _inject_nan(teacher, at_call=set(range(100)))
    try:
        with pytest.raises(RuntimeError, match=r'non-finite.*max_restarts'):
            _engine(teacher, max_restarts=2).synthesize(two_layouts())
    finally:
        handle.remove()


def test_images_not_finite_at_the_end_are_invalid(teachers):
    teacher = teachers['yolov3']
    # The last step writes NaN into image 1; no later loss sees it.
    handle, _ = _inject_nan(teacher, at_call={5}, into='grad', image=1)
    try:
        result = _engine(teacher).synthesize(two_layouts(),
                                             torch.Generator().manual_seed(0))
    finally:
        handle.remove()
    assert result.valid.tolist() == [True, False]
    assert result.restarts == 0


def test_seeded_generator_reproduces_and_teacher_is_restored():
    # Faster R-CNN's RoI sampler draws from torch's global generator.
    teacher = build_teacher('faster_rcnn').train()
    flags = [p.requires_grad for p in teacher.parameters()]
    engine = _engine(
        teacher,
        stages=[
            dict(size=32, iterations=2, lr=0.1, jitter=4),
            dict(size=64, iterations=2, lr=0.01, jitter=8)
        ],
        fp_sampling=dict(start=1, end=3, interval=2, score_thr=0.0))
    global_state = torch.get_rng_state()
    first = engine.synthesize(two_layouts(), torch.Generator().manual_seed(7))
    assert torch.equal(torch.get_rng_state(), global_state)
    second = engine.synthesize(two_layouts(), torch.Generator().manual_seed(7))
    other = engine.synthesize(two_layouts(), torch.Generator().manual_seed(8))
    assert torch.equal(first.images, second.images)
    assert all(torch.equal(a, b) for a, b in zip(first.boxes, second.boxes))
    assert first.loss_history == second.loss_history
    assert not torch.equal(first.images, other.images)
    assert teacher.training
    assert [p.requires_grad for p in teacher.parameters()] == flags
    assert all(not m._forward_hooks for m in teacher.modules())


def test_fused_adam_by_default_gives_the_per_op_update(teachers):
    """optimizer fused=None takes torch's fused Adam on the CPU; the images
    equal those of the per-op Adam (fused=False)."""
    teacher = teachers['yolov3']
    steps = []
    original_step = torch.optim.Adam.step

    def recording_step(optimizer, *args, **kwargs):
        steps.append(optimizer.defaults['fused'])
        return original_step(optimizer, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch.optim.Adam, 'step', recording_step)
        fused = _engine(teacher).synthesize(two_layouts(),
                                            torch.Generator().manual_seed(3))
        per_op = _engine(
            teacher, optimizer=dict(fused=False)).synthesize(
                two_layouts(), torch.Generator().manual_seed(3))
    assert steps == [True] * 6 + [False] * 6
    assert torch.equal(fused.images, per_op.images)


def test_channels_last_and_amp_on_cpu(teachers):
    teacher = teachers['retinanet']
    engine = _engine(
        teacher,
        stages=[dict(size=64, iterations=2, lr=0.1)],
        channels_last=True,
        amp=True)
    with pytest.warns(UserWarning, match='amp=True is ignored'):
        result = engine.synthesize(two_layouts())
    assert result.valid.all()
    assert all(p.is_contiguous() for p in teacher.parameters())


def test_registry_build_and_merged_defaults(teachers):
    engine = TASK_UTILS.build(
        dict(
            type='DeepInversion',
            teacher=teachers['yolov3'],
            bn_prior=dict(weight=0.05),
            fp_sampling=dict(start=10)))
    assert isinstance(engine, DeepInversion)
    assert engine.bn_weight == 0.05 and engine.bn_cfg['p'] == 2
    assert engine.bn_cfg['first_bn_multiplier'] == 2.0
    assert engine.fp_sampler.start == 10 and engine.fp_sampler.end == 2800
    assert engine.final_size == (320, 320)
    assert [s['iterations'] for s in engine.stages] == [2500, 1500]
    assert engine.image_prior_weights['loss_tv_l1'] == 75.0
    assert engine.augment_cfg['flip_prob'] == 0.5


def test_bad_configuration_and_layouts(teachers):
    teacher = teachers['yolov3']
    with pytest.raises(ValueError, match='no BatchNorm'):
        DeepInversion(gn_teacher('retinanet'))
    with pytest.raises(ValueError, match='jitter per stage'):
        DeepInversion(teacher, augment=dict(jitter=3))
    with pytest.raises(ValueError, match=r"unknown keys \['sizes'\]"):
        DeepInversion(
            teacher, stages=[dict(sizes=3, size=64, iterations=1, lr=0.1)])
    with pytest.raises(ValueError, match='no BatchNorm'):
        # The BN prior is off globally but on in one stage.
        DeepInversion(
            gn_teacher('retinanet'),
            bn_prior=dict(weight=0.0),
            stages=[dict(size=64, iterations=1, lr=0.1, bn_weight=1.0)])
    with pytest.raises(ValueError, match='task_weight must be >= 0'):
        DeepInversion(
            teacher,
            stages=[dict(size=64, iterations=1, lr=0.1, task_weight=-1)])
    with pytest.raises(ValueError, match='image_prior: unknown keys'):
        DeepInversion(teacher, image_prior=dict(tv=1.0))
    engine = _engine(
        teacher,
        stages=[dict(size=64, iterations=1, lr=0.1)],
        task_loss=dict(term_weights=dict(loss_typo=2.0)))
    with pytest.raises(ValueError, match=r"loss_typo.*loss_cls"):
        engine.synthesize(two_layouts())
    engine = _engine(teacher)
    with pytest.raises(ValueError, match='inside the final 64x64'):
        engine.synthesize([(torch.tensor([[0., 0., 70.,
                                           10.]]), torch.tensor([0]))])
    with pytest.raises(ValueError, match='int64'):
        engine.synthesize([(torch.tensor([[0., 0., 7., 10.]]),
                            torch.tensor([0], dtype=torch.int32))])


def test_numpy_layouts_as_the_layout_sampler_writes_them(teachers):
    import numpy as np
    layouts = [(np.array([[8., 8., 40., 48.]],
                         dtype=np.float32), np.array([1], dtype=np.int64))]
    result = _engine(
        teachers['retinanet'], stages=[dict(size=64, iterations=1,
                                            lr=0.1)]).synthesize(layouts)
    assert result.boxes[0].tolist() == [[8., 8., 40., 48.]]
    assert result.labels[0].tolist() == [1]
