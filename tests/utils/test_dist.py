"""mmdiode.utils.dist: process groups for torchrun tools without CUDA.

The multi-process paths themselves run in the torchrun tests of the tools
(tests/apis, tests/engine/hooks, tests/models, tests/tools); these check the
decisions taken before any process group starts.
"""
import datetime
import os

import pytest
import torch.distributed as torch_dist
from mmengine.config import Config

from mmdiode.utils import ConfigError
from mmdiode.utils.dist import (_gloo_kwargs, check_launch_env, destroy_dist,
                                init_dist_any_device, local_cuda_device,
                                setup_cpu_distributed, shares_gpus)


def test_gloo_arguments_from_the_config():
    assert _gloo_kwargs(None) == {}
    kwargs = _gloo_kwargs(dict(backend='gloo', timeout=120))
    assert kwargs == dict(timeout=datetime.timedelta(seconds=120))


def test_nccl_without_cuda_is_a_clear_error():
    with pytest.raises(ConfigError, match="backend='gloo', got 'nccl'"):
        _gloo_kwargs(dict(backend='nccl'))


def test_no_launcher_starts_nothing():
    cfg = Config(dict(launcher='none'))
    setup_cpu_distributed(cfg)
    init_dist_any_device('none')
    destroy_dist()  # nothing to end
    assert 'model_wrapper_cfg' not in cfg
    assert not torch_dist.is_initialized()


def test_slurm_without_cuda_names_the_alternative(monkeypatch):
    monkeypatch.setattr('torch.cuda.is_available', lambda: False)
    with pytest.raises(ConfigError, match='use torchrun'):
        init_dist_any_device('slurm')


def test_ranks_share_gpus_round_robin():
    assert [local_cuda_device(r, 4) for r in (0, 3, 4, 5, 9)] == [
        'cuda:0', 'cuda:3', 'cuda:0', 'cuda:1', 'cuda:1'
    ]
    assert local_cuda_device(7, 1) == 'cuda:0'


@pytest.fixture
def one_gpu_torchrun(monkeypatch):
    """torchrun's environment of local rank 3 of 4 on a (pretended) 1-GPU
    machine."""
    monkeypatch.setattr('torch.cuda.is_available', lambda: True)
    monkeypatch.setattr('torch.cuda.device_count', lambda: 1)
    for key, value in dict(RANK='3', WORLD_SIZE='4', LOCAL_RANK='3',
                           LOCAL_WORLD_SIZE='4', MASTER_ADDR='127.0.0.1',
                           MASTER_PORT='29500').items():
        monkeypatch.setenv(key, value)


def test_more_processes_than_gpus_only_where_they_may_share(
        one_gpu_torchrun):
    assert shares_gpus()
    with pytest.raises(ConfigError, match='LOCAL_RANK=3 but this machine '
                       'has 1 GPUs'):
        check_launch_env('pytorch')
    check_launch_env('pytorch', share_gpus=True)  # synthesis: accepted


def test_one_process_per_gpu_does_not_share(one_gpu_torchrun, monkeypatch):
    monkeypatch.setenv('LOCAL_WORLD_SIZE', '1')
    assert not shares_gpus()
    monkeypatch.setattr('torch.cuda.is_available', lambda: False)
    monkeypatch.setenv('LOCAL_WORLD_SIZE', '4')
    assert not shares_gpus()


def test_sharing_ranks_start_gloo_on_their_gpu(one_gpu_torchrun, monkeypatch):
    """Local rank 3 on one GPU: cuda:0, a gloo group, and LOCAL_RANK=0 so
    that mmengine's logger (CUDA_VISIBLE_DEVICES[LOCAL_RANK]) finds it."""
    calls = {}
    monkeypatch.setattr('torch.cuda.set_device',
                        lambda device: calls.setdefault('device', device))
    monkeypatch.setattr(
        torch_dist, 'init_process_group',
        lambda **kwargs: calls.setdefault('backend', kwargs['backend']))
    init_dist_any_device('pytorch', dict(backend='nccl'), share_gpus=True)
    assert calls == dict(device='cuda:0', backend='gloo')
    assert os.environ['LOCAL_RANK'] == '0'
