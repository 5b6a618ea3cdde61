"""PixelSpace: RGB [0, 255] <-> the teacher's normalised input."""
import pytest
import torch
from mmdet.models.data_preprocessors import DetDataPreprocessor

from mmdiode.models.task_modules.inversion import PixelSpace


def _rgb_batch():
    return torch.randint(0, 256, (2, 3, 8, 8), dtype=torch.uint8)


def test_matches_the_preprocessor_on_bgr_loaded_images():
    pre = DetDataPreprocessor(
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True)
    space = PixelSpace.from_preprocessor(pre)
    rgb = _rgb_batch()
    # mmdet feeds the preprocessor BGR images as loaded by mmcv.
    bgr = rgb[:, [2, 1, 0]]
    expected = pre(dict(inputs=list(bgr)), training=False)['inputs']
    torch.testing.assert_close(space.to_model(rgb), expected)
    assert space.model_rgb


def test_no_channel_swap_means_a_bgr_model():
    pre = DetDataPreprocessor(
        mean=[103.53, 116.28, 123.675], std=[1.0, 1.0, 1.0], bgr_to_rgb=False)
    space = PixelSpace.from_preprocessor(pre)
    rgb = _rgb_batch()
    expected = pre(
        dict(inputs=list(rgb[:, [2, 1, 0]])), training=False)['inputs']
    assert not space.model_rgb
    torch.testing.assert_close(space.to_model(rgb), expected)


def test_round_trip_bounds_and_uint8():
    space = PixelSpace(
        mean=(10.0, 20.0, 30.0), std=(2.0, 4.0, 5.0), model_rgb=False)
    rgb = _rgb_batch()
    x = space.to_model(rgb)
    torch.testing.assert_close(space.to_rgb(x), rgb.float())
    # Bounds are 0 and 255 expressed in model space; mean and std are given
    # in the model's (here BGR) channel order.
    torch.testing.assert_close(space.lower.flatten(),
                               torch.tensor([-10 / 2, -20 / 4, -30 / 5]))
    torch.testing.assert_close(space.upper.flatten(),
                               torch.tensor([245 / 2, 235 / 4, 225 / 5]))
    assert bool((x >= space.lower).all() and (x <= space.upper).all())
    out_of_range = space.clamp_(x * 100)
    torch.testing.assert_close(
        space.to_rgb(out_of_range).amax(), torch.tensor(255.0))
    images = space.to_uint8(x)
    assert images.shape == (2, 8, 8, 3) and images.dtype == torch.uint8
    assert torch.equal(images, rgb.permute(0, 2, 3, 1))
    nan = x.clone()
    nan[0, 0, 0, 0] = float('nan')
    assert space.to_uint8(nan)[0, 0, 0, 2] == 0


def test_unnormalised_preprocessor_and_bad_input():
    space = PixelSpace.from_preprocessor(DetDataPreprocessor())
    rgb = _rgb_batch()
    torch.testing.assert_close(space.to_model(rgb), rgb.float()[:, [2, 1, 0]])
    with pytest.raises(ValueError, match='3-channel'):
        PixelSpace(mean=(0.0, ), std=(1.0, ))
    with pytest.raises(ValueError, match=r'\(N, 3, H, W\)'):
        space.to_model(torch.zeros(3, 8, 8))
