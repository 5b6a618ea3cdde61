"""KDDetector through real mmdet detectors (tiny configs, 64 px, batch 2)."""
import copy

import pytest
import torch
from kd_helpers import (CLASSES, TEACHER_PREPROCESSOR, batch, build_kd,
                        save_teacher, tiny_pair)
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmengine.structures import InstanceData

from mmdiode.models.utils import load_teacher_model_config
from mmdiode.testing import tiny_yolov3
from mmdiode.utils import CheckpointError

LOSSES = dict(
    yolov3=dict(out=dict(type='OutputMSELoss')),
    faster_rcnn=dict(
        rpn=dict(type='DenseHeadKDLoss', module='rpn_head'),
        roi=dict(type='RoIHeadKDLoss')),
    retinanet=dict(dense=dict(type='DenseHeadKDLoss')))
DISTILL_TERMS = dict(
    yolov3={'out.loss_mse'},
    faster_rcnn={
        'rpn.loss_cls', 'rpn.loss_reg', 'roi.loss_cls', 'roi.loss_reg'
    },
    retinanet={'dense.loss_cls', 'dense.loss_reg'})


def _total(losses):
    return sum(
        sum(v) if isinstance(v, list) else v for k, v in losses.items()
        if 'loss' in k)


@pytest.mark.parametrize('kind', ['yolov3', 'faster_rcnn', 'retinanet'])
def test_builds_trains_and_hides_teacher(kind):
    student, teacher = tiny_pair(kind)
    model = build_kd(student, teacher, distill_losses=LOSSES[kind])
    n_student = sum(p.numel() for p in model.student.parameters())
    assert sum(p.numel() for p in model.parameters()) == n_student
    assert not any(k.startswith('teacher') for k in model.state_dict())
    assert 'teacher' not in dict(model.named_children())
    assert model.data_preprocessor is model.student.data_preprocessor

    inputs, samples = batch()
    losses = model.loss(inputs, samples)
    assert {k for k in losses if '.' in k} == DISTILL_TERMS[kind]
    for value in losses.values():
        for v in value if isinstance(value, list) else [value]:
            assert torch.isfinite(v).all()
    # Recording wrapped forward() only while it ran.
    assert not any(
        'forward' in m.__dict__
        for m in [*model.student.modules(), *model.teacher.modules()])
    _total(losses).backward()
    assert all(p.grad is None for p in model.teacher.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0
               for p in model.student.parameters())


def test_teacher_loaded_frozen_eval_and_unchanged(tmp_path):
    student, teacher = tiny_pair('yolov3')
    ckpt = str(tmp_path / 'teacher.pth')
    saved = save_teacher(teacher, ckpt)
    model = build_kd(
        student,
        teacher,
        checkpoint=ckpt,
        classes=CLASSES,
        distill_losses=LOSSES['yolov3'])
    for k, v in model.teacher.state_dict().items():
        assert torch.equal(v, saved[k]), k
    assert all(not p.requires_grad for p in model.teacher.parameters())

    model.train()
    assert model.student.training and not model.teacher.training
    assert not any(m.training for m in model.teacher.modules())
    before = copy.deepcopy(model.teacher.state_dict())
    student_before = copy.deepcopy(model.student.state_dict())
    optim = torch.optim.SGD(model.parameters(), lr=0.1)
    _total(model.loss(*batch())).backward()
    optim.step()
    for k, v in model.teacher.state_dict().items():
        assert torch.equal(v, before[k]), k  # weights and BN statistics
    assert any(not torch.equal(v, student_before[k])
               for k, v in model.student.state_dict().items())

    model.to(torch.float64)  # the teacher follows the wrapper
    assert next(model.teacher.parameters()).dtype == torch.float64
    assert not model.teacher.training


def test_bad_teacher_checkpoint_is_a_clear_error(tmp_path):
    student, teacher = tiny_pair('yolov3')
    corrupt = tmp_path / 'bad.pth'
    corrupt.write_bytes(b'not a checkpoint')
    with pytest.raises(CheckpointError, match='cannot load checkpoint'):
        build_kd(
            student,
            teacher,
            checkpoint=str(corrupt),
            distill_losses=LOSSES['yolov3'])
    other = str(tmp_path / 'other.pth')
    save_teacher(tiny_yolov3(widen_factor=1.0), other)
    with pytest.raises(CheckpointError, match='fits .* of the model'):
        build_kd(
            student,
            teacher,
            checkpoint=other,
            distill_losses=LOSSES['yolov3'])


def test_teacher_input_equals_teacher_preprocessor_on_raw_images():
    student, teacher = tiny_pair('yolov3')
    teacher['data_preprocessor'] = dict(
        TEACHER_PREPROCESSOR, pad_size_divisor=64, pad_value=-1.0)
    model = build_kd(student, teacher, distill_losses=LOSSES['yolov3'])
    g = torch.Generator().manual_seed(0)
    # Two raw BGR images of different sizes: the batch gets padding.
    raw = [
        torch.randint(0, 256, (3, 64, 64), generator=g, dtype=torch.uint8),
        torch.randint(0, 256, (3, 40, 56), generator=g, dtype=torch.uint8)
    ]
    samples = [
        DetDataSample(metainfo=dict(img_shape=tuple(r.shape[1:]))) for r in raw
    ]

    def data():
        return dict(inputs=list(raw), data_samples=copy.deepcopy(samples))

    student_batch = model.data_preprocessor(data(), False)
    expected = model.teacher.data_preprocessor(data(), False)['inputs']
    mapped = model.teacher_inputs(student_batch['inputs'],
                                  student_batch['data_samples'])
    # The normalisations really differ (ImageNet RGB vs /255 BGR).
    assert not torch.allclose(student_batch['inputs'], mapped, atol=0.1)
    assert mapped.shape == expected.shape == (2, 3, 64, 64)
    torch.testing.assert_close(mapped, expected, atol=1e-5, rtol=1e-5)


def test_teacher_input_is_identity_for_the_same_preprocessor():
    student, teacher = tiny_pair('retinanet')
    model = build_kd(student, teacher, distill_losses=LOSSES['retinanet'])
    inputs, samples = batch()
    assert torch.equal(model.teacher_inputs(inputs, samples), inputs)


def _confident_yolo_teacher(model):
    """Biases the teacher's YOLO maps to an object of class 0 everywhere, so
    that its predict() returns confident boxes."""
    head = model.teacher.bbox_head
    with torch.no_grad():
        for conv in head.convs_pred:
            bias = conv.bias.view(head.num_base_priors, head.num_attrib)
            bias[:, 4] = 8.0  # objectness
            bias[:, 5] = 8.0  # class 0
            bias[:, 6:] = -8.0


@pytest.mark.parametrize('replace_gt', [False, True])
def test_pseudo_labels_become_gt_instances(replace_gt):
    student, teacher = tiny_pair('yolov3')
    model = build_kd(
        student,
        teacher,
        pseudo_label=dict(score_thr=0.5, replace_gt=replace_gt))
    _confident_yolo_teacher(model)
    inputs, samples = batch(num_boxes=(0, 2))  # image 0 has no labels
    gt_of_image_1 = samples[1].gt_instances.bboxes.clone()
    expected = model.predict_teacher(
        inputs, copy.deepcopy(samples), rescale=False)
    losses = model.loss(inputs, samples)
    assert torch.isfinite(_total(losses))

    for i in ([0, 1] if replace_gt else [0]):
        pred = expected[i].pred_instances
        # Clipped to the image; boxes left empty are dropped.
        boxes = pred.bboxes.clamp(min=0, max=inputs.shape[-1])
        keep = ((pred.scores > 0.5) & (boxes[:, 2] > boxes[:, 0]) &
                (boxes[:, 3] > boxes[:, 1]))
        assert keep.sum() > 0
        gt = samples[i].gt_instances
        torch.testing.assert_close(gt.bboxes, boxes[keep])
        assert (gt.labels == 0).all()
    if not replace_gt:
        assert torch.equal(samples[1].gt_instances.bboxes, gt_of_image_1)


def test_data_free_mode_without_targets():
    student, teacher = tiny_pair('yolov3')
    model = build_kd(
        student,
        teacher,
        det_loss_weight=0.0,
        distill_losses=dict(out=dict(type='OutputMSELoss')))
    inputs, samples = batch()
    for s in samples:  # nothing but image geometry
        del s.gt_instances
    losses = model.loss(inputs, samples)
    assert set(losses) == {'out.loss_mse'}
    losses['out.loss_mse'].backward()


def test_det_loss_weight_scales_the_detection_loss():
    student, teacher = tiny_pair('retinanet')
    model = build_kd(student, teacher, det_loss_weight=0.5).eval()
    inputs, samples = batch()
    weighted = model.loss(inputs, copy.deepcopy(samples))
    plain = model.student.loss(inputs, copy.deepcopy(samples))
    torch.testing.assert_close(weighted['loss_cls'],
                               [0.5 * v for v in plain['loss_cls']])


def test_gt_loss_weight_is_the_deprecated_name_of_det_loss_weight():
    student, teacher = tiny_pair('retinanet')
    with pytest.warns(DeprecationWarning, match='renamed det_loss_weight'):
        model = build_kd(student, teacher, gt_loss_weight=0.5)
    assert model.det_loss_weight == 0.5


def test_predict_and_tensor_modes_are_the_students():
    student, teacher = tiny_pair('faster_rcnn')
    model = build_kd(student, teacher, distill_losses=LOSSES['faster_rcnn'])
    model.eval()
    inputs, samples = batch()
    ours = model(inputs, copy.deepcopy(samples), mode='predict')
    theirs = model.student.predict(inputs, copy.deepcopy(samples))
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a.pred_instances.bboxes,
                                   b.pred_instances.bboxes)
    ours = model(inputs, copy.deepcopy(samples), mode='tensor')
    theirs = model.student._forward(inputs, copy.deepcopy(samples))
    torch.testing.assert_close(ours, theirs)


def test_class_mismatch_raises(tmp_path):
    student, _ = tiny_pair('yolov3')
    with pytest.raises(ValueError, match='class count mismatch'):
        build_kd(student, tiny_yolov3(num_classes=4), det_loss_weight=1.0)
    # Names from a full teacher config's dataset metainfo ...
    full = dict(
        model=tiny_yolov3(),
        train_dataloader=dict(
            dataset=dict(
                type='CocoDataset', metainfo=dict(classes=('a', 'b', 'x')))))
    with pytest.raises(ValueError, match='class name mismatch'):
        build_kd(student, full, classes=CLASSES)
    # ... and from the teacher checkpoint's meta.
    ckpt = str(tmp_path / 'teacher.pth')
    save_teacher(tiny_yolov3(), ckpt, classes=('x', 'y', 'z'))
    with pytest.raises(ValueError, match='class name mismatch'):
        build_kd(student, tiny_yolov3(), checkpoint=ckpt, classes=CLASSES)
    build_kd(student, full, classes=('a', 'b', 'x'))  # matching names build


def test_bad_arguments_raise():
    student, teacher = tiny_pair('yolov3')
    with pytest.raises(ValueError, match='no submodule "bbox_hed"'):
        build_kd(
            student,
            teacher,
            distill_losses=dict(
                out=dict(type='OutputMSELoss', module='bbox_hed')))
    with pytest.raises(ValueError, match='nothing to train'):
        build_kd(student, teacher, det_loss_weight=0.0)
    with pytest.raises(ValueError, match='needs det_loss_weight > 0'):
        build_kd(
            student,
            teacher,
            det_loss_weight=0.0,
            pseudo_label=dict(score_thr=0.3),
            distill_losses=LOSSES['yolov3'])
    with pytest.raises(ValueError, match='unknown pseudo_label keys'):
        build_kd(student, teacher, pseudo_label=dict(thr=0.3))
    with pytest.raises(TypeError, match='is not a BaseDistillLoss'):
        build_kd(student, teacher, distill_losses=dict(x=dict(type='MSELoss')))
    with pytest.raises(ValueError, match='unknown teacher keys'):
        MODELS.build(
            dict(
                type='KDDetector',
                student=student,
                teacher=dict(config=teacher, ckpt='x.pth')))


def test_mmdet_package_config_resolves():
    model_cfg, classes = load_teacher_model_config(
        'mmdet::yolo/yolov3_mobilenetv2_8xb24-320-300e_coco.py')
    assert model_cfg['type'] == 'YOLOV3'
    assert model_cfg['bbox_head']['num_classes'] == 80
    assert classes is None  # COCO's default classes are not in the config


def test_runner_trains_validates_teacher_once_and_tests(kd_run):
    # Validation logged the student's and, via TeacherEvalHook, the
    # teacher's COCO mAP; Runner.test() evaluated the student.
    assert 0.0 <= kd_run['student_map'] <= 1.0
    assert 0.0 <= kd_run['teacher_map'] <= 1.0
    assert 'coco/bbox_mAP' in kd_run['test_metrics']
    for k, v in kd_run['teacher_state'].items():  # frozen through training
        assert torch.equal(kd_run['teacher_after'][k], v), k
    # Our own fresh file: the plain loader is fine for inspecting it.
    ckpt = torch.load(
        kd_run['checkpoint'], map_location='cpu', weights_only=False)
    keys = set(ckpt['state_dict'])
    assert keys and all(
        k.startswith(('student.', 'distill_losses.')) for k in keys)
    assert any(k.startswith('distill_losses.feat.adapt') for k in keys)


def test_instance_data_pseudo_labels_keep_only_boxes_and_labels():
    student, teacher = tiny_pair('yolov3')
    model = build_kd(student, teacher, pseudo_label=dict(score_thr=0.5))
    _confident_yolo_teacher(model)
    inputs, samples = batch(num_boxes=(0, 0))
    model.loss(inputs, samples)
    for s in samples:
        assert isinstance(s.gt_instances, InstanceData)
        assert set(s.gt_instances.keys()) == {'bboxes', 'labels'}


def test_teacher_runs_only_as_far_as_the_recordings_need():
    # The RPN's input and FPN features: the teacher's RPN proposals and its
    # RoI head on them are never computed (DenseHeadKDLoss runs the
    # teacher's RPN head itself, RoIHeadKDLoss its box branch on the
    # student's RoIs, inside the loss).
    student, teacher = tiny_pair('faster_rcnn')
    model = build_kd(student, teacher, distill_losses=LOSSES['faster_rcnn'])
    calls = []
    model.teacher.roi_head.register_forward_hook(
        lambda *args: calls.append('roi_head'))
    model.teacher.rpn_head.register_forward_pre_hook(
        lambda *args: calls.append('rpn_head'))
    inputs, samples = batch()
    teacher_inputs, outs, results = model.forward_teacher(inputs, samples)
    assert calls == [] and results is None
    assert set(outs) == {'rpn_head:input', 'neck'}
    with torch.no_grad():
        feats = model.teacher.extract_feat(teacher_inputs)
    for got, want in zip(outs['rpn_head:input'][0], feats):
        torch.testing.assert_close(got, want)
    losses = model.loss(inputs, samples)  # both distillations still work
    assert calls == ['rpn_head']
    assert {'rpn.loss_cls', 'roi.loss_cls'} <= set(losses)
