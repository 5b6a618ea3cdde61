"""TeacherAgreementValLoop: a data-free run validates on a teacher-agreement
set that the loop synthesizes on first use (tools/train.py, mmengine's
Runner, CocoMetric), reuses afterwards, and refuses when it was made from
another teacher or cannot be made."""
import json
import os.path as osp
import random
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.logging import MMLogger

from mmdiode.engine.runner import teacher_agreement_loop as loop_module
from mmdiode.evaluation.teacher_agreement import TEACHER_ANN_FILE
from mmdiode.testing import (TINY_CLASSES, save_tiny_teacher,
                             write_tiny_datafree_config,
                             write_tiny_synthesis_config)
from mmdiode.utils import ConfigError

TESTS = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, TESTS)
from tool_loader import load_tool  # noqa: E402

MAX_ITERS = 2


@pytest.fixture(scope='module', autouse=True)
def _registered():
    torch.set_num_threads(1)
    from mmdet.utils import register_all_modules
    register_all_modules()
    import mmdiode  # noqa: F401


def _synthesis_config(root, teacher, teacher_labels=True) -> str:
    """A 4-image agreement recipe on the tiny teacher (seed 1000)."""
    path = write_tiny_synthesis_config(
        str(root / ('agreement.py' if teacher_labels else 'plain.py')),
        teacher, num_images=4, batch_size=2, iterations=(2, 2))
    cfg = Config.fromfile(path)
    cfg.synthesis.seed = 1000
    if teacher_labels:
        # A random teacher scores low: keep every detection.
        cfg.synthesis.teacher_labels = dict(score_thr=0.0)
    cfg.dump(path)
    return path


def _train_config(root, teacher, synthesis_config, data_root) -> str:
    """The tiny data-free run, validating on the agreement set at the end."""
    path = write_tiny_datafree_config(str(root / f'train_{id(data_root)}.py'),
                                      root, teacher, max_iters=MAX_ITERS)
    cfg = Config.fromfile(path)
    data_root = str(data_root) + '/'
    cfg.train_cfg.val_interval = MAX_ITERS
    cfg.val_cfg = dict(type='TeacherAgreementValLoop',
                       synthesis_config=synthesis_config)
    cfg.val_dataloader = dict(
        batch_size=2, num_workers=0, persistent_workers=False,
        drop_last=False, sampler=dict(type='DefaultSampler', shuffle=False),
        dataset=dict(type='CocoDataset', data_root=data_root,
                     ann_file=TEACHER_ANN_FILE,
                     metainfo=dict(classes=TINY_CLASSES),
                     data_prefix=dict(img=''), test_mode=True,
                     pipeline=[
                         dict(type='LoadImageFromFile'),
                         dict(type='Resize', scale_factor=1.0,
                              keep_ratio=True),
                         dict(type='LoadAnnotations', with_bbox=True),
                         dict(type='PackDetInputs',
                              meta_keys=('img_id', 'img_path', 'ori_shape',
                                         'img_shape', 'scale_factor'))
                     ]))
    cfg.val_evaluator = dict(type='CocoMetric',
                             ann_file=data_root + TEACHER_ANN_FILE,
                             metric='bbox', prefix='agreement')
    cfg.model.student.test_cfg.update(score_thr=0.0, conf_thr=0.0)
    cfg.dump(path)
    return path


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp('agreement')
    teacher = save_tiny_teacher(str(root / 'teacher.pth'))
    return root, teacher, _synthesis_config(root, teacher)


def _scalars(work_dir) -> dict:
    """The last validation's metrics from mmengine's scalars.json."""
    # The run's own (timestamped) folder, not agreement_synthesis/.
    runs = sorted(work_dir.glob('[0-9]*/vis_data/scalars.json'))
    with open(runs[-1], encoding='utf-8') as f:
        return [json.loads(ln) for ln in f if 'agreement/bbox_mAP' in ln][-1]


def test_train_makes_the_set_validates_on_it_and_reuses_it(setup, monkeypatch):
    root, teacher, synthesis_config = setup
    data_root = root / 'set'
    config = _train_config(root, teacher, synthesis_config, data_root)
    train = load_tool('train')
    assert train.used_loaders(Config.fromfile(config)) == (
        'train_dataloader', )
    assert train.main([config, '--work-dir', str(root / 'run1')]) == 0
    # The set: the teacher's detections on 4 images, seed 1000, the
    # training teacher recorded beside it.
    meta = json.load(open(data_root / 'meta.json'))
    assert (meta['num_images'], meta['seed']) == (4, 1000)
    anns = json.load(open(data_root / TEACHER_ANN_FILE))
    assert len(anns['images']) == 4
    assert json.load(open(data_root / loop_module.TEACHER_RECORD)
                     )['checkpoint'] == teacher
    metrics = _scalars(root / 'run1')
    assert {'agreement/bbox_mAP', 'agreement/bbox_mAP_50'} <= set(metrics)
    # The synthesis logged to the Runner's logger, not to one of its own
    # (which would have become mmengine's current logger).
    assert not list((root / 'run1').glob('agreement_synthesis/*.log'))

    # A second run reuses the set: no synthesis job is built.
    def no_synthesis(*args, **kwargs):
        raise AssertionError('the finished set was synthesized again')

    monkeypatch.setattr('mmdiode.apis.synthesis.SynthesisJob', no_synthesis)
    before = osp.getmtime(data_root / TEACHER_ANN_FILE)
    assert train.main([config, '--work-dir', str(root / 'run2')]) == 0
    assert osp.getmtime(data_root / TEACHER_ANN_FILE) == before
    assert 'agreement/bbox_mAP_50' in _scalars(root / 'run2')


def test_a_set_of_another_teacher_is_refused(setup, capsys):
    root, teacher, synthesis_config = setup
    data_root = root / 'other_teacher'
    data_root.mkdir()
    (data_root / TEACHER_ANN_FILE).write_text('{}')
    (data_root / loop_module.TEACHER_RECORD).write_text(
        json.dumps(dict(checkpoint=str(root / 'another.pth'))))
    config = _train_config(root, teacher, synthesis_config, data_root)
    assert load_tool('train').main(
        [config, '--work-dir', str(root / 'run3')]) == 2
    err = capsys.readouterr().err
    assert 'error: the teacher-agreement set' in err
    assert 'another.pth' in err and 'delete the folder' in err


def test_a_recipe_without_teacher_labels_is_refused(setup, capsys):
    root, teacher, _ = setup
    plain = _synthesis_config(root, teacher, teacher_labels=False)
    with pytest.raises(ConfigError, match='synthesis.teacher_labels'):
        loop_module.agreement_synthesis_config(plain, dict(
            config='unused', checkpoint=teacher))
    config = _train_config(root, teacher, plain, root / 'never_made')
    assert load_tool('train').main(
        [config, '--work-dir', str(root / 'run4')]) == 2
    assert 'synthesis.teacher_labels' in capsys.readouterr().err
    assert not osp.exists(root / 'never_made' / TEACHER_ANN_FILE)


@pytest.mark.parametrize('loop_type, makes', [
    ('TeacherAgreementValLoop', True),
    ('mmdet.TeacherAgreementValLoop', True),
    (loop_module.TeacherAgreementValLoop, True),
    ('ValLoop', False),
    ('nosuchscope.ValLoop', False),
])
def test_train_needs_the_val_files_unless_the_loop_makes_them(
        loop_type, makes):
    train = load_tool('train')
    assert train.makes_its_val_set(loop_type) is makes
    cfg = Config(dict(val_cfg=dict(type=loop_type),
                      val_evaluator=dict(type='CocoMetric')))
    assert ('val_dataloader' in train.used_loaders(cfg)) is not makes


def test_same_file_compares_resolved_paths(tmp_path):
    ckpt = tmp_path / 'a.pth'
    ckpt.write_bytes(b'')
    (tmp_path / 'link.pth').symlink_to(ckpt)
    assert loop_module.same_file(str(ckpt), str(tmp_path / 'link.pth'))
    assert not loop_module.same_file(str(ckpt), str(tmp_path / 'b.pth'))
    assert loop_module.same_file('https://x/a.pth', 'https://x/a.pth')
    assert not loop_module.same_file(None, str(ckpt))


def _runner(root, teacher) -> SimpleNamespace:
    """What the loop reads of a Runner: the config's teacher, the logger,
    the work dir and the model's device."""
    cfg = Config.fromfile(write_tiny_datafree_config(
        str(root / 'runner_cfg.py'), root, teacher, max_iters=MAX_ITERS))
    return SimpleNamespace(cfg=cfg, work_dir=str(root / 'runner_work'),
                           logger=MMLogger.get_instance('agreement_test'),
                           model=torch.nn.Linear(1, 1))


def test_the_teacher_is_recorded_before_the_first_image(setup, monkeypatch):
    """An interrupted set resumes only with the teacher it was started
    with: the record is there before synthesis begins."""
    root, teacher, synthesis_config = setup
    data_root = str(root / 'interrupted')

    def interrupted(job):
        assert json.load(open(osp.join(data_root, loop_module.TEACHER_RECORD))
                         )['checkpoint'] == teacher
        raise KeyboardInterrupt

    monkeypatch.setattr('mmdiode.apis.synthesis.SynthesisJob.run',
                        interrupted)
    runner = _runner(root, teacher)
    with pytest.raises(KeyboardInterrupt):
        loop_module.ensure_agreement_set(runner, synthesis_config, data_root)
    runner.cfg.model.teacher.checkpoint = str(root / 'another.pth')
    with pytest.raises(ConfigError, match='made from the teacher'):
        loop_module.ensure_agreement_set(runner, synthesis_config, data_root)


def test_a_folder_of_other_synthesis_settings_is_a_config_error(setup):
    root, teacher, synthesis_config = setup
    data_root = root / 'other_settings'
    from mmdiode.datasets import SyntheticCocoWriter
    SyntheticCocoWriter(str(data_root), TINY_CLASSES, num_images=2,
                        batch_size=2, seed=5)
    with pytest.raises(ConfigError, match='cannot synthesize the agreement '
                       'set .* other settings'):
        loop_module.ensure_agreement_set(
            _runner(root, teacher), synthesis_config, str(data_root))


def test_making_the_set_leaves_the_random_states_as_they_were(setup):
    """The training after the loop draws the same numbers whether or not
    the loop had to synthesize the set first."""
    root, teacher, synthesis_config = setup
    runner = _runner(root, teacher)
    torch.manual_seed(3), np.random.seed(3), random.seed(3)
    loop_module.ensure_agreement_set(runner, synthesis_config,
                                     str(root / 'rng'))
    assert osp.isfile(root / 'rng' / TEACHER_ANN_FILE)
    after = (torch.rand(2), np.random.rand(2), random.random())
    torch.manual_seed(3), np.random.seed(3), random.seed(3)
    expected = (torch.rand(2), np.random.rand(2), random.random())
    assert torch.equal(after[0], expected[0])
    assert np.array_equal(after[1], expected[1]) and after[2] == expected[2]


@pytest.mark.parametrize('dataset, match', [
    (dict(ann_file=TEACHER_ANN_FILE), 'needs data_root'),
    (dict(data_root='d/', ann_file='annotations.json'),
     "ann_file is 'annotations.json'"),
])
def test_a_val_dataset_the_loop_cannot_serve_is_refused(dataset, match):
    with pytest.raises(ConfigError, match=match):
        loop_module.agreement_root(dict(dataset=dataset))
    assert loop_module.agreement_root(
        dict(dataset=dict(data_root='d/'))) == 'd/'
