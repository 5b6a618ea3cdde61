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
    that every step. Here the forward keeps, per direction, the slope of
    ``|d|**power`` up to a constant (``sign(d)``, or ``d``), and the backward
    adds all 8 slices into one buffer, scaled once. First-order gradients
    only.
    """

    @staticmethod
    def forward(ctx, x: Tensor, power: int) -> Tensor:
        total = x.new_zeros(())
        slopes = []
        for diff in _neighbour_differences(x):
            # One reduction pass, no |d| temporary.
            norm = torch.linalg.vector_norm(diff, power)
            total = total + (norm if power == 1 else norm.square()) / (
                diff.numel())
            # d|d|/dd = sign(d), d(d^2)/dd = 2 d (the 2 is applied below).
            slopes.append(diff.sign_() if power == 1 else diff)
        ctx.save_for_backward(*slopes)
        ctx.power, ctx.shape = power, x.shape
        return total

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tuple[Tensor, None]:
        grad_x = grad.new_zeros(ctx.shape)
        for (later, earlier), slope in zip(_DIRECTIONS, ctx.saved_tensors):
            weight = ctx.power / slope.numel()
            grad_x[(..., *later)].add_(slope, alpha=weight)
            grad_x[(..., *earlier)].sub_(slope, alpha=weight)
        return grad_x.mul_(grad), None


def total_variation(x: Tensor, power: int) -> Tensor:
    """Total variation over 4 directions.

    The sum over the horizontal, vertical and both diagonal directions of the
    mean ``|difference|**power`` between neighbouring pixels.

    Args:
        x (Tensor): (N, C, H, W) images, H and W at least 2.
        power (int): 1 (anisotropic L1 total variation, the mean absolute
            difference) or 2 (squared total variation, the mean squared
            difference).

    Returns:
        Tensor: 0-dim loss, 0 for a constant image.
    """
    if power not in (1, 2):
        raise ValueError(f'power must be 1 or 2, got {power}')
    return _TotalVariation.apply(x, power)


def tv_l1(x: Tensor) -> Tensor:
    """Anisotropic L1 total variation, :func:`total_variation` of power 1:
    the mean absolute difference between neighbouring pixels."""
    return total_variation(x, 1)


def tv_l2(x: Tensor) -> Tensor:
    """Squared total variation, :func:`total_variation` of power 2: the
    mean squared difference between neighbouring pixels."""
    return total_variation(x, 2)


def l2_prior(x: Tensor) -> Tensor:
    """Mean squared value of the images.

    Args:
        x (Tensor): (N, C, H, W) images; in model space 0 is the mean colour
            of the teacher's training data, so this pulls pixels towards it.

    Returns:
        Tensor: 0-dim loss.
    """
    return x.square().mean()
