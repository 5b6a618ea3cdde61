"""tools/extract_student.py: a KD checkpoint's student as a plain one."""
import os

import torch
from kd_helpers import (batch, build_kd, register_adapted_neck_mse,
                        runner_config, tiny_pair)
from mmdet.registry import MODELS
from mmengine.config import Config, ConfigDict
from mmengine.runner import load_checkpoint
from tool_loader import load_tool

extract = load_tool('extract_student')


def _plain_student(cfg, ckpt):
    model = MODELS.build(ConfigDict(cfg))
    load_checkpoint(model, ckpt, map_location='cpu', strict=True)
    return model.eval()


def test_runner_checkpoint_to_plain_student_and_tools_test(
        kd_run, tmp_path, capsys):
    out = str(tmp_path / 'student.pth')
    assert extract.main([kd_run['checkpoint'], out]) == 0
    ckpt = torch.load(out, map_location='cpu')  # torch's safe loader
    assert set(ckpt) == {'meta', 'state_dict'}
    assert ckpt['meta']['dataset_meta']['classes'] == ('a', 'b', 'c')
    student = _plain_student(kd_run['student'], out)
    trained = kd_run['model'].student.state_dict()
    assert set(student.state_dict()) == set(trained)
    for k, v in student.state_dict().items():
        assert torch.equal(v, trained[k]), k

    # mmdet's test harness evaluates it with the plain student config.
    cfg_file = str(tmp_path / 'student_cfg.py')
    cfg = runner_config(kd_run['student'], kd_run['coco'],
                        str(tmp_path / 'test_work'))
    Config(cfg).dump(cfg_file)
    test_tool = load_tool('test')
    assert test_tool.main([cfg_file, out]) == 0
    assert 'metrics_json=' in capsys.readouterr().out


def test_drops_distillation_parameters_and_keeps_outputs(tmp_path):
    register_adapted_neck_mse()
    student, teacher = tiny_pair('yolov3')
    model = build_kd(
        student,
        teacher,
        distill_losses=dict(
            feat=dict(
                type='TestAdaptedNeckMSE',
                student_channels=24,
                teacher_channels=48))).eval()
    assert any(k.startswith('distill_losses.') for k in model.state_dict())
    src, out = str(tmp_path / 'kd.pth'), str(tmp_path / 'sub' / 'plain.pth')
    torch.save(dict(meta=dict(iter=3), state_dict=model.state_dict()), src)
    assert extract.main([src, out]) == 0
    assert os.listdir(tmp_path / 'sub') == ['plain.pth']  # no temp file
    plain = _plain_student(student, out)
    inputs, samples = batch()
    torch.testing.assert_close(
        plain(inputs, samples, mode='tensor'),
        model(inputs, samples, mode='tensor'))


def test_refuses_non_kd_and_corrupt_checkpoints(tmp_path, capsys):
    student, _ = tiny_pair('retinanet')
    plain = str(tmp_path / 'plain.pth')
    torch.save(
        dict(state_dict=MODELS.build(ConfigDict(student)).state_dict()), plain)
    out = str(tmp_path / 'out.pth')
    assert extract.main([plain, out]) == 2
    assert 'not a KDDetector checkpoint' in capsys.readouterr().err
    corrupt = tmp_path / 'corrupt.pth'
    corrupt.write_bytes(b'\x00' * 10)
    assert extract.main([str(corrupt), out]) == 2
    assert 'cannot load checkpoint' in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ['corrupt.pth', 'plain.pth']
