"""--cfg-options checking: mistyped keys are refused, constructor arguments
that a config leaves at their defaults are accepted. The life of a Runner
tool: its job's result, or one error line."""
import errno
import os.path as osp

import pytest
from mmengine.config import Config

from mmdiode.utils import CheckpointError, ConfigError, load_config
from mmdiode.utils.cli import check_cfg_options, run_runner_tool

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DETECTOR = osp.join(ROOT, 'configs/detectors/yolov3-mv2_24e_digits.py')


@pytest.fixture(scope='module')
def cfg():
    import mmdiode  # noqa: F401  (registers mmdiode's types)
    return load_config(DETECTOR)


@pytest.mark.parametrize('key', [
    'test_evaluator.classwise',  # mmdet's CocoMetric, default False
    'train_cfg.val_begin',  # mmengine's EpochBasedTrainLoop
    'model.backbone.frozen_stages',  # mmdet's MobileNetV2
    'train_cfg.max_epochs',  # in the file
    'randomness.deterministic',  # a Runner argument
])
def test_known_keys_are_accepted(cfg, key):
    check_cfg_options(cfg, {key: 1})


@pytest.mark.parametrize('key', [
    'train_cfg.max_epoch',  # EpochBasedTrainLoop has max_epochs
    'test_evaluator.classwize',
    'test_dataloader.batchsize',  # the loader dict has no type
    'model.backbone.widen',  # MobileNetV2 has widen_factor
    'model.bbox_head.no_such_dict.x',  # no such parent
    'train_cfg.runner',  # the Runner passes it, not the config
    'val_cfg.dataloader',  # built from val_dataloader
])
def test_mistyped_keys_are_refused(cfg, key):
    with pytest.raises(ConfigError,
                       match=f'unknown --cfg-options key "{key}"'):
        check_cfg_options(cfg, {key: 1})


def test_a_synthesizer_argument_left_at_its_default_is_accepted(tmp_path):
    path = tmp_path / 'synth.py'
    path.write_text("custom_imports = dict(imports=['mmdiode'])\n"
                    "synthesizer = dict(type='DeepInversion', stages=[])\n")
    cfg = load_config(str(path))
    check_cfg_options(cfg, {'synthesizer.channels_last': True})
    with pytest.raises(ConfigError, match='synthesizer.channel_last'):
        check_cfg_options(cfg, {'synthesizer.channel_last': True})


def test_a_type_changed_by_the_same_options_decides_its_arguments(cfg):
    # MobileNetV2 has no `depth`; ResNet, named in the same options, has.
    check_cfg_options(cfg, {'model.backbone.type': 'ResNet',
                            'model.backbone.depth': 18})
    with pytest.raises(ConfigError, match='"model.backbone.depth"'):
        check_cfg_options(cfg, {'model.backbone.depth': 18})


def test_a_type_that_is_not_a_registered_name_accepts_no_default(tmp_path):
    path = tmp_path / 'odd.py'
    path.write_text("a = dict(type=3)\nb = dict(type='nosuchscope.Thing')\n")
    cfg = load_config(str(path))
    for key in ('a.x', 'b.x'):
        with pytest.raises(ConfigError, match='unknown --cfg-options key'):
            check_cfg_options(cfg, {key: 1})


def test_a_runner_tool_returns_its_job_result_or_one_error_line(
        capsys, monkeypatch):
    monkeypatch.delenv('LOCAL_RANK', raising=False)
    cfg = Config(dict(launcher='none'))

    def refuse(error):
        raise error

    assert run_runner_tool('none', lambda: (cfg, lambda: 'done')) == (
        0, 'done')
    for prepare in (lambda: refuse(ConfigError('bad option')),
                    lambda: refuse(CheckpointError('bad option'))):
        assert run_runner_tool('none', prepare) == (2, None)
        assert capsys.readouterr().err == 'error: bad option\n'
    full = OSError(errno.ENOSPC, 'No space left on device', 'out.pkl')
    assert run_runner_tool('none',
                           lambda: (cfg, lambda: refuse(full))) == (2, None)
    assert capsys.readouterr().err.startswith(
        'error: no space left on the device')
    # The launch is checked before the config is prepared.
    assert run_runner_tool('nosuch', lambda: refuse(AssertionError())) == (
        2, None)
    assert 'unknown launcher' in capsys.readouterr().err
    # Any other exception is a bug: it keeps its traceback.
    with pytest.raises(KeyError):
        run_runner_tool('none', lambda: (cfg, lambda: refuse(KeyError())))
