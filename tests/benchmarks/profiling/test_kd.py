"""tools/benchmark.py kd and benchmarks.profiling.kd on real models."""
import os.path as osp
import re

import pytest
import torch
from mmdet.registry import MODELS
from mmdet.utils import register_all_modules
from mmengine.config import Config
from tool_loader import load_tool

from benchmarks.profiling import kd as kd_benchmark
from mmdiode.testing import tiny_yolov3

ROOT = osp.abspath(osp.join(osp.dirname(__file__), *[osp.pardir] * 3))
CONFIGS = osp.join(ROOT, 'configs')
YOLOV3_HGD = osp.join(CONFIGS, 'hgd',
                      'hgd_yolov3-mv2_yolov3-mv2-x0.5_24e_digits.py')


def load_benchmark_tool():
    return load_tool('benchmark')


@pytest.fixture
def one_thread():
    """The tool sets torch's global thread count; restore it."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_kd_command_times_a_digits_config(tmp_path, monkeypatch, capsys,
                                          one_thread):
    # From another working dir: the teacher checkpoint path is missing
    # there (random teacher, with a note); the teacher config still loads.
    monkeypatch.chdir(tmp_path)
    rc = load_benchmark_tool().main([
        'kd', '--config',
        YOLOV3_HGD, '--iters', '2', '--warmup',
        '1', '--batch-size', '2', '--threads', '1'
    ])
    assert rc == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith(
        'note: teacher checkpoint '
        'checkpoints/digits_yolov3_teacher_fp16.pth not found')
    assert 'threads: 1' in lines
    assert 'batch: 2 x 3 x 128 x 128, 2 timed step pairs after 1 warm-up, ' \
        'interleaved' in lines
    medians = dict(
        re.fullmatch(r'median (\w+): ([0-9.]+) s', line).groups()
        for line in lines if line.startswith('median '))
    assert set(medians) == {
        'kd_step', 'student_step', 'teacher_forward', 'baseline_step'
    }
    assert all(float(v) > 0 for v in medians.values())
    assert re.fullmatch(r'peak_rss: \d+ MiB', lines[-2])
    match = re.fullmatch(r'overhead_ratio=([0-9.]+)', lines[-1])
    assert match and float(match.group(1)) > 0
    assert torch.get_num_threads() == 1


def test_kd_command_errors(capsys, one_thread):
    tool = load_benchmark_tool()
    rc = tool.main(
        ['kd', '--config',
         osp.join(CONFIGS, 'detectors', 'yolov3-mv2-x0.5_24e_digits.py'),
         '--iters', '1'])
    assert rc == 2
    assert 'not a KDDetector' in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        tool.main(['kd', '--config', 'x.py', '--iters', '0'])
    assert e.value.code == 2
    assert '--iters: must be >= 1, got 0' in capsys.readouterr().err


def test_random_detection_batch():
    batch = kd_benchmark.random_detection_batch(
        4, (64, 96), num_classes=10, max_boxes=3, seed=1)
    assert len(batch['inputs']) == len(batch['data_samples']) == 4
    for image, sample in zip(batch['inputs'], batch['data_samples']):
        assert image.shape == (3, 64, 96) and image.dtype == torch.uint8
        assert sample.metainfo['img_shape'] == (64, 96)
        boxes, labels = sample.gt_instances.bboxes, sample.gt_instances.labels
        assert 1 <= len(boxes) <= 3 and len(labels) == len(boxes)
        assert (boxes[:, :2] >= 0).all()
        assert (boxes[:, 2:] > boxes[:, :2]).all()
        assert (boxes[:, 2] <= 96).all() and (boxes[:, 3] <= 64).all()
        assert ((labels >= 0) & (labels < 10)).all()
    again = kd_benchmark.random_detection_batch(
        4, (64, 96), num_classes=10, max_boxes=3, seed=1)
    assert torch.equal(batch['inputs'][0], again['inputs'][0])


def test_input_size_of_configs():
    assert kd_benchmark.input_size_of(
        Config.fromfile(YOLOV3_HGD)) == (128, 128)
    # mmdet's scales are (width, height).
    coco = Config.fromfile(
        osp.join(CONFIGS, 'hgd',
                 'hgd_faster-rcnn-r101_faster-rcnn-r50_1x_coco.py'))
    assert kd_benchmark.input_size_of(coco) == (800, 1333)


def test_time_kd_overhead_on_a_tiny_pair(one_thread):
    torch.set_num_threads(1)
    register_all_modules()
    model = MODELS.build(
        dict(
            type='KDDetector',
            student=tiny_yolov3(widen_factor=0.25),
            teacher=dict(
                config=tiny_yolov3(widen_factor=0.5), checkpoint=None),
            distill_losses=dict(
                out=dict(type='YOLOv3OutputKDLoss'),
                hgd=dict(
                    type='HGDLoss',
                    student_channels=[8, 24, 80, 24, 24, 24],
                    teacher_channels=[16, 48, 160, 48, 48, 48])))).train()
    teacher_before = {
        k: v.clone()
        for k, v in model.teacher.state_dict().items()
    }
    student_before = model.student.bbox_head.convs_pred[0].weight.clone()
    batch = kd_benchmark.random_detection_batch(
        2, (64, 64), kd_benchmark.num_classes_of(model))
    timings = kd_benchmark.time_kd_overhead(
        model,
        batch,
        dict(optimizer=dict(type='SGD', lr=1e-3, momentum=0.9)),
        iters=3,
        warmup=1)
    assert len(timings.kd_step) == len(timings.baseline_step) == len(
        timings.teacher_forward) == 3
    assert all(0 < t < b for t, b in zip(timings.teacher_forward,
                                         timings.baseline_step))
    medians = timings.medians()
    assert timings.overhead_ratio == pytest.approx(
        medians['kd_step'] / medians['baseline_step'])
    # Both steps trained the student; the teacher stayed frozen.
    assert not torch.equal(student_before,
                           model.student.bbox_head.convs_pred[0].weight)
    for k, v in model.teacher.state_dict().items():
        assert torch.equal(v, teacher_before[k]), k
    # The batch itself was not modified by the steps (fresh copies).
    assert 'batch_input_shape' not in batch['data_samples'][0].metainfo
