"""BNStatisticsPrior: hooks on BatchNorm inputs vs running statistics."""
import math

import pytest
import torch
from torch import nn

from mmdiode.models.task_modules.inversion import BNStatisticsPrior


class _Net(nn.Module):

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
        self.head = nn.Sequential(nn.ReLU(), nn.Conv2d(4, 6, 3),
                                  nn.BatchNorm2d(6))

    def forward(self, x):
        return self.head(self.stem(x))


def _matched_batchnorm(x):
    """A BatchNorm2d whose running statistics are exactly those of x."""
    bn = nn.BatchNorm2d(3).eval()
    bn.running_mean.copy_(x.mean((0, 2, 3)))
    bn.running_var.copy_(x.var((0, 2, 3), unbiased=False))
    return nn.Sequential(bn)


def test_zero_when_the_batch_matches_the_running_statistics():
    x = torch.randn(4, 3, 8, 8) * 3 + 2
    model = _matched_batchnorm(x)
    with BNStatisticsPrior(model) as prior:
        model(x)
        assert prior.loss().item() == pytest.approx(0.0, abs=1e-4)


def test_hand_computed_value_with_multiplier_and_norm_order():
    x = torch.randn(4, 3, 8, 8)
    model = _matched_batchnorm(x)
    model[0].running_mean += 1.0  # every channel's mean is off by 1
    model[0].running_var += 2.0  # and its variance by 2
    with BNStatisticsPrior(model, p=2, first_bn_multiplier=3.0) as prior:
        model(x)
        # 3 * (||(1, 1, 1)||_2 + ||(2, 2, 2)||_2)
        assert prior.loss().item() == pytest.approx(
            3 * (math.sqrt(3) + math.sqrt(12)), rel=1e-4)
    with BNStatisticsPrior(model, p=1, first_bn_multiplier=1.0) as prior:
        model(x)
        assert prior.loss().item() == pytest.approx(3 + 6, rel=1e-4)


@pytest.mark.parametrize('dtype,memory_format',
                         [(torch.float32, torch.contiguous_format),
                          (torch.float32, torch.channels_last),
                          (torch.float64, torch.contiguous_format)])
def test_matches_a_var_mean_reference_in_value_and_gradient(
        dtype, memory_format):
    """Also on channels_last activations (the strided statistics path) and
    in double precision."""
    torch.manual_seed(0)
    net = _Net().eval().to(dtype=dtype, memory_format=memory_format)
    for bn in (net.stem[1], net.head[2]):
        bn.running_mean.normal_()
        bn.running_var.uniform_(0.5, 2.0)
    x = torch.randn(2, 3, 12, 12, dtype=dtype).contiguous(
        memory_format=memory_format).requires_grad_(True)

    def term(feats, bn):
        var, mean = torch.var_mean(feats, (0, 2, 3), correction=0)
        return (torch.linalg.vector_norm(mean - bn.running_mean) +
                torch.linalg.vector_norm(var - bn.running_var))

    def reference(x):
        first_in = net.stem[0](x)
        second_in = net.head[1](net.head[0](net.stem[1](first_in)))
        return 2.0 * term(first_in, net.stem[1]) + term(second_in, net.head[2])

    expected = reference(x)
    expected_grad, = torch.autograd.grad(expected, x)
    with BNStatisticsPrior(net) as prior:
        for _ in range(2):  # records are cleared between steps
            prior.reset()
            net(x)
            loss = prior.loss()
            grad, = torch.autograd.grad(loss, x)
    torch.testing.assert_close(loss, expected, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(grad, expected_grad, rtol=1e-3, atol=1e-6)


def test_layer_pattern_selects_layers():
    net = _Net().eval()
    with BNStatisticsPrior(net, layer_pattern=r'^head\.') as prior:
        assert [name for name, _ in prior.layers] == ['head.2']
    with BNStatisticsPrior(net) as prior:
        assert [name for name, _ in prior.layers] == ['stem.1', 'head.2']
    sync = nn.Sequential(nn.SyncBatchNorm(3))
    with BNStatisticsPrior(sync) as prior:
        assert isinstance(prior.layers[0][1], nn.SyncBatchNorm)


def test_no_matching_batchnorm_is_a_clear_error():
    no_bn = nn.Sequential(nn.Conv2d(3, 4, 3), nn.GroupNorm(2, 4))
    with pytest.raises(ValueError, match=r"no BatchNorm.*'\.\*'.*weight=0"):
        BNStatisticsPrior(no_bn, layer_pattern='.*')
    with pytest.raises(ValueError, match=r"'\^neck'"):
        BNStatisticsPrior(_Net(), layer_pattern='^neck')


def test_layers_are_restored_and_do_not_record_when_disabled():
    net = _Net().eval()
    x = torch.randn(2, 3, 10, 10)
    with BNStatisticsPrior(net) as prior:
        prior.enabled = False
        net(x)
        with pytest.raises(RuntimeError, match='no selected BatchNorm'):
            prior.loss()
    assert all(not m._forward_hooks and 'forward' not in vars(m)
               for m in net.modules())
    prior.remove()  # idempotent
    with BNStatisticsPrior(net):
        with pytest.raises(ValueError, match='already has a replaced'):
            BNStatisticsPrior(net)


@pytest.mark.parametrize('train_mode', [False, True])
def test_outputs_and_their_gradients_are_the_layers_own(train_mode):
    """The eval-mode fused layer (and the training-mode fallback) give the
    network's own output and input gradient; the prior adds its gradient."""
    torch.manual_seed(0)
    net = _Net().train(train_mode)
    net.requires_grad_(False)
    for bn in (net.stem[1], net.head[2]):
        bn.running_mean.normal_()
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.normal_()
    x = torch.randn(2, 3, 12, 12, requires_grad=True)
    state = {k: v.clone() for k, v in net.state_dict().items()}
    expected = net(x)
    expected_grad, = torch.autograd.grad(expected.sin().sum(), x)
    net.load_state_dict(state)  # training mode updated the running stats
    with BNStatisticsPrior(net) as prior:
        out = net(x)
        prior.reset()
        grad, = torch.autograd.grad(out.sin().sum(), x)
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(grad, expected_grad)


def test_changed_layer_constants_are_used_in_the_next_step():
    """The layers' slopes are cached between steps; a running variance
    changed in place or a weight replaced is used by the next step's
    gradient."""
    torch.manual_seed(0)
    net = _Net().eval()
    net.requires_grad_(False)
    x = torch.randn(2, 3, 12, 12, requires_grad=True)

    def output_and_grad():
        out = net(x)
        return out, torch.autograd.grad(out.sin().sum(), x)[0]

    with BNStatisticsPrior(net) as prior:
        output_and_grad()
        prior.reset()
        net.stem[1].running_var.uniform_(0.5, 2.0)
        net.head[2].weight = nn.Parameter(
            torch.rand(6) + 0.5, requires_grad=False)
        out, grad = output_and_grad()
        prior.reset()
    expected, expected_grad = output_and_grad()
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(grad, expected_grad)


def test_teacher_batchnorm_layers(teachers):
    teacher = teachers['yolov3']
    with BNStatisticsPrior(teacher, layer_pattern=r'^backbone\.') as prior:
        assert prior.layers and all(
            name.startswith('backbone.') for name, _ in prior.layers)
        teacher.extract_feat(torch.randn(2, 3, 32, 32))
        loss = prior.loss()
    assert loss.ndim == 0 and torch.isfinite(loss) and loss > 0
