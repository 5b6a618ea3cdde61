"""tools/synthesize.py: a COCO data set from a tiny teacher, resumable.

The teacher is a tiny, randomly initialised YOLOv3 saved as a checkpoint
(fidelity numbers are meaningless for it; the bundled benchmark's trained
teachers are measured by the benchmark scripts, not here).
"""
import json
import os
import os.path as osp
import signal
import subprocess
import sys
import time

import pytest
import torch

from mmdiode.testing import (TINY_CLASSES, run_dist_tool, save_tiny_teacher,
                             tiny_yolov3, write_tiny_synthesis_config)

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOL = osp.join(ROOT, 'tools', 'synthesize.py')
CLASSES = TINY_CLASSES


def synthesize(cfg, out, work, extra=(), **popen):
    cmd = [
        sys.executable, TOOL,
        str(cfg), '--out',
        str(out), '--work-dir',
        str(work), '--device', 'cpu'
    ] + list(extra)
    env = dict(os.environ, OMP_NUM_THREADS='1')
    if popen:
        return subprocess.Popen(cmd, env=env, **popen)
    return subprocess.run(cmd,
                          env=env,
                          capture_output=True,
                          text=True,
                          timeout=600)


def load(out):
    with open(osp.join(out, 'annotations.json')) as f:
        return json.load(f)


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('synth')
    teacher = save_tiny_teacher(str(tmp / 'teacher.pth'))
    cfg = tmp / 'synth.py'
    write_tiny_synthesis_config(str(cfg), teacher)
    out = tmp / 'full'
    r = synthesize(cfg, out, tmp / 'work_full', ['--viz'])
    assert r.returncode == 0, r.stderr[-3000:]
    return tmp, cfg, out, r


def test_writes_a_coco_set_mmdet_loads(setup):
    tmp, cfg, out, r = setup
    coco = load(out)
    assert [c['name'] for c in coco['categories']] == list(CLASSES)
    assert [im['id'] for im in coco['images']] == list(range(1, 7))
    assert len(coco['annotations']) >= 6 * 4  # 2x2 tiles per image
    for name in ('fidelity.json', 'class_hist.png', 'box_size_hist.png',
                 'viz.png'):
        assert osp.getsize(out / name) > 0
    assert 'fidelity: teacher bbox_mAP=' in r.stdout
    # The BN prior of the written images against the initial noise.
    with open(out / 'fidelity.json') as f:
        bn = json.load(f)['bn_prior']
    assert bn['initial'] > 0 and bn['final'] > 0
    assert bn['drop'] == pytest.approx(bn['initial'] / bn['final'])
    losses = [
        json.loads(line)
        for line in open(tmp / 'work_full' / 'losses_rank0.jsonl')
    ]
    assert [e['batch'] for e in losses] == [0, 1, 2]
    assert {'loss', 'loss_bn', 'loss_task'} <= set(losses[0]['final'])
    from mmdet.datasets import CocoDataset
    ds = CocoDataset(data_root=str(out),
                     ann_file='annotations.json',
                     data_prefix=dict(img=''),
                     metainfo=dict(classes=CLASSES),
                     pipeline=[],
                     test_mode=True)
    assert len(ds) == 6


def test_killed_and_restarted_run_gives_the_same_data_set(setup):
    tmp, cfg, out, _ = setup
    resumed = tmp / 'resumed'
    proc = synthesize(cfg,
                      resumed,
                      tmp / 'work_resumed',
                      stdout=subprocess.DEVNULL,
                      stderr=subprocess.DEVNULL)
    first = resumed / 'shards' / 'rank0' / 'batch_000000.json'
    deadline = time.time() + 300
    while not first.exists() and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (resumed / 'annotations.json').exists()
    r = synthesize(cfg, resumed, tmp / 'work_resumed')
    assert r.returncode == 0, r.stderr[-3000:]
    a, b = load(out), load(resumed)
    assert a['images'] == b['images']
    assert a['annotations'] == b['annotations']
    leftovers = [f for d, _, fs in os.walk(resumed) for f in fs if '.tmp' in f]
    assert leftovers == []


def test_two_ranks_write_the_same_data_set_as_one(setup):
    """torchrun with 2 CPU processes (gloo): each rank synthesizes every
    other batch, rank 0 merges; layouts and seeds depend on the global batch
    index only, so the merged set equals the single-process one."""
    tmp, cfg, out, _ = setup
    sharded = tmp / 'sharded'
    r = run_dist_tool(osp.join(ROOT, 'tools', 'dist_synthesize.sh'), [
        cfg, 2, '--out', sharded, '--work-dir', tmp / 'work_sharded',
        '--device', 'cpu'
    ],
                      cwd=ROOT)
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    # Batches 0 and 2 on rank 0, batch 1 on rank 1.
    shards = {
        rank: sorted(os.listdir(sharded / 'shards' / f'rank{rank}'))
        for rank in (0, 1)
    }
    assert [f for f in shards[0] if f.endswith('.json')
            ] == ['batch_000000.json', 'batch_000002.json']
    assert [f for f in shards[1]
            if f.endswith('.json')] == ['batch_000001.json']
    a, b = load(out), load(sharded)
    assert a['images'] == b['images']
    assert a['annotations'] == b['annotations']
    for image in a['images']:
        assert (out / image['file_name']).read_bytes() == (
            sharded / image['file_name']).read_bytes(), image['file_name']
    assert r.stdout.count('fidelity: teacher bbox_mAP=') == 1  # rank 0 only


def test_restart_with_other_settings_is_refused(setup):
    tmp, cfg, out, _ = setup
    r = synthesize(cfg, out, tmp / 'work_other', ['--num-images', '8'])
    assert r.returncode != 0
    assert 'num_images' in r.stderr


def test_bad_input_gives_one_clear_error(setup, tmp_path):
    _, cfg, _, _ = setup
    r = synthesize(
        cfg, tmp_path / 'o', tmp_path / 'w',
        ['--teacher-ckpt', str(tmp_path / 'missing.pth')])
    assert r.returncode == 2
    assert 'teacher checkpoint not found' in r.stderr
    bad = tmp_path / 'corrupt.pth'
    bad.write_bytes(b'\x00' * 100)
    r = synthesize(cfg, tmp_path / 'o', tmp_path / 'w',
                   ['--teacher-ckpt', str(bad)])
    assert r.returncode == 2 and 'cannot load checkpoint' in r.stderr
    # --out naming an existing file: refused, the file left as it was.
    taken = tmp_path / 'taken.txt'
    taken.write_text('keep me')
    r = synthesize(cfg, taken, tmp_path / 'w')
    assert r.returncode == 2 and 'is a file, not a folder' in r.stderr
    assert taken.read_text() == 'keep me'


def test_teacher_labels_write_the_teachers_detections(setup, tmp_path):
    """synthesis.teacher_labels: beside the targets, the teacher's own
    detections on the written images (the teacher-agreement set), the same
    as write_teacher_annotations computes on those images."""
    _, cfg, _, _ = setup
    labelled = tmp_path / 'labelled.py'
    labelled.write_text(cfg.read_text() + (
        "synthesis = dict(num_images=4, batch_size=2, seed=1000,\n"
        "                 teacher_labels=dict(score_thr=0.2))\n"))
    out = tmp_path / 'agreement'
    r = synthesize(labelled, out, tmp_path / 'work')
    assert r.returncode == 0, r.stderr[-3000:]
    with open(out / 'teacher_annotations.json') as f:
        written = json.load(f)
    assert written['images'] == load(out)['images']
    assert written['info']['score_thr'] == 0.2
    assert all(a['score'] >= 0.2 for a in written['annotations'])
    from mmdet.registry import MODELS
    from mmengine.config import ConfigDict

    from mmdiode.evaluation import write_teacher_annotations
    teacher = MODELS.build(ConfigDict(tiny_yolov3(num_classes=3)))
    ckpt = torch.load(setup[0] / 'teacher.pth', weights_only=False)
    teacher.load_state_dict(ckpt['state_dict'])
    again = write_teacher_annotations(teacher,
                                      str(out),
                                      out_file='again.json',
                                      score_thr=0.2)
    with open(again) as f:
        expected = json.load(f)['annotations']
    # Equal up to float rounding (the tool ran with one thread).
    assert len(expected) == len(written['annotations']) > 0
    for a, b in zip(written['annotations'], expected):
        assert (a['id'], a['image_id'],
                a['category_id']) == (b['id'], b['image_id'], b['category_id'])
        assert a['bbox'] == pytest.approx(b['bbox'], abs=1e-3)
        assert a['score'] == pytest.approx(b['score'], abs=1e-5)
