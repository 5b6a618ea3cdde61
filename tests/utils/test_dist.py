"""mmdiode.utils.dist: process groups for torchrun tools without CUDA.

The multi-process paths themselves run in the torchrun tests of the tools
(tests/apis, tests/engine/hooks, tests/models, tests/tools); these check the
decisions taken before any process group starts.
"""
import datetime

import pytest
import torch.distributed as torch_dist
from mmengine.config import Config

from mmdiode.utils import ConfigError
from mmdiode.utils.dist import (_gloo_kwargs, destroy_dist,
                                init_dist_any_device, setup_cpu_distributed)


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
