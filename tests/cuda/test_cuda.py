"""CUDA tests: synthesis, false-positive sampling, distillation and the
data-free hook on the GPU, and CPU/GPU agreement of the losses.

Every test is skipped without CUDA. ``MMDIODE_TEST_DEVICE=cpu`` runs the
bodies on the CPU instead (a check of the code paths on a machine without a
GPU): mixed precision is then off (``DeepInversion(amp=True)`` is CUDA-only
and mmengine's ``AmpOptimWrapper`` asserts a GPU, so the tests that are
about AMP alone are skipped), and the CPU/GPU comparisons compare the CPU
with itself.
"""
import contextlib
import copy
import math
import os
import os.path as osp
import sys

import pytest
import torch
from mmdet.registry import MODELS
from mmengine.config import ConfigDict
from mmengine.optim import OptimWrapper
from torch.nn.modules.batchnorm import _BatchNorm

from mmdiode.models.task_modules.inversion import (BNStatisticsPrior,
                                                   DeepInversion,
                                                   FalsePositiveSampler)
from mmdiode.models.task_modules.inversion import bn_prior as bn_prior_module
from mmdiode.testing import (make_data_samples, tiny_retinanet, tiny_yolov3,
                             unscaled_metainfo)

TESTS = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, osp.join(TESTS, 'models'))
from kd_helpers import (FP_SAMPLING_ONCE, batch, build_kd,  # noqa: E402
                        tiny_pair)

DEVICE = os.environ.get('MMDIODE_TEST_DEVICE', 'cuda')
DEVICE_TYPE = torch.device(DEVICE).type
ON_CUDA = DEVICE_TYPE == 'cuda'
# Mixed precision (float16 autocast with a GradScaler) where it exists.
AMP = ON_CUDA

pytestmark = pytest.mark.skipif(
    ON_CUDA and not torch.cuda.is_available(), reason='needs CUDA')
needs_amp = pytest.mark.skipif(
    not ON_CUDA, reason='AMP test: mmengine\'s AmpOptimWrapper needs a GPU')

NO_AUGMENT = dict(flip_prob=0.0, brightness=0.0, contrast=0.0, erase_prob=0.0)
SIZE = 64


@pytest.fixture(scope='module', autouse=True)
def _registered():
    """mmdet's and mmdiode's modules in the registries, one torch thread."""
    torch.set_num_threads(1)
    from mmdet.utils import register_all_modules
    register_all_modules()
    import mmdiode  # noqa: F401


@contextlib.contextmanager
def _full_fp32():
    """Convolutions and matmuls without TF32 (cuDNN uses it for float32
    convolutions by default on Ampere and later), for comparisons with the
    CPU at float32 tolerances."""
    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    saved = cudnn.allow_tf32, matmul.allow_tf32
    cudnn.allow_tf32 = matmul.allow_tf32 = False
    try:
        yield
    finally:
        cudnn.allow_tf32, matmul.allow_tf32 = saved


def _teacher(builder, seed=0):
    """A tiny mmdet detector from ``mmdiode.testing``, in eval mode, with
    BatchNorm running statistics drawn at random (a fresh one has 0 / 1)."""
    torch.manual_seed(seed)
    model = MODELS.build(ConfigDict(builder())).eval()
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, _BatchNorm):
            m.running_mean.normal_(0.0, 0.2, generator=g)
            m.running_var.uniform_(0.5, 2.0, generator=g)
    return model


def _layouts():
    return [(torch.tensor([[8., 8., 40., 48.]]), torch.tensor([1])),
            (torch.tensor([[4., 30., 30., 60.], [34., 4., 62., 28.]]),
             torch.tensor([0, 2]))]


def _on_device(tensors):
    return all(t.device.type == DEVICE_TYPE for t in tensors)


def _tensors(value):
    """Every tensor in nested tuples / lists (a head's outputs)."""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (tuple, list)):
        return [t for v in value for t in _tensors(v)]
    return []


def _kd_model():
    """A YOLOv3 KDDetector (wider teacher, other normalisation) with the
    output-map MSE, on the CPU."""
    student, teacher = tiny_pair('yolov3')
    return build_kd(
        student, teacher, distill_losses=dict(out=dict(type='OutputMSELoss')))


def _raw_batch(seed=0):
    """A data batch as a dataloader gives it: raw uint8 images and samples
    with ground truth (the model's preprocessor moves it to the device)."""
    g = torch.Generator().manual_seed(seed)
    inputs = [
        torch.randint(0, 256, (3, SIZE, SIZE), generator=g, dtype=torch.uint8)
        for _ in range(2)
    ]
    boxes, labels = zip(*_layouts())
    return dict(
        inputs=inputs, data_samples=make_data_samples(boxes, labels, SIZE))


# ---------------------------------------------------------------------------
# 1. Synthesis with AMP and channels-last


def test_synthesis_with_amp_and_channels_last_lowers_the_loss(monkeypatch):
    """DeepInversion(amp=True, channels_last=True) on the GPU: the teacher
    runs in float16 on channels-last activations, the BN prior's per-channel
    statistics and its loss stay float32, the total loss falls and the
    images are finite.

    (On the CPU ``amp`` is off: the engine would ignore it with a warning.)
    """
    teacher = _teacher(tiny_yolov3).to(DEVICE)
    stats = []  # (input dtype, statistics dtype) of every BN call
    channel_stats = bn_prior_module._channel_stats

    def recording_channel_stats(x):
        out = channel_stats(x)
        stats.append((x.dtype, out.dtype))
        return out

    monkeypatch.setattr(bn_prior_module, '_channel_stats',
                        recording_channel_stats)
    first_bn = next(m for m in teacher.modules() if isinstance(m, _BatchNorm))
    bn_inputs = []
    handle = first_bn.register_forward_pre_hook(
        lambda module, args: bn_inputs.append(
            (args[0].dtype, args[0].device.type, args[0].is_contiguous(
                memory_format=torch.channels_last))))
    step_losses = []
    # 12 steps: the GradScaler's first scale (2**16) overflows float16
    # gradients of this teacher; it skips a few steps while it halves.
    engine = DeepInversion(
        teacher,
        stages=[dict(size=SIZE, iterations=12, lr=0.1)],
        augment=NO_AUGMENT,
        fp_sampling=dict(enable=False),
        amp=AMP,
        channels_last=True)
    try:
        result = engine.synthesize(
            _layouts(),
            torch.Generator().manual_seed(0),
            callback=lambda it, stage, losses: step_losses.append(losses))
    finally:
        handle.remove()

    assert result.restarts == 0  # no step had a non-finite loss
    assert result.valid.tolist() == [True, True]
    assert result.images.shape == (2, SIZE, SIZE, 3)
    assert result.images.dtype == torch.uint8
    assert result.images.device.type == 'cpu'  # results come to the CPU
    history = result.loss_history
    assert all(math.isfinite(v) for pair in history.values() for v in pair)
    assert history['loss'][1] < history['loss'][0]
    # The loop ran on the device, with float32 loss terms.
    assert len(step_losses) == 12
    for losses in step_losses:
        assert losses['loss'].device.type == DEVICE_TYPE
        assert losses['loss_bn'].dtype == torch.float32
        assert losses['loss'].dtype == torch.float32
    # The teacher's activations: half precision under AMP, channels last.
    expected = torch.float16 if AMP else torch.float32
    assert {dtype for dtype, _, _ in bn_inputs} == {expected}
    assert all(device == DEVICE_TYPE for _, device, _ in bn_inputs)
    assert all(channels_last for _, _, channels_last in bn_inputs)
    # The statistics are accumulated in float32 whatever the input dtype.
    assert stats and {out for _, out in stats} == {torch.float32}
    assert {dtype for dtype, _ in stats} == {expected}
    # The teacher is back in the contiguous format, on the device.
    assert all(p.is_contiguous() for p in teacher.parameters())
    assert _on_device(teacher.parameters())


# ---------------------------------------------------------------------------
# 2. False-positive sampling (NMS on the device)


def test_mmcv_nms_runs_on_the_device():
    """The NMS kernel that the teachers' predict() (and so false-positive
    sampling) uses: needs an mmcv built with CUDA ops on the GPU."""
    from mmcv.ops import batched_nms
    boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 11., 11.],
                          [20., 20., 30., 30.], [0., 0., 10., 10.]],
                         device=DEVICE)
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6], device=DEVICE)
    idxs = torch.tensor([0, 0, 0, 1], device=DEVICE)  # box 3: other class
    dets, keep = batched_nms(boxes, scores, idxs,
                             dict(type='nms', iou_threshold=0.5))
    assert keep.device.type == DEVICE_TYPE
    assert keep.tolist() == [0, 2, 3]
    torch.testing.assert_close(dets[:, 4].cpu(), torch.tensor([0.9, 0.7,
                                                               0.6]))


def test_false_positive_sampler_on_device():
    """FalsePositiveSampler.sample with a RetinaNet teacher on the device:
    the targets come first, then the teacher's own detections (its NMS ran
    on the device), all inside the image, on the targets' device."""
    teacher = _teacher(tiny_retinanet).to(DEVICE)
    sampler = FalsePositiveSampler(
        score_thr=0.0, iou_thr=0.35, min_area=0.0, max_area=1.0)
    meta = unscaled_metainfo(SIZE, SIZE)
    from mmdet.structures import DetDataSample
    boxes = [
        torch.tensor([[8., 8., 40., 40.]], device=DEVICE),
        torch.zeros(0, 4, device=DEVICE)
    ]
    labels = [
        torch.tensor([2], device=DEVICE),
        torch.zeros(0, dtype=torch.long, device=DEVICE)
    ]
    images = torch.randn(
        2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    new_boxes, new_labels = sampler.sample(
        teacher, images.to(DEVICE),
        [DetDataSample(metainfo=meta) for _ in range(2)], boxes, labels)
    assert _on_device(new_boxes + new_labels)
    assert torch.equal(new_boxes[0][:1], boxes[0])
    assert new_labels[0][0].item() == 2
    for b, lb, old in zip(new_boxes, new_labels, boxes):
        assert len(b) > len(old) and len(b) == len(lb)
        assert b.dtype == torch.float32 and lb.dtype == torch.long
        assert bool((b >= 0).all() and (b <= SIZE).all())
        assert bool(((lb >= 0) & (lb < 3)).all())


def test_synthesis_with_false_positive_sampling_on_device():
    """The engine's FP sampling step on the device (under float16 autocast
    with AMP): sampled targets are appended after the layouts' own."""
    engine = DeepInversion(
        _teacher(tiny_yolov3).to(DEVICE),
        stages=[dict(size=SIZE, iterations=3, lr=0.1)],
        fp_sampling=FP_SAMPLING_ONCE,
        amp=AMP)
    result = engine.synthesize(_layouts(), torch.Generator().manual_seed(0))
    assert result.valid.all()
    for (boxes, labels), out_boxes, out_labels in zip(_layouts(), result.boxes,
                                                      result.labels):
        assert out_boxes.device.type == 'cpu'
        assert len(out_boxes) > len(boxes)
        torch.testing.assert_close(out_boxes[:len(boxes)], boxes)
        assert torch.equal(out_labels[:len(labels)], labels)
        assert bool((out_boxes >= 0).all() and (out_boxes <= SIZE).all())


# ---------------------------------------------------------------------------
# 3. KDDetector on the device


def test_kd_detector_moves_the_teacher_and_trains_on_device():
    """``model.cuda()`` moves the teacher (a plain attribute, not a
    submodule) with the student; a train_step from raw uint8 images runs
    both on the device, updates the student only, and ``model.cpu()``
    brings the teacher back."""
    model = _kd_model()
    model = model.cuda() if DEVICE == 'cuda' else model.to(DEVICE)
    teacher = model.teacher
    assert _on_device(model.student.parameters())
    assert _on_device(model.student.buffers())
    assert _on_device(teacher.parameters())
    assert _on_device(teacher.buffers())  # BN statistics, mean / std
    assert not teacher.training
    assert not any(p.requires_grad for p in teacher.parameters())

    teacher_inputs = []
    handle = teacher.backbone.register_forward_pre_hook(
        lambda module, args: teacher_inputs.append(args[0].device.type))
    teacher_before = copy.deepcopy(teacher.state_dict())
    student_before = {
        k: v.detach().clone()
        for k, v in model.student.named_parameters()
    }
    model.train()
    optim_wrapper = OptimWrapper(
        torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9))
    try:
        log_vars = model.train_step(_raw_batch(), optim_wrapper)
    finally:
        handle.remove()
    assert teacher_inputs == [DEVICE_TYPE]
    assert 'out.loss_mse' in log_vars and 'loss_cls' in log_vars
    assert all(math.isfinite(float(v.detach())) for v in log_vars.values())
    assert float(log_vars['out.loss_mse'].detach()) > 0
    assert not teacher.training
    for k, v in teacher.state_dict().items():
        assert torch.equal(v, teacher_before[k]), k
    assert any(not torch.equal(p, student_before[k])
               for k, p in model.student.named_parameters())

    model.cpu()
    assert all(p.device.type == 'cpu' for p in teacher.parameters())
    assert all(b.device.type == 'cpu' for b in teacher.buffers())


# ---------------------------------------------------------------------------
# 4. A distillation step with AMP


@needs_amp
def test_kd_train_steps_with_amp_optim_wrapper():
    """mmengine's AmpOptimWrapper (what ``tools/train.py --amp`` selects):
    student and teacher heads run in float16, the loss terms are finite
    float32, and once dynamic loss scaling has halved its scale enough
    (it skips the steps whose gradients overflow) the student is updated;
    the teacher never is. The untrained tiny pair's objectness loss (~350)
    overflows float16 gradients down to a scale of 2**5: on an H200 the
    first update came at step 12 of mmengine's default 2**16 start, so the
    test allows 20 steps (a scale of 2**-4)."""
    from mmengine.optim import AmpOptimWrapper
    model = _kd_model().to(DEVICE)
    model.train()
    head_dtypes = dict(student=set(), teacher=set())

    def recorder(name):

        def hook(module, args, output):
            head_dtypes[name].update(t.dtype for t in _tensors(output))

        return hook

    handles = [
        model.student.bbox_head.register_forward_hook(recorder('student')),
        model.teacher.bbox_head.register_forward_hook(recorder('teacher'))
    ]
    wrapper = AmpOptimWrapper(
        optimizer=torch.optim.SGD(model.parameters(), lr=0.01))
    teacher_before = copy.deepcopy(model.teacher.state_dict())
    student_before = copy.deepcopy(model.student.state_dict())

    def student_changed():
        return any(not torch.equal(v, student_before[k])
                   for k, v in model.student.state_dict().items()
                   if v.is_floating_point() and 'running' not in k)

    steps = 0
    try:
        while steps < 20 and not student_changed():
            log_vars = model.train_step(_raw_batch(seed=steps), wrapper)
            steps += 1
            assert all(
                math.isfinite(float(v.detach())) for v in log_vars.values())
            assert log_vars['out.loss_mse'].dtype == torch.float32
    finally:
        for handle in handles:
            handle.remove()
    assert head_dtypes == dict(student={torch.float16},
                               teacher={torch.float16})
    assert student_changed(), f'no update in {steps} AMP steps'
    scale = wrapper.loss_scaler.get_scale()
    assert math.isfinite(scale) and scale > 0
    for k, v in model.teacher.state_dict().items():
        assert torch.equal(v, teacher_before[k]), k


# ---------------------------------------------------------------------------
# 5. DeepInversionHook in a Runner training on the device


def test_deep_inversion_hook_synthesizes_on_device(tmp_path, monkeypatch):
    """The data-free loop of tests/engine/hooks (tiny YOLOv3 pair, 32 px, 1
    initial batch + 1 round at iteration 2) trained by mmengine's Runner,
    which puts the model on the GPU: the hook's synthesis runs there."""
    if not ON_CUDA and torch.cuda.is_available():
        pytest.skip('the Runner trains on the GPU when there is one')
    sys.path.insert(0, osp.join(TESTS, 'engine', 'hooks'))
    from test_deep_inversion_hook import BATCH, _config

    calls = []
    synthesize = DeepInversion.synthesize

    def recording_synthesize(self, layouts, generator=None, callback=None):
        devices = set()
        result = synthesize(
            self,
            layouts,
            generator=generator,
            callback=lambda it, stage, losses: devices.add(losses['loss'].
                                                           device.type))
        calls.append(
            dict(
                teacher=next(self.teacher.parameters()).device.type,
                losses=devices,
                valid=result.valid.tolist()))
        return result

    monkeypatch.setattr(DeepInversion, 'synthesize', recording_synthesize)
    from mmengine.runner import Runner
    cfg = _config(tmp_path, max_iters=2)
    # mmengine keys its MessageHub, logger and visualizer on the name.
    cfg.experiment_name = f'cuda_datafree_{DEVICE_TYPE}'
    runner = Runner.from_cfg(cfg)
    runner.train()

    assert calls == [
        dict(teacher=DEVICE_TYPE, losses={DEVICE_TYPE}, valid=[True] * BATCH)
    ] * 2
    hook = next(h for h in runner.hooks
                if type(h).__name__ == 'DeepInversionHook')
    assert hook.counter == 2 * BATCH
    assert len(hook.pool.entries()) == 2 * BATCH
    model = runner.model
    assert _on_device(model.student.parameters())
    assert _on_device(model.teacher.parameters())
    hub = runner.message_hub
    assert hub.get_scalar('train/synth/pool_size').current() == 2 * BATCH
    for term in ('loss_bn', 'loss_task', 'loss'):
        assert math.isfinite(hub.get_scalar(f'train/synth/{term}').current())
    assert 'val/coco/bbox_mAP' in hub.log_scalars


# ---------------------------------------------------------------------------
# 6. CPU / GPU agreement


def test_bn_prior_loss_and_gradient_agree_with_the_cpu():
    """The BN prior of one teacher on one input: the same loss (rtol 1e-4)
    and input gradient (to 1e-3 of its largest entry: the float32 gradient
    of this teacher is that close to the float64 one, 6e-5 of the bound)
    on the CPU and on the device (TF32 off)."""
    cpu_teacher = _teacher(tiny_yolov3)
    cpu_teacher.requires_grad_(False)  # the frozen teacher's fused path
    dev_teacher = copy.deepcopy(cpu_teacher).to(DEVICE)
    x = torch.randn(
        2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))

    def prior_loss(teacher, device):
        images = x.to(device).requires_grad_(True)
        with BNStatisticsPrior(teacher) as prior:
            teacher.extract_feat(images)
            loss = prior.loss()
        grad, = torch.autograd.grad(loss, images)
        return loss.detach(), grad

    with _full_fp32():
        cpu_loss, cpu_grad = prior_loss(cpu_teacher, 'cpu')
        dev_loss, dev_grad = prior_loss(dev_teacher, DEVICE)
    assert dev_loss.device.type == DEVICE_TYPE
    assert dev_loss.dtype == torch.float32
    assert cpu_loss.item() > 0
    torch.testing.assert_close(dev_loss.cpu(), cpu_loss, rtol=1e-4, atol=0.0)
    torch.testing.assert_close(
        dev_grad.cpu(),
        cpu_grad,
        rtol=1e-3,
        atol=1e-3 * cpu_grad.abs().max().item())


def test_kd_losses_agree_with_the_cpu():
    """KDDetector.loss() of one model and batch (training mode) on the CPU
    and on the device (TF32 off): the OutputMSELoss term agrees to rtol
    1e-4, the student's detection terms to 1e-3 (its training-mode BN on
    2x2 maps of a batch of 2 amplifies rounding: an input noise of 1e-6
    moves loss_wh by 7e-5, out.loss_mse by 2e-6)."""
    cpu_model = _kd_model().train()
    dev_model = copy.deepcopy(cpu_model).to(DEVICE).train()
    inputs, samples = batch()

    def flat(losses):
        return {
            k: sum(v) if isinstance(v, list) else v
            for k, v in losses.items()
        }

    with _full_fp32():
        cpu_losses = flat(cpu_model.loss(inputs, copy.deepcopy(samples)))
        dev_losses = flat(
            dev_model.loss(
                inputs.to(DEVICE), [s.to(DEVICE) for s in samples]))
    assert set(dev_losses) == set(cpu_losses)
    assert 'out.loss_mse' in dev_losses and cpu_losses['out.loss_mse'] > 0
    for name, value in dev_losses.items():
        assert value.device.type == DEVICE_TYPE, name
        torch.testing.assert_close(
            value.detach().cpu(),
            cpu_losses[name].detach(),
            rtol=1e-4 if name == 'out.loss_mse' else 1e-3,
            atol=1e-6,
            msg=lambda m, name=name: f'{name}: {m}')
