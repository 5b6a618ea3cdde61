"""tools/analysis_tools/competition_probe.py on a tiny on-the-fly data-free
config (tiny YOLOv3 pair with different normalisations): one row per
weight, the term only where its weight is on, and one error line for a
config without the hook."""
import json
import os.path as osp
import subprocess
import sys

import pytest
import torch
from mmdet.utils import register_all_modules
from mmengine.config import Config

sys.path.insert(0, osp.join(osp.dirname(osp.dirname(__file__)), 'models'))
from kd_helpers import (CLASSES, make_tiny_coco, runner_config,  # noqa: E402
                        save_teacher, tiny_pair)

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOL = osp.join(ROOT, 'tools', 'analysis_tools', 'competition_probe.py')


@pytest.fixture(scope='module', autouse=True)
def _registered():
    register_all_modules()
    import mmdiode  # noqa: F401


def _config(tmp_path, with_hook=True) -> str:
    student, teacher = tiny_pair('yolov3')
    teacher_ckpt = str(tmp_path / 'teacher.pth')
    save_teacher(teacher, teacher_ckpt)
    model = dict(type='KDDetector', student=student,
                 teacher=dict(config=teacher, checkpoint=teacher_ckpt),
                 distill_losses=dict(out=dict(type='OutputMSELoss')),
                 classes=CLASSES)
    coco = make_tiny_coco(str(tmp_path / 'coco'), num_images=2)
    cfg = runner_config(model, coco, str(tmp_path / 'work'))
    if with_hook:
        cfg['train_dataloader']['dataset'] = dict(
            type='BoxSamplerDataset',
            layout_sampler=dict(type='BoxLayoutSampler', min_size=0.3,
                                max_size=0.8),
            num_samples=8, img_size=32, seed=1,
            pipeline=[dict(type='PackDetInputs')])
        cfg['custom_hooks'] = [dict(
            type='DeepInversionHook',
            synthesizer=dict(
                type='DeepInversion',
                stages=[dict(size=32, iterations=3, lr=0.1)],
                fp_sampling=dict(enable=False),
                competition=dict(weight=0.0, loss=dict(
                    type='YOLOv3OutputKDLoss', box_weight=0.0))))]
    path = str(tmp_path / 'datafree.py')
    Config(cfg).dump(path)
    return path


def _checkpoint(config: str, tmp_path) -> str:
    from mmdet.registry import MODELS
    model = MODELS.build(Config.fromfile(config).model)
    path = str(tmp_path / 'student.pth')
    torch.save(dict(state_dict=model.state_dict()), path)
    return path


def _run(*args):
    return subprocess.run([sys.executable, TOOL, *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)


def test_one_row_per_weight(tmp_path):
    config = _config(tmp_path)
    out = tmp_path / 'probe.json'
    r = _run(config, _checkpoint(config, tmp_path), '--weights', 0, 5,
             '--num-images', 2, '--out', out)
    assert r.returncode == 0, r.stderr[-3000:]
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith('weight=')]
    assert [ln.split()[0] for ln in lines] == ['weight=0', 'weight=5']
    rows = json.loads(out.read_text())['rows']
    assert [row['weight'] for row in rows] == [0.0, 5.0]
    for row in rows:
        assert 0.0 <= row['found'] <= 1.0 and row['divergence'] >= 0
    assert 'loss_compete' not in rows[0]['losses']
    assert 'loss_compete' in rows[1]['losses']


def test_a_config_without_the_hook_is_one_error_line(tmp_path):
    config = _config(tmp_path, with_hook=False)
    r = _run(config, _checkpoint(config, tmp_path))
    assert r.returncode == 2
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith('error:')]
    assert len(errors) == 1 and 'no DeepInversionHook' in errors[0], r.stderr
