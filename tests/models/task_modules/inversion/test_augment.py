"""BoxConsistentAugment: boxes follow the pixels through every operation."""
import pytest
import torch

from mmdiode.models.task_modules.inversion import (BoxConsistentAugment,
                                                   PixelSpace)

_GEOMETRY_ONLY = dict(
    flip_prob=0.0, brightness=0.0, contrast=0.0, erase_prob=0.0)


def _painted(boxes, labels, size=64):
    """(1, 3, size, size) zeros with each box filled with label + 1."""
    image = torch.zeros(1, 3, size, size)
    for (x0, y0, x1, y1), label in zip(boxes.long().tolist(), labels):
        image[..., y0:y1, x0:x1] = float(label) + 1
    return image


def _painted_extent(channel, value):
    """xyxy extent of the pixels equal to ``value`` (or None)."""
    ys, xs = torch.nonzero((channel - value).abs() < 0.5, as_tuple=True)
    if len(xs) == 0:
        return None
    return torch.tensor(
        [xs.min(), ys.min(), xs.max() + 1,
         ys.max() + 1], dtype=torch.float32)


@pytest.mark.parametrize('ops', [
    dict(jitter=12, jitter_mode='translate'),
    dict(flip_prob=1.0),
    dict(jitter=12, jitter_mode='translate', flip_prob=0.5),
])
def test_shifted_and_flipped_boxes_enclose_the_same_pixels(ops):
    boxes = torch.tensor([[5., 8., 30., 20.], [35., 30., 60., 62.]])
    labels = torch.tensor([0, 1])
    image = _painted(boxes, labels)
    augment = BoxConsistentAugment(**{**_GEOMETRY_ONLY, **ops})
    for seed in range(6):
        out, out_boxes, out_labels = augment(
            image, [boxes], [labels],
            torch.Generator().manual_seed(seed))
        assert out.shape == image.shape
        for box, label in zip(out_boxes[0], out_labels[0]):
            # Exactly the pixels painted with this label lie in its box.
            assert torch.equal(_painted_extent(out[0, 0], label + 1), box)


def test_roll_keeps_the_unwrapped_part_of_a_box():
    boxes = torch.tensor([[2., 2., 40., 30.]])
    labels = torch.tensor([2])
    image = _painted(boxes, labels)
    augment = BoxConsistentAugment(jitter=20, **_GEOMETRY_ONLY)
    seen_wrap = False
    for seed in range(10):
        out, out_boxes, _ = augment(image, [boxes], [labels],
                                    torch.Generator().manual_seed(seed))
        x0, y0, x1, y1 = out_boxes[0][0].long().tolist()
        assert bool((out[0, :, y0:y1, x0:x1] == 3).all())
        # Pixels that wrapped around lie outside the (clipped) box.
        outside = (out[0, 0] == 3).sum() - (x1 - x0) * (y1 - y0)
        seen_wrap |= bool(outside > 0)
    assert seen_wrap


def test_boxes_pushed_out_are_dropped_with_their_labels():
    boxes = torch.tensor([[0., 0., 3., 3.], [20., 20., 40., 40.]])
    labels = torch.tensor([0, 1])
    image = _painted(boxes, labels)
    augment = BoxConsistentAugment(
        jitter=10, jitter_mode='translate', min_box_size=1.0, **_GEOMETRY_ONLY)
    kept_counts = set()
    for seed in range(20):
        out, out_boxes, out_labels = augment(
            image, [boxes], [labels],
            torch.Generator().manual_seed(seed))
        small_visible = _painted_extent(out[0, 0], 1) is not None
        assert (0 in out_labels[0].tolist()) == small_visible
        assert 1 in out_labels[0].tolist()
        assert len(out_boxes[0]) == len(out_labels[0])
        kept_counts.add(len(out_labels[0]))
    assert kept_counts == {1, 2}


@pytest.mark.parametrize('crop_scale', [(0.3, 0.6), (1.2, 1.6)])
def test_resized_crop_moves_boxes_with_the_pixels(crop_scale):
    boxes = torch.tensor([[16., 12., 44., 52.]])
    labels = torch.tensor([0])
    image = _painted(boxes, labels)
    augment = BoxConsistentAugment(
        crop_prob=1.0, crop_scale=crop_scale, **_GEOMETRY_ONLY)
    for seed in range(6):
        out, out_boxes, _ = augment(image, [boxes], [labels],
                                    torch.Generator().manual_seed(seed))
        extent = _painted_extent((out[0, 0] > 0.5).float(), 1)
        if len(out_boxes[0]) == 0:
            assert extent is None or (extent[2:] - extent[:2]).min() <= 1
            continue
        # Bilinear resampling: the half-intensity edge is within 1 px.
        torch.testing.assert_close(extent, out_boxes[0][0], atol=1.0, rtol=0.0)


def test_outputs_are_differentiable_and_reproducible():
    images = torch.randn(3, 3, 32, 32, requires_grad=True)
    boxes = [torch.tensor([[4., 4., 20., 20.]])] * 3
    labels = [torch.tensor([1])] * 3
    augment = BoxConsistentAugment(jitter=6, crop_prob=0.5)
    out1, boxes1, _ = augment(images, boxes, labels,
                              torch.Generator().manual_seed(3))
    out2, boxes2, _ = augment(images, boxes, labels,
                              torch.Generator().manual_seed(3))
    out3, _, _ = augment(images, boxes, labels,
                         torch.Generator().manual_seed(4))
    assert torch.equal(out1, out2)
    assert all(torch.equal(a, b) for a, b in zip(boxes1, boxes2))
    assert not torch.equal(out1, out3)
    out1.square().sum().backward()
    assert torch.isfinite(images.grad).all() and images.grad.abs().sum() > 0


def test_brightness_is_in_intensity_units_and_contrast_scales():
    space = PixelSpace(mean=(0.0, 0.0, 0.0), std=(2.0, 4.0, 8.0))
    boxes, labels = [torch.zeros(0, 4)] * 4, [torch.zeros(0).long()] * 4
    brightness = BoxConsistentAugment(
        flip_prob=0.0,
        brightness=0.2,
        contrast=0.0,
        erase_prob=0.0,
        pixel_space=space)
    out, _, _ = brightness(
        torch.zeros(4, 3, 8, 8), boxes, labels,
        torch.Generator().manual_seed(0))
    # The same offset in [0, 1] units is 255 / std model units per channel.
    offset_rgb = out[:, :, 0, 0] * space.std.view(1, 3) / 255
    torch.testing.assert_close(offset_rgb, offset_rgb[:, :1].expand(4, 3))
    assert offset_rgb.abs().min() > 0
    contrast = BoxConsistentAugment(
        flip_prob=0.0, brightness=0.0, contrast=0.1, erase_prob=0.0)
    x = torch.randn(4, 3, 8, 8)
    out, _, _ = contrast(x, boxes, labels, torch.Generator().manual_seed(0))
    gain = out / x
    torch.testing.assert_close(gain, gain[:, :1, :1, :1].expand_as(gain))


def test_random_erasing_fills_a_rectangle_with_the_mean_colour():
    augment = BoxConsistentAugment(
        flip_prob=0.0,
        brightness=0.0,
        contrast=0.0,
        erase_prob=1.0,
        erase_scale=(0.02, 0.2))
    boxes = [torch.tensor([[0., 0., 8., 8.]])] * 4
    labels = [torch.tensor([0])] * 4
    out, out_boxes, _ = augment(
        torch.ones(4, 3, 32, 32), boxes, labels,
        torch.Generator().manual_seed(0))
    erased = (out == 0).all(1).flatten(1).float().mean(1)
    assert bool((erased > 0).all() and (erased < 0.25).all())
    assert all(torch.equal(b, boxes[0]) for b in out_boxes)  # occlusion


def test_random_erasing_is_kornias_own_in_value_and_gradient():
    """The erasing applies kornia's RandomErasing itself: same rectangles,
    same images chosen (p=0.5 mixes both), gradient 0 inside them."""
    import kornia.augmentation as K
    augment = BoxConsistentAugment(
        flip_prob=0.0,
        brightness=0.0,
        contrast=0.0,
        erase_prob=0.5,
        erase_scale=(0.02, 0.2),
        erase_ratio=(0.3, 3.3))
    kornia_eraser = K.RandomErasing(
        scale=(0.02, 0.2), ratio=(0.3, 3.3), value=0.0, p=0.5)
    x = torch.rand(8, 3, 24, 32) + 0.5  # never 0 before erasing
    chosen = set()
    for seed in range(10):
        seed_drawn = int(
            torch.randint(
                0, 2**62, (1, ),
                generator=torch.Generator().manual_seed(seed)))
        torch.manual_seed(seed_drawn)
        expected = kornia_eraser(x)
        leaf = x.clone().requires_grad_(True)
        out = augment._erase(leaf, torch.Generator().manual_seed(seed))
        assert torch.equal(out, expected)
        out.sum().backward()
        assert torch.equal(leaf.grad, (expected != 0).float())
        chosen.update((expected == 0).flatten(1).any(1).tolist())
    assert chosen == {True, False}


def test_bad_arguments():
    with pytest.raises(ValueError, match='jitter_mode'):
        BoxConsistentAugment(jitter_mode='wrap')
    with pytest.raises(ValueError, match='flip_prob'):
        BoxConsistentAugment(flip_prob=1.5)
    with pytest.raises(ValueError, match='2 images but 1 box'):
        BoxConsistentAugment()(torch.zeros(2, 3, 8, 8), [torch.zeros(0, 4)],
                               [torch.zeros(0).long()])
