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


def test_rtmdet_pair_configs_pair_their_heads():
    """The COCO RTMDet-l -> RTMDet-tiny configs: the output loss fits the
    two model-zoo heads, and the data-free one synthesizes with the recipe
    of the offline synthesis config."""
    import torch
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules

    import mmdiode  # noqa: F401
    from mmdiode.testing.tiny_zoo import mmdet_config_root
    register_all_modules()
    kd = Config.fromfile(
        osp.join(ROOT, 'configs', 'kd', 'rtmdet_l_to_tiny_coco.py'))
    teacher_path = kd.model.teacher.config
    assert teacher_path == 'mmdet::rtmdet/rtmdet_l_8xb32-300e_coco.py'
    teacher_cfg = Config.fromfile(
        osp.join(mmdet_config_root(), teacher_path.split('::')[1])).model
    assert kd.model.student.type == teacher_cfg.type == 'RTMDet'

    def detector(head_cfg):
        model = torch.nn.Module()
        model.bbox_head = MODELS.build(head_cfg)
        return model

    loss = MODELS.build(kd.model.distill_losses.out)
    loss.check_pair(detector(kd.model.student.bbox_head),
                    detector(teacher_cfg.bbox_head))

    datafree = Config.fromfile(osp.join(ROOT, 'configs', 'diode_rtmdet_kd.py'))
    synth = Config.fromfile(
        osp.join(ROOT, 'configs', 'synth', 'diode_rtmdet_l_coco.py'))
    assert datafree.model.teacher == kd.model.teacher == synth.teacher
    assert datafree.model.distill_losses == kd.model.distill_losses
    assert datafree.model.pseudo_label.replace_gt
    hooks = {h.type: h for h in datafree.custom_hooks}
    assert 'PipelineSwitchHook' not in hooks  # it would load COCO images
    assert hooks['DeepInversionHook'].synthesizer == synth.synthesizer
    layouts = dict(synth.layout_sampler)
    layouts.pop('img_size')
    assert datafree.train_dataloader.dataset.layout_sampler == layouts
