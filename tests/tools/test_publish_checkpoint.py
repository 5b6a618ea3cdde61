"""tools/publish_checkpoint.py: weights and meta only, optionally fp16."""

import pytest
import torch
from mmdet.registry import MODELS
from mmdet.utils import register_all_modules
from mmengine.config import ConfigDict
from mmengine.runner import load_checkpoint
from tool_loader import load_tool

from mmdiode.testing import tiny_yolov3

publish = load_tool('publish_checkpoint')


@pytest.fixture
def runner_checkpoint(tmp_path):
    register_all_modules()
    torch.manual_seed(0)
    model = MODELS.build(ConfigDict(tiny_yolov3(num_classes=3)))
    path = str(tmp_path / 'epoch_1.pth')
    torch.save(
        dict(
            meta=dict(dataset_meta=dict(classes=('a', 'b', 'c'))),
            state_dict=model.state_dict(),
            optimizer=dict(state={}, param_groups=[]),
            message_hub=dict()), path)
    return model, path


@pytest.mark.parametrize('fp16', [False, True])
def test_weights_and_meta_load_into_the_model(runner_checkpoint, tmp_path,
                                              capsys, fp16):
    model, src = runner_checkpoint
    out = str(tmp_path / 'published.pth')
    args = [src, out] + (['--fp16'] if fp16 else [])
    assert publish.main(args) == 0
    assert 'sha256' in capsys.readouterr().out
    ckpt = torch.load(out, map_location='cpu')
    assert set(ckpt) == {'meta', 'state_dict'}
    dtypes = {v.dtype for v in ckpt['state_dict'].values()
              if torch.is_floating_point(v)}
    assert dtypes == ({torch.float16} if fp16 else {torch.float32})
    fresh = MODELS.build(ConfigDict(tiny_yolov3(num_classes=3)))
    load_checkpoint(fresh, out, map_location='cpu', strict=True)
    for name, value in fresh.state_dict().items():
        assert value.dtype == model.state_dict()[name].dtype
        tol = 1e-3 if fp16 else 0.0
        assert torch.allclose(value.float(),
                              model.state_dict()[name].float(),
                              rtol=tol, atol=tol), name


def test_corrupt_checkpoint_is_a_clear_error(tmp_path, capsys):
    bad = tmp_path / 'bad.pth'
    bad.write_bytes(b'not a checkpoint')
    out = tmp_path / 'out.pth'
    assert publish.main([str(bad), str(out)]) == 2
    assert 'error:' in capsys.readouterr().err
    assert not out.exists()
