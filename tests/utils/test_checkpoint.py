"""Checkpoint loading: one line saying what is wrong, and fit checks."""
import os

import pytest
import torch
from torch import nn

from mmdiode.utils import (CheckpointError, check_checkpoint_fits,
                           load_checkpoint_file)


class _RunsCode:
    """Unpickling this would call os.system."""

    def __reduce__(self):
        return (os.system, ('echo pwned',))


def test_a_pickle_that_would_run_code_is_named_and_not_run(tmp_path):
    path = tmp_path / 'evil.pth'
    torch.save(dict(state_dict=_RunsCode()), path)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint_file(str(path))
    message = str(info.value)
    assert 'refers to posix.system' in message or 'refers to os.system' in \
        message
    assert 'Weights only load failed' not in message
    assert '\n' not in message


@pytest.mark.parametrize('content', [b'not a checkpoint', b''])
def test_a_file_that_is_no_checkpoint_says_so(tmp_path, content):
    path = tmp_path / 'text.pth'
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match='not a torch checkpoint'):
        load_checkpoint_file(str(path))


def test_a_truncated_checkpoint_says_so(tmp_path):
    path = tmp_path / 'cut.pth'
    torch.save(dict(state_dict=nn.Linear(64, 64).state_dict()), path)
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    with pytest.raises(CheckpointError, match='truncated or corrupt'):
        load_checkpoint_file(str(path))


def test_fit_counts_missing_and_reshaped_tensors():
    model = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), nn.Linear(3, 2))
    full = model.state_dict()
    assert check_checkpoint_fits(model, full, 'x') == len(full)
    # DDP's module. prefix is ignored, as mmengine's loader does.
    ddp = {f'module.{k}': v for k, v in full.items()}
    assert check_checkpoint_fits(model, ddp, 'x') == len(full)
    # A new head (other classes): most tensors fit.
    new_head = dict(full, **{'2.weight': torch.zeros(5, 3),
                             '2.bias': torch.zeros(5)})
    with pytest.raises(CheckpointError,
                       match=r'fits 7 of the model\'s 9 tensors \(0 '
                       r'missing, 2 of another shape'):
        check_checkpoint_fits(model, new_head, 'ckpt.pth')
    assert check_checkpoint_fits(model, new_head, 'x', min_fraction=0.5) == 7
    other = nn.Conv2d(3, 3, 3).state_dict()
    with pytest.raises(CheckpointError, match='fits 0 of .*another model'):
        check_checkpoint_fits(model, other, 'x', min_fraction=0.5)
