"""Image priors of DeepInversion: total variation and an L2 penalty.

They regularise the synthesized pixels without any data statistic. Every
function takes a batch ``x`` of shape (N, C, H, W) and returns a 0-dim tensor.
"""
from typing import Tuple

import torch
from torch import Tensor

# Per direction, the (H, W) slices of a pixel and of its earlier neighbour:
# horizontal, vertical, diagonal and anti-diagonal.
_ALL, _FROM_1, _TO_LAST = slice(None), slice(1, None), slice(None, -1)
_DIRECTIONS = (
    ((_ALL, _FROM_1), (_ALL, _TO_LAST)),
    ((_FROM_1, _ALL), (_TO_LAST, _ALL)),
    ((_FROM_1, _FROM_1), (_TO_LAST, _TO_LAST)),
    ((_FROM_1, _TO_LAST), (_TO_LAST, _FROM_1)),
)


def _neighbour_differences(x: Tensor) -> Tuple[Tensor, ...]:
    """Differences between each pixel and its neighbour in 4 directions.

    Args:
        x (Tensor): (N, C, H, W) images.

    Returns:
        tuple[Tensor]: Horizontal (N, C, H, W-1), vertical (N, C, H-1, W),
        diagonal and anti-diagonal (N, C, H-1, W-1) differences.
    """
    return tuple(x[(..., *later)] - x[(..., *earlier)]
                 for later, earlier in _DIRECTIONS)


class _TotalVariation(torch.autograd.Function):
    """Sum over 4 directions of the mean ``|diff|**power`` (power 1 or 2).

    Autograd through the slicing would build a zero-filled image-sized
    gradient per slice (8 of them) and add them up; the synthesis loop pays
    that every step. This backward writes all 8 slice gradients into one
    buffer instead. First-order gradients only.
    """

    @staticmethod
    def forward(ctx, x: Tensor, power: int) -> Tensor:
        diffs = _neighbour_differences(x)
        values = (d.abs() if power == 1 else d.square() for d in diffs)
        ctx.save_for_backward(*diffs)
        ctx.power, ctx.shape = power, x.shape
        return sum(v.mean() for v in values)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tuple[Tensor, None]:
        grad_x = grad.new_zeros(ctx.shape)
        for (later, earlier), diff in zip(_DIRECTIONS, ctx.saved_tensors):
            # d mean(|d|) / d d = sign(d) / n, d mean(d^2) / d d = 2 d / n.
            slope = diff.sign() if ctx.power == 1 else 2 * diff
            slope.mul_(grad / diff.numel())
            grad_x[(..., *later)] += slope
            grad_x[(..., *earlier)] -= slope
        return grad_x, None


def tv_l1(x: Tensor) -> Tensor:
    """Anisotropic L1 total variation over 4 directions.

    The sum over the horizontal, vertical and both diagonal directions of the
    mean absolute difference between neighbouring pixels.

    Args:
        x (Tensor): (N, C, H, W) images, H and W at least 2.

    Returns:
        Tensor: 0-dim loss, 0 for a constant image.
    """
    return _TotalVariation.apply(x, 1)


def tv_l2(x: Tensor) -> Tensor:
    """Squared total variation over 4 directions.

    The sum over the horizontal, vertical and both diagonal directions of the
    mean squared difference between neighbouring pixels.

    Args:
        x (Tensor): (N, C, H, W) images, H and W at least 2.

    Returns:
        Tensor: 0-dim loss, 0 for a constant image.
    """
    return _TotalVariation.apply(x, 2)


def l2_prior(x: Tensor) -> Tensor:
    """Mean squared value of the images.

    Args:
        x (Tensor): (N, C, H, W) images; in model space 0 is the mean colour
            of the teacher's training data, so this pulls pixels towards it.

    Returns:
        Tensor: 0-dim loss.
    """
    return x.square().mean()
