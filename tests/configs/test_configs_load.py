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
        'detectors/yolov3-mv2_24e_digits.py',
        'detectors/yolov3-mv2-x0.5_24e_digits.py',
        'detectors/faster-rcnn-r18_8e_digits.py',
        'detectors/faster-rcnn-r18-x0.5_8e_digits.py',
        'diode/diode_yolov3-mv2_synth_digits.py',
        'moi/moi_faster-rcnn-r18_synth_digits.py'
    } <= names


@pytest.mark.parametrize('path', CONFIGS,
                         ids=[osp.relpath(p, ROOT) for p in CONFIGS])
def test_config_loads(path):
    cfg = Config.fromfile(path)
    assert cfg.get('custom_imports', {}).get('imports') == ['mmdiode']
    # The replay pool follows the run's work_dir: a BoxSamplerDataset
    # trained with a DeepInversionHook leaves pool_dir to it
    # (<work_dir>/pool); one without the hook must name its folder.
    box_set = cfg.get('train_dataloader', {}).get('dataset')
    while box_set and box_set.get('type') != 'BoxSamplerDataset':
        box_set = box_set.get('dataset')
    if box_set:
        hooks = {h.type for h in cfg.get('custom_hooks', [])}
        assert ('pool_dir' in box_set) != ('DeepInversionHook' in hooks)


@pytest.mark.parametrize('recipe,polished', [
    ('diode_yolov3-mv2_synth_digits.py',
     'diode_yolov3-mv2_synth-polish_digits.py'),
    ('diode_yolov3-mv2_synth-kd_digits.py',
     'diode_yolov3-mv2_synth-kd-polish_digits.py'),
])
def test_polish_config_extends_its_recipe(recipe, polished):
    configs = osp.join(ROOT, 'configs', 'diode')
    base = Config.fromfile(osp.join(configs, recipe))
    polish = Config.fromfile(osp.join(configs, polished))
    base_stages = base.synthesizer.stages
    assert polish.synthesizer.stages[:len(base_stages)] == base_stages
    last = polish.synthesizer.stages[-1]
    assert not last.augment and last.jitter == 0
    assert last.bn_weight > base.synthesizer.bn_prior.weight


def test_amortised_noise_config_only_adds_noise_to_the_start():
    """The -noise config is the amortised recipe with the two noise
    weights of its start raised; nothing else changes."""
    configs = osp.join(ROOT, 'configs', 'diode')
    plain, noisy = (Config.fromfile(
        osp.join(configs, f'diode_yolov3-mv2_synth-kd-amortised{s}_digits.py')
    ).to_dict() for s in ('', '-noise'))
    weights = [
        cfg['synthesizer']['recombine']['amortised'].pop(key)
        for cfg in (plain, noisy) for key in ('noise', 'object_noise')
    ]
    assert weights[:2] == [0.0, 0.0] and min(weights[2:]) > 0
    assert noisy == plain


def test_short_diode_schedule_only_shortens_the_recipe():
    """The short schedule keeps the recipe's stages (sizes, learning rates,
    jitter) and its false-positive sampling at the same fractions (20 % to
    70 %, to the iteration) of the shorter schedule; nothing else changes."""
    configs = osp.join(ROOT, 'configs', 'diode')
    recipe = Config.fromfile(
        osp.join(configs, 'diode_yolov3-mv2_synth-kd_digits.py')).to_dict()
    short = Config.fromfile(
        osp.join(configs, 'diode_yolov3-mv2_synth-kd-short_digits.py')
    ).to_dict()
    old, new = recipe.pop('synthesizer'), short.pop('synthesizer')
    assert short == recipe
    total = sum(stage['iterations'] for stage in new['stages'])
    for old_stage, new_stage in zip(old.pop('stages'), new.pop('stages')):
        assert new_stage.pop('iterations') < old_stage.pop('iterations')
        assert new_stage == old_stage
    old_fp, new_fp = old.pop('fp_sampling'), new.pop('fp_sampling')
    assert new == old
    assert abs(new_fp.pop('start') - 0.2 * total) < 1
    assert abs(new_fp.pop('end') - 0.7 * total) < 1
    assert new_fp.pop('interval') < old_fp.pop('interval')
    del old_fp['start'], old_fp['end']
    assert new_fp == old_fp


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
        osp.join(ROOT, 'configs', 'kd',
                 'output-kl_rtmdet-l_rtmdet-tiny_300e_coco.py'))
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

    datafree = Config.fromfile(
        osp.join(ROOT, 'configs', 'diode',
                 'diode_rtmdet-l_rtmdet-tiny_300e_coco.py'))
    synth = Config.fromfile(
        osp.join(ROOT, 'configs', 'diode', 'diode_rtmdet-l_synth_coco.py'))
    assert datafree.model.teacher == kd.model.teacher == synth.teacher
    assert datafree.model.distill_losses == kd.model.distill_losses
    assert datafree.model.pseudo_label.replace_gt
    hooks = {h.type: h for h in datafree.custom_hooks}
    assert 'PipelineSwitchHook' not in hooks  # it would load COCO images
    assert hooks['DeepInversionHook'].synthesizer == synth.synthesizer
    layouts = dict(synth.layout_sampler)
    layouts.pop('img_size')
    assert datafree.train_dataloader.dataset.layout_sampler == layouts


ALGORITHM_FOLDERS = ('detectors', 'diode', 'moi', 'hgd', 'kd', 'datafree')


@pytest.mark.parametrize('folder', ALGORITHM_FOLDERS)
def test_every_config_is_in_its_folders_metafile(folder):
    """OpenMMLab layout: each folder has a README and a metafile listing
    exactly its configs, with results only as box AP/AP50 on a data set."""
    import yaml
    path = osp.join(ROOT, 'configs', folder)
    assert osp.isfile(osp.join(path, 'README.md'))
    with open(osp.join(path, 'metafile.yml')) as f:
        meta = yaml.safe_load(f)
    collections = {c['Name'] for c in meta['Collections']}
    for c in meta['Collections']:
        assert c['README'] == f'configs/{folder}/README.md'
        assert c['Paper']['URL'].startswith('https://')
    listed = [m['Config'] for m in meta['Models']]
    assert sorted(listed) == sorted(
        osp.relpath(p, ROOT) for p in CONFIGS
        if osp.dirname(p) == path), folder
    for m in meta['Models']:
        assert m['In Collection'] in collections
        assert m['Config'] == f"configs/{folder}/{m['Name']}.py"
        for result in m.get('Results', []):
            assert result['Task'] == 'Object Detection'
            assert set(result['Metrics']) <= {'box AP', 'box AP50'}


def test_old_config_paths_table_points_to_existing_files():
    import re
    with open(osp.join(ROOT, 'configs', 'README.md')) as f:
        rows = re.findall(r'^\| `([^`]+\.py)` \| `([^`]+\.py)` \|$', f.read(),
                          re.M)
    assert len(rows) == 46  # every moved config and base
    for old, new in rows:
        assert not osp.exists(osp.join(ROOT, 'configs', old)), old
        assert osp.isfile(osp.join(ROOT, 'configs', new)), new


@pytest.mark.parametrize('online, offline', [
    ('diode/diode_yolov3-d53_yolov3-d53_273e_coco.py',
     'diode/diode_yolov3-d53_synth_coco.py'),
    ('moi/moi_faster-rcnn-r50_faster-rcnn-r18_1x_coco.py',
     'moi/moi_faster-rcnn-r50_synth_coco.py'),
])
def test_coco_data_free_hooks_synthesize_with_the_offline_recipe(
        online, offline):
    """The COCO on-the-fly configs' DeepInversionHook passes on the
    synthesizer that the offline synthesis config uses (one _base_ file);
    the final stage makes images of the train set's size."""
    online = Config.fromfile(osp.join(ROOT, 'configs', online))
    offline = Config.fromfile(osp.join(ROOT, 'configs', offline))
    hook, = [h for h in online.custom_hooks if h.type == 'DeepInversionHook']
    assert hook.synthesizer == offline.synthesizer
    box_set = online.train_dataloader.dataset
    while box_set.type != 'BoxSamplerDataset':
        box_set = box_set.dataset
    assert hook.synthesizer.stages[-1].size == box_set.img_size


DIGITS_DATA_FREE = sorted(
    [osp.join(ROOT, 'configs/diode/diode_yolov3-mv2_yolov3-mv2-x0.5_24e_'
              'digits.py'),
     osp.join(ROOT, 'configs/moi/moi_faster-rcnn-r18_faster-rcnn-r18-x0.5_8e_'
              'digits.py')] +
    glob.glob(osp.join(ROOT, 'configs', 'datafree', '*.py')))


def _resolved(path: str) -> str:
    """A config path as a normalised absolute path (relative ones are
    relative to the repository root, where the tools run)."""
    return osp.normpath(path if osp.isabs(path) else osp.join(ROOT, path))


@pytest.mark.parametrize('path', DIGITS_DATA_FREE,
                         ids=[osp.basename(p) for p in DIGITS_DATA_FREE])
def test_data_free_configs_validate_on_their_teachers_agreement_set(path):
    """The digits data-free configs validate without real data: on the
    agreement set of their own teacher, made by a recipe that annotates at
    the config's pseudo-label threshold, with seeds the training pool does
    not use, read from the folder the metric scores against."""
    cfg = Config.fromfile(path)
    assert cfg.val_cfg.type == 'TeacherAgreementValLoop'
    data_root = cfg.val_dataloader.dataset.data_root
    assert cfg.val_evaluator.ann_file == osp.join(
        data_root, cfg.val_dataloader.dataset.ann_file)
    assert cfg.val_evaluator.prefix == 'agreement'
    recipe = Config.fromfile(osp.join(ROOT, cfg.val_cfg.synthesis_config))
    assert recipe.synthesis.teacher_labels.score_thr == \
        cfg.model.pseudo_label.score_thr
    assert _resolved(recipe.teacher.config) == _resolved(
        cfg.model.teacher.config)
    hooks = [h for h in cfg.custom_hooks if h.type == 'DeepInversionHook']
    assert recipe.synthesis.seed not in {h.get('seed', 0) for h in hooks}
    assert tuple(recipe.layout_sampler.classes if 'classes' in
                 recipe.layout_sampler else
                 cfg.val_dataloader.dataset.metainfo.classes) == tuple(
                     cfg.val_dataloader.dataset.metainfo.classes)
