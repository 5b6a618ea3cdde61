"""tools/train.py and tools/test.py on the digits configs, end to end.

A tiny digits-on-photos set is built in a temporary folder; the real teacher
configs train for one epoch through mmengine's Runner, resume from their
checkpoint (torch 2.13's safe loader) and evaluate with mmdet's CocoMetric.
"""
import os
import os.path as osp
import subprocess
import sys

import pytest

from benchmarks.digits.dataset import DigitsConfig, build_dataset
from mmdiode.testing import run_dist_tool

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def tool(name):
    return osp.join(ROOT, 'tools', name)


# The digits benchmark's configs, relative to configs/.
YOLOV3_TEACHER = 'detectors/yolov3-mv2_24e_digits.py'
FRCNN_TEACHER = 'detectors/faster-rcnn-r18_8e_digits.py'
YOLOV3_HGD = 'hgd/hgd_yolov3-mv2_yolov3-mv2-x0.5_24e_digits.py'
FRCNN_HGD = 'hgd/hgd_faster-rcnn-r18_faster-rcnn-r18-x0.5_8e_digits.py'


def config(name):
    return osp.join(ROOT, 'configs', name)


# One short epoch, no data workers (keeps the 2-core machine responsive).
FAST = [
    'train_cfg.max_epochs=1', 'train_cfg.val_interval=1',
    'train_dataloader.num_workers=0',
    'train_dataloader.persistent_workers=False',
    'val_dataloader.num_workers=0', 'val_dataloader.persistent_workers=False',
    'test_dataloader.num_workers=0',
    'test_dataloader.persistent_workers=False',
    'default_hooks.checkpoint.interval=1', 'param_scheduler.0.end=2'
]


@pytest.fixture(scope='module')
def workspace(tmp_path_factory):
    """A folder holding data/digits with a few images per split."""
    root = tmp_path_factory.mktemp('ws')
    build_dataset(
        str(root / 'data' / 'digits'),
        DigitsConfig(seed=0, num_images=dict(train=16, val=8, test=8)))
    return root


def run(args, cwd):
    env = dict(os.environ, OMP_NUM_THREADS='2')
    return subprocess.run([sys.executable] + args,
                          cwd=cwd,
                          env=env,
                          capture_output=True,
                          text=True,
                          timeout=600)


# tools/test.py's options here: no data workers.
TEST_OPTS = [
    '--cfg-options', 'test_dataloader.num_workers=0',
    'test_dataloader.persistent_workers=False'
]


def run_test(name, checkpoint, work_dir, cwd, *args):
    """tools/test.py on config ``name`` and ``checkpoint``."""
    return run([tool('test.py'),
                config(name), checkpoint, '--work-dir',
                str(work_dir), *args] + TEST_OPTS, cwd)


@pytest.mark.parametrize('name, batch', [(YOLOV3_TEACHER, 8),
                                         (FRCNN_TEACHER, 8)])
def test_train_resume_and_test(workspace, name, batch):
    work = str(workspace / 'work' / name)
    opts = FAST + [f'train_dataloader.batch_size={batch}']
    r = run(
        [tool('train.py'),
         config(name), '--work-dir', work, '--cfg-options'] + opts, workspace)
    assert r.returncode == 0, r.stderr[-3000:]
    ckpt = osp.join(work, 'epoch_1.pth')
    assert osp.exists(ckpt)
    # Validation ran through CocoMetric (an untrained model may score no
    # detection at all, so only the evaluation itself is checked).
    assert 'Epoch(val) [1]' in r.stdout + r.stderr

    # --resume loads the Runner checkpoint (message_hub, numpy) safely.
    r = run([
        tool('train.py'),
        config(name), '--work-dir', work, '--resume', ckpt, '--cfg-options'
    ] + opts[:-1] + ['train_cfg.max_epochs=2'], workspace)
    assert r.returncode == 0, r.stderr[-3000:]
    assert 'resumed epoch: 1' in r.stdout + r.stderr
    assert osp.exists(osp.join(work, 'epoch_2.pth'))

    r = run_test(name, ckpt, work, workspace, '--out',
                 osp.join(work, 'preds.pkl'))
    assert r.returncode == 0, r.stderr[-3000:]
    assert 'metrics_json=' in r.stdout
    assert osp.getsize(osp.join(work, 'preds.pkl')) > 0


def test_unknown_cfg_option_is_one_clear_error(workspace):
    r = run([
        tool('train.py'),
        config(YOLOV3_TEACHER), '--cfg-options', 'train_cfg.max_epoch=3'
    ], workspace)
    assert r.returncode == 2
    assert 'unknown --cfg-options key "train_cfg.max_epoch"' in r.stderr
    assert not osp.exists(workspace / 'work_dirs')


def test_missing_config_and_corrupt_checkpoint(workspace, tmp_path):
    r = run([tool('train.py'), 'configs/nope.py'], workspace)
    assert r.returncode == 2 and 'config file not found' in r.stderr
    bad = tmp_path / 'bad.pth'
    bad.write_bytes(b'not a checkpoint')
    r = run([tool('test.py'),
             config(YOLOV3_TEACHER),
             str(bad)], workspace)
    assert r.returncode == 2
    assert 'cannot load checkpoint' in r.stderr and 'bad.pth' in r.stderr


def _metrics(stdout):
    import json
    lines = [
        line for line in stdout.splitlines()
        if line.startswith('metrics_json=')
    ]
    assert lines, stdout[-3000:]
    return [json.loads(line[len('metrics_json='):]) for line in lines]


def test_dist_test_on_two_cpu_processes_scores_like_one(workspace):
    """tools/dist_test.sh without CUDA: 2 CPU processes (gloo) split the test
    split and CocoMetric gathers it; the committed teacher scores the same as
    in one process."""
    ckpt = osp.join(ROOT, 'checkpoints', 'digits_yolov3_teacher_fp16.pth')
    single = run_test(YOLOV3_TEACHER, ckpt, workspace / 'test_single',
                      workspace)
    assert single.returncode == 0, single.stderr[-3000:]
    dist = run_dist_tool(osp.join(ROOT, 'tools', 'dist_test.sh'),
                         [
                             config(YOLOV3_TEACHER), ckpt, 2,
                             '--work-dir', workspace / 'test_dist'
                         ] + TEST_OPTS,
                         cwd=workspace)
    assert dist.returncode == 0, (dist.stdout + dist.stderr)[-4000:]
    expected, = _metrics(single.stdout)
    assert expected['coco/bbox_mAP_50'] > 0  # a trained teacher detects
    for metrics in _metrics(dist.stdout):  # every rank gets the result
        assert metrics.keys() == expected.keys()
        for key, value in expected.items():
            assert metrics[key] == pytest.approx(value, abs=1e-3), key


def test_checkpoint_of_another_model_is_refused(workspace, tmp_path):
    """mmengine only warns when a checkpoint leaves the model unloaded: a
    random detector would be scored or fine-tuned. test.py, load_from and
    the KD teacher refuse it with one line naming how much fits."""
    yolo = osp.join(ROOT, 'checkpoints', 'digits_yolov3_teacher_fp16.pth')
    r = run_test(FRCNN_TEACHER, yolo, tmp_path / 'w', workspace)
    assert r.returncode == 2, r.stderr[-3000:]
    error, = [
        line for line in r.stderr.splitlines() if line.startswith('error:')
    ]
    assert 'fits 0 of the model' in error and '--allow-partial' in error
    assert 'metrics_json=' not in r.stdout
    r = run([
        tool('train.py'),
        config(FRCNN_TEACHER), '--work-dir',
        str(tmp_path / 't'), '--cfg-options', f'load_from={yolo}'
    ] + FAST, workspace)
    assert r.returncode == 2, r.stderr[-3000:]
    assert f'error: load_from {yolo} fits 0 of the model' in r.stderr
    assert not osp.exists(tmp_path / 't' / 'epoch_1.pth')
    r = run([
        tool('train.py'),
        config(FRCNN_HGD), '--work-dir',
        str(tmp_path / 'k'), '--cfg-options',
        f'model.teacher.checkpoint={yolo}'
    ] + FAST, workspace)
    assert r.returncode == 2, r.stderr[-3000:]
    error, = [
        line for line in r.stderr.splitlines() if line.startswith('error:')
    ]
    assert f'teacher checkpoint {yolo} fits 0 of' in error


def test_student_teacher_class_count_mismatch_is_one_error(
        workspace, tmp_path):
    r = run([
        tool('train.py'),
        config(YOLOV3_HGD), '--work-dir',
        str(tmp_path / 'k'), '--cfg-options',
        'model.student.bbox_head.num_classes=3', 'model.teacher.checkpoint=' +
        osp.join(ROOT, 'checkpoints', 'digits_yolov3_teacher_fp16.pth')
    ] + FAST, workspace)
    assert r.returncode == 2, r.stderr[-3000:]
    error, = [
        line for line in r.stderr.splitlines() if line.startswith('error:')
    ]
    assert 'class count mismatch' in error and 'Traceback' not in r.stderr
