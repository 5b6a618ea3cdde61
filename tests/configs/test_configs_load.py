"""Every shipped config loads with mmengine (``_base_`` chains, mmdet::)."""
import glob
import os.path as osp

import pytest
from mmengine.config import Config

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS = sorted(
    p for p in glob.glob(osp.join(ROOT, 'configs', '**', '*.py'),
                         recursive=True) if '/_base_/' not in p)


def test_configs_exist():
    names = {osp.relpath(p, osp.join(ROOT, 'configs')) for p in CONFIGS}
    assert {
        'digits/yolov3_teacher.py', 'digits/yolov3_student.py',
        'digits/faster-rcnn_teacher.py', 'digits/faster-rcnn_student.py',
        'digits/synth_diode_yolov3.py', 'digits/synth_moi_faster-rcnn.py'
    } <= names


@pytest.mark.parametrize('path', CONFIGS,
                         ids=[osp.relpath(p, ROOT) for p in CONFIGS])
def test_config_loads(path):
    cfg = Config.fromfile(path)
    assert cfg.get('custom_imports', {}).get('imports') == ['mmdiode']


def test_polish_config_extends_the_diode_recipe():
    configs = osp.join(ROOT, 'configs', 'digits')
    base = Config.fromfile(osp.join(configs, 'synth_diode_yolov3.py'))
    polish = Config.fromfile(
        osp.join(configs, 'synth_diode_yolov3_polish.py'))
    base_stages = base.synthesizer.stages
    assert polish.synthesizer.stages[:len(base_stages)] == base_stages
    last = polish.synthesizer.stages[-1]
    assert not last.augment and last.jitter == 0
    assert last.bn_weight > base.synthesizer.bn_prior.weight
