"""Total variation (4 directions) and L2 image priors."""
import pytest
import torch

from mmdiode.models.task_modules.inversion import l2_prior, tv_l1, tv_l2
from mmdiode.models.task_modules.inversion.image_priors import total_variation


def _ramp(fn):
    i = torch.arange(6.0).view(6, 1)
    j = torch.arange(7.0).view(1, 7)
    return fn(i, j).expand(2, 3, 6, 7)


def test_constant_image_has_no_variation():
    x = torch.full((2, 3, 5, 5), 3.0)
    assert tv_l1(x) == 0 and tv_l2(x) == 0


def test_diagonal_directions_count():
    # x = i + j: horizontal and vertical steps 1, diagonal 2, anti-diagonal 0.
    x = _ramp(lambda i, j: i + j)
    torch.testing.assert_close(tv_l1(x), torch.tensor(1 + 1 + 2 + 0.0))
    torch.testing.assert_close(tv_l2(x), torch.tensor(1 + 1 + 4 + 0.0))
    # x = i - j: diagonal 0, anti-diagonal (i+1-j) - (i-(j+1)) = 2.
    x = _ramp(lambda i, j: 2 * (i - j))
    torch.testing.assert_close(tv_l1(x), torch.tensor(2 + 2 + 0 + 4.0))
    torch.testing.assert_close(tv_l2(x), torch.tensor(4 + 4 + 0 + 16.0))


def test_single_edge_and_l2():
    x = torch.zeros(1, 1, 4, 4)
    x[..., 2:] = 1.0  # a vertical edge between columns 1 and 2
    # horizontal: 4 of 12 pairs differ; vertical: none; both diagonals: 3 of 9
    expected = 4 / 12 + 0 + 3 / 9 + 3 / 9
    torch.testing.assert_close(tv_l1(x), torch.tensor(expected))
    torch.testing.assert_close(tv_l2(2 * x), torch.tensor(4 * expected))
    torch.testing.assert_close(l2_prior(x), torch.tensor(0.5))


def test_priors_are_differentiable():
    x = torch.randn(2, 3, 6, 6, requires_grad=True)
    (tv_l1(x) + tv_l2(x) + l2_prior(x)).backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def _reference(x, power):
    """Total variation by plain autograd through the slices."""
    diffs = (x[..., :, 1:] - x[..., :, :-1], x[..., 1:, :] - x[..., :-1, :],
             x[..., 1:, 1:] - x[..., :-1, :-1],
             x[..., 1:, :-1] - x[..., :-1, 1:])
    return sum(d.abs().pow(power).mean() for d in diffs)


def test_fused_gradients_match_autograd():
    x = torch.randn(2, 3, 5, 6, dtype=torch.float64, requires_grad=True)
    for fn, power in ((tv_l1, 1), (tv_l2, 2)):
        grad, = torch.autograd.grad(3 * fn(x), x)
        expected, = torch.autograd.grad(3 * _reference(x, power), x)
        torch.testing.assert_close(fn(x), _reference(x, power))
        torch.testing.assert_close(grad, expected)
    assert torch.autograd.gradcheck(tv_l2, (x, ))


def test_total_variation_takes_power_1_or_2():
    x = torch.randn(2, 3, 5, 6)
    assert torch.equal(total_variation(x, 1), tv_l1(x))
    assert torch.equal(total_variation(x, 2), tv_l2(x))
    with pytest.raises(ValueError, match='power must be 1 or 2'):
        total_variation(x, 3)
