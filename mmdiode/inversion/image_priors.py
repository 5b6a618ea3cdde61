"""Image priors of DeepInversion: total variation and an L2 penalty.

They regularise the synthesized pixels without any data statistic. Every
function takes a batch ``x`` of shape (N, C, H, W) and returns a 0-dim tensor.
"""
from typing import Tuple

from torch import Tensor


def _neighbour_differences(x: Tensor) -> Tuple[Tensor, ...]:
    """Differences between each pixel and its neighbour in 4 directions.

    Args:
        x (Tensor): (N, C, H, W) images.

    Returns:
        tuple[Tensor]: Horizontal (N, C, H, W-1), vertical (N, C, H-1, W),
        diagonal and anti-diagonal (N, C, H-1, W-1) differences.
    """
    horizontal = x[..., :, 1:] - x[..., :, :-1]
    vertical = x[..., 1:, :] - x[..., :-1, :]
    diagonal = x[..., 1:, 1:] - x[..., :-1, :-1]
    anti_diagonal = x[..., 1:, :-1] - x[..., :-1, 1:]
    return horizontal, vertical, diagonal, anti_diagonal


def tv_l1(x: Tensor) -> Tensor:
    """Anisotropic L1 total variation over 4 directions.

    The sum over the horizontal, vertical and both diagonal directions of the
    mean absolute difference between neighbouring pixels.

    Args:
        x (Tensor): (N, C, H, W) images, H and W at least 2.

    Returns:
        Tensor: 0-dim loss, 0 for a constant image.
    """
    return sum(d.abs().mean() for d in _neighbour_differences(x))


def tv_l2(x: Tensor) -> Tensor:
    """Squared total variation over 4 directions.

    The sum over the horizontal, vertical and both diagonal directions of the
    mean squared difference between neighbouring pixels.

    Args:
        x (Tensor): (N, C, H, W) images, H and W at least 2.

    Returns:
        Tensor: 0-dim loss, 0 for a constant image.
    """
    return sum(d.square().mean() for d in _neighbour_differences(x))


def l2_prior(x: Tensor) -> Tensor:
    """Mean squared value of the images.

    Args:
        x (Tensor): (N, C, H, W) images; in model space 0 is the mean colour
            of the teacher's training data, so this pulls pixels towards it.

    Returns:
        Tensor: 0-dim loss.
    """
    return x.square().mean()
