"""The teacher's own input space: where synthesized images are optimised.

mmdet detectors see images only after their ``data_preprocessor`` has
(optionally) swapped the channel order and normalised them with ``mean`` and
``std``. Optimising pixels directly in that space means the teacher's
``loss()`` / ``predict()`` can be called on the optimised tensor as-is, and the
valid pixel range [0, 255] becomes a per-channel box constraint.
"""
from typing import Sequence

import torch
from torch import Tensor, nn

_RGB_TO_BGR = [2, 1, 0]


class PixelSpace:
    """Maps RGB images in [0, 255] to a detector's normalised input and back.

    mmdet's image loaders decode to BGR (mmcv's default), so a preprocessor
    with ``bgr_to_rgb=True`` (or ``rgb_to_bgr=True``, the same swap) feeds the
    model RGB, and one without a swap feeds it BGR. ``mean`` and ``std`` are
    in the model's channel order, as in the preprocessor config.

    Args:
        mean (Sequence[float]): Per-channel mean in the model's channel order,
            in [0, 255] units. Defaults to (0, 0, 0) (no normalisation).
        std (Sequence[float]): Per-channel std in the model's channel order.
            Defaults to (1, 1, 1).
        model_rgb (bool): Whether the model's channel order is RGB (else
            BGR). Defaults to True.
        device (torch.device | str): Device of the constants. Defaults to
            'cpu'.
    """

    def __init__(self,
                 mean: Sequence[float] = (0.0, 0.0, 0.0),
                 std: Sequence[float] = (1.0, 1.0, 1.0),
                 model_rgb: bool = True,
                 device='cpu') -> None:
        mean_t = torch.as_tensor(mean, dtype=torch.float32, device=device)
        std_t = torch.as_tensor(std, dtype=torch.float32, device=device)
        if mean_t.numel() != 3 or std_t.numel() != 3:
            raise ValueError('PixelSpace supports 3-channel images only, got '
                             f'mean {list(mean_t.shape)} and std '
                             f'{list(std_t.shape)}')
        if bool((std_t <= 0).any()):
            raise ValueError(f'std must be positive, got {std_t.tolist()}')
        self.model_rgb = model_rgb
        # (1, 3, 1, 1) so they broadcast over (N, 3, H, W) batches.
        self.mean = mean_t.view(1, 3, 1, 1)
        self.std = std_t.view(1, 3, 1, 1)
        #: Lower / upper clamp bounds of valid pixels in model space.
        self.lower = (0.0 - self.mean) / self.std
        self.upper = (255.0 - self.mean) / self.std
        #: Model-space units per unit of [0, 1] intensity, per channel.
        self.unit_to_model = 255.0 / self.std
        #: [0, 1] intensity units per model-space unit, per channel.
        self.model_to_unit = self.std / 255.0

    @classmethod
    def from_preprocessor(cls, preprocessor: nn.Module) -> 'PixelSpace':
        """Reads mean, std and channel swap from a built data preprocessor.

        Args:
            preprocessor (nn.Module): An mmengine ``ImgDataPreprocessor``
                (e.g. mmdet's ``DetDataPreprocessor``), usually
                ``detector.data_preprocessor``.

        Returns:
            PixelSpace: On the device of the preprocessor's buffers.
        """
        if not hasattr(preprocessor, '_channel_conversion'):
            raise TypeError(
                'Expected an mmengine ImgDataPreprocessor (e.g. mmdet '
                f'DetDataPreprocessor), got {type(preprocessor).__name__}')
        if getattr(preprocessor, '_enable_normalize', False):
            mean = preprocessor.mean.flatten()
            std = preprocessor.std.flatten()
            device = mean.device
        else:
            mean, std, device = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), 'cpu'
        # Loaders decode BGR; a swap in the preprocessor makes the model RGB.
        model_rgb = bool(preprocessor._channel_conversion)
        return cls(mean, std, model_rgb=model_rgb, device=device)

    def to(self, device) -> 'PixelSpace':
        """Returns a copy with its constants on ``device``."""
        return PixelSpace(self.mean.flatten(), self.std.flatten(),
                          self.model_rgb, device)

    def to_model(self, images: Tensor) -> Tensor:
        """Converts RGB images to the model's normalised input.

        Args:
            images (Tensor): (N, 3, H, W) RGB, uint8 or float in [0, 255].

        Returns:
            Tensor: (N, 3, H, W) float32 in model space.
        """
        self._check_batch(images)
        x = images.float()
        if not self.model_rgb:
            x = x[:, _RGB_TO_BGR]
        return (x - self.mean) / self.std

    def to_rgb(self, x: Tensor) -> Tensor:
        """Converts model-space images back to RGB in [0, 255] (unclamped).

        Args:
            x (Tensor): (N, 3, H, W) in model space.

        Returns:
            Tensor: (N, 3, H, W) float RGB in [0, 255] units.
        """
        self._check_batch(x)
        rgb = x.float() * self.std + self.mean
        return rgb if self.model_rgb else rgb[:, _RGB_TO_BGR]

    def to_uint8(self, x: Tensor) -> Tensor:
        """Converts model-space images to uint8 RGB, channels last.

        Non-finite values become 0.

        Args:
            x (Tensor): (N, 3, H, W) in model space.

        Returns:
            Tensor: (N, H, W, 3) uint8 RGB on the CPU.
        """
        rgb = torch.nan_to_num(self.to_rgb(x.detach()), 0.0, 0.0, 0.0)
        rgb = rgb.round_().clamp_(0, 255).to(torch.uint8)
        return rgb.permute(0, 2, 3, 1).contiguous().cpu()

    def clamp_(self, x: Tensor) -> Tensor:
        """Clamps model-space images in place to the valid pixel range.

        Args:
            x (Tensor): (N, 3, H, W) in model space.

        Returns:
            Tensor: ``x`` itself.
        """
        return x.clamp_(min=self.lower, max=self.upper)

    @staticmethod
    def _check_batch(x: Tensor) -> None:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError('Expected images of shape (N, 3, H, W), got '
                             f'{tuple(x.shape)}')
