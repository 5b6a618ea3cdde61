"""Warm starts: the object bank and batches that start from its objects
(tiny real teachers)."""
import pytest
import torch
from conftest import two_layouts
from mmengine.structures import InstanceData

from mmdiode.models.task_modules.inversion import (DeepInversion,
                                                   MultiObjectImpressions,
                                                   ObjectBank)

NO_FP = dict(enable=False)
STAGES = (dict(size=32, iterations=6, lr=0.1, jitter=2),
          dict(size=64, iterations=4, lr=0.05, jitter=4))
WARM_STAGES = [dict(size=64, iterations=3, lr=0.02, jitter=2)]
WARM = dict(enable=True, stages=WARM_STAGES)


def _engine(teacher, engine_type=DeepInversion, **kwargs):
    return engine_type(
        teacher, stages=list(STAGES), **{
            'fp_sampling': NO_FP,
            'recombine': WARM,
            **kwargs
        })


def _images(n=2, size=64, value=None):
    gen = torch.Generator().manual_seed(n)
    if value is not None:
        return torch.full((n, size, size, 3), value, dtype=torch.uint8)
    return torch.randint(0, 256, (n, size, size, 3), generator=gen,
                         dtype=torch.uint8)


def _always_found(monkeypatch):
    """Every target counts as found (a tiny random teacher finds none)."""
    from mmdiode.models.task_modules.inversion import object_bank
    monkeypatch.setattr(
        object_bank, 'found_targets',
        lambda preds, boxes, labels, score_thr, iou_thr: torch.ones(
            len(boxes), dtype=torch.bool))


def test_the_bank_keeps_what_the_teacher_finds(teachers, monkeypatch):
    """A real predict() on the images decides; a target is kept when a
    prediction of its label overlaps it."""
    teacher = teachers['yolov3']
    bank = ObjectBank(score_thr=0.0, iou_thr=0.01)
    images = _images()
    boxes = [torch.tensor([[0., 0., 64., 64.]]), torch.tensor([[0., 0., 64.,
                                                                64.]])]
    calls = []
    from mmdiode.models.task_modules.inversion import object_bank
    original = object_bank.predict_instances

    def predict(*args):
        preds = original(*args)
        calls.append(preds)
        return preds

    monkeypatch.setattr(object_bank, 'predict_instances', predict)
    added = bank.add_found(teacher, images, boxes, [torch.tensor([0]),
                                                    torch.tensor([1])])
    (preds, ) = calls
    expected = sum(
        int(((p.labels == label) & (p.scores >= 0)).any())
        for p, label in zip(preds, (0, 1)))
    assert added == expected == len(bank)
    # Found by nobody: nothing is kept.
    strict = ObjectBank(score_thr=1.0, iou_thr=1.0)
    assert strict.add_found(teacher, images, boxes,
                            [torch.tensor([0]), torch.tensor([1])]) == 0
    assert len(strict) == 0 and strict.classes() == []


def test_crops_are_the_pixels_of_their_boxes_newest_kept(
        teachers, monkeypatch):
    _always_found(monkeypatch)
    bank = ObjectBank(max_per_class=2)
    for value in (10, 20, 30):
        bank.add_found(teachers['yolov3'], _images(1, value=value),
                       [torch.tensor([[4., 6., 20., 30.], [0., 0., 1., 1.]])],
                       [torch.tensor([3, 3])])
    # The 1x1 box is no crop; class 3 keeps the last two of three.
    assert len(bank) == 2 and bank.classes() == [3]
    crops = bank._crops[3]
    assert [int(c.max()) for c in crops] == [20, 30]
    assert crops[0].shape == (3, 24, 16)
    with pytest.raises(ValueError, match='uint8'):
        bank.add_found(teachers['yolov3'], _images().float(),
                       [torch.zeros(0, 4)] * 2, [torch.zeros(0)] * 2)


def test_compose_pastes_a_crop_of_the_class_at_each_box(
        teachers, monkeypatch):
    _always_found(monkeypatch)
    engine = _engine(teachers['yolov3'])
    space = engine.pixel_space
    bank = engine.new_object_bank()
    bank.add_found(teachers['yolov3'], _images(1, value=200),
                   [torch.tensor([[0., 0., 32., 32.]])], [torch.tensor([1])])
    background = space.to_model(torch.zeros(2, 3, 64, 64))
    out = bank.compose(background.clone(),
                       [torch.tensor([[8., 8., 40., 48.]]),
                        torch.tensor([[4., 30., 30., 60.]])],
                       [torch.tensor([1]), torch.tensor([0])], space,
                       torch.Generator().manual_seed(0))
    rgb = space.to_rgb(out).round()
    assert bool((rgb[0, :, 8:48, 8:40] == 200).all())
    assert bool((rgb[0, :, :8] == 0).all())
    # Class 0 has no crop: its box keeps the background.
    assert torch.equal(out[1], background[1])


def test_warm_batches_run_their_schedule_from_the_objects(
        teachers, monkeypatch):
    _always_found(monkeypatch)
    teacher = teachers['yolov3']
    engine = _engine(teacher)
    cold = engine.synthesize(two_layouts(), torch.Generator().manual_seed(0))
    assert not cold.warm and cold.iterations == 10
    bank = engine.new_object_bank()
    bank.add_found(teacher, cold.images, cold.boxes, cold.labels)
    assert len(bank) == 3 and bank.classes() == [0, 1, 2]

    def warm(seed):
        calls = []
        result = engine.synthesize(
            two_layouts(), torch.Generator().manual_seed(seed),
            callback=lambda it, stage, losses: calls.append((it, stage)),
            objects=bank)
        return result, calls

    first, calls = warm(1)
    assert first.warm and first.iterations == 3
    assert calls == [(0, 0), (1, 0), (2, 0)]
    assert first.images.shape == cold.images.shape
    again, _ = warm(1)
    assert torch.equal(first.images, again.images)
    assert first.loss_history == again.loss_history
    # An empty bank: the cold recipe.
    empty = engine.synthesize(
        two_layouts(), torch.Generator().manual_seed(0),
        objects=engine.new_object_bank())
    assert not empty.warm and torch.equal(empty.images, cold.images)


def test_disabled_is_the_recipe_unchanged(teachers):
    teacher = teachers['yolov3']
    plain = DeepInversion(teacher, stages=list(STAGES), fp_sampling=NO_FP)
    off = _engine(teacher, recombine=dict(WARM, enable=False))
    a = plain.synthesize(two_layouts(), torch.Generator().manual_seed(0))
    b = off.synthesize(two_layouts(), torch.Generator().manual_seed(0))
    assert torch.equal(a.images, b.images)
    assert a.loss_history == b.loss_history
    with pytest.raises(ValueError, match='needs recombine'):
        plain.synthesize(two_layouts(), objects=ObjectBank())


def test_moi_starts_warm_too(teachers, monkeypatch):
    _always_found(monkeypatch)
    teacher = teachers['faster_rcnn']
    engine = _engine(teacher, MultiObjectImpressions)
    bank = engine.new_object_bank()
    bank.add_found(teacher, _images(), [torch.tensor([[0., 0., 32., 32.]])] *
                   2, [torch.tensor([0]), torch.tensor([1])])
    result = engine.synthesize(two_layouts(), torch.Generator().manual_seed(0),
                               objects=bank)
    assert result.warm and result.iterations == 3


@pytest.mark.parametrize('recombine, match', [
    (dict(enable=True), 'needs stages'),
    (dict(enable=True, stages=[dict(size=32, iterations=2, lr=0.1)]),
     r'makes \(32, 32\) images, the recipe \(64, 64\)'),
    (dict(enable=True, stages=[dict(size=64, iterations=0, lr=0.1)]),
     r'recombine.stages\[0\]: iterations must be >= 1'),
    (dict(cold_batches=0), 'cold_batches must be an int >= 1'),
    (dict(max_per_class=0), 'max_per_class must be an int >= 1'),
    (dict(score_thr=2), r'score_thr must be in \[0, 1\]'),
    (dict(bank=1), r"recombine: unknown keys \['bank'\]"),
])
def test_bad_configuration_names_the_key(teachers, recombine, match):
    with pytest.raises(ValueError, match=match):
        _engine(teachers['yolov3'], recombine=recombine)


def test_found_targets_is_the_early_exit_rule():
    from mmdiode.models.task_modules.inversion.early_exit import (
        EarlyExit, found_targets)
    preds = InstanceData(
        bboxes=torch.tensor([[0., 0., 10., 10.], [20., 20., 30., 30.]]),
        scores=torch.tensor([0.9, 0.2]),
        labels=torch.tensor([1, 2]))
    boxes = torch.tensor([[0., 0., 10., 10.], [20., 20., 30., 30.],
                          [0., 0., 10., 10.]])
    labels = torch.tensor([1, 2, 2])
    mask = found_targets(preds, boxes, labels, 0.3, 0.5)
    assert mask.tolist() == [True, False, False]
    assert torch.equal(
        EarlyExit(score_thr=0.3, iou_thr=0.5).found_mask(preds, boxes,
                                                         labels), mask)


def test_recolour_pastes_crops_with_their_channels_reordered(
        teachers, monkeypatch):
    """Each pasted crop is the crop with its RGB channels in an order drawn
    from the generator: the same generator, the same images."""
    _always_found(monkeypatch)
    engine = _engine(teachers['yolov3'], recombine=dict(WARM, recolour=True))
    space = engine.pixel_space
    bank = engine.new_object_bank()
    assert bank.recolour
    crop = torch.zeros(1, 64, 64, 3, dtype=torch.uint8)
    crop[..., 0], crop[..., 1], crop[..., 2] = 10, 100, 200
    bank.add_found(teachers['yolov3'], crop,
                   [torch.tensor([[0., 0., 32., 32.]])], [torch.tensor([1])])
    boxes = [torch.tensor([[0., 0., 16., 16.], [32., 32., 48., 48.]])] * 8
    labels = [torch.tensor([1, 1])] * 8

    def compose(seed):
        background = space.to_model(torch.zeros(8, 3, 64, 64))
        out = bank.compose(background, boxes, labels, space,
                           torch.Generator().manual_seed(seed))
        return space.to_rgb(out).round()

    rgb = compose(0)
    orders = set()
    for image in rgb:
        for y, x in ((0, 0), (32, 32)):
            colours = tuple(int(image[c, y + 8, x + 8]) for c in range(3))
            assert sorted(colours) == [10, 100, 200]
            orders.add(colours)
    assert len(orders) > 1  # 16 crops, not all in the bank's order
    assert torch.equal(rgb, compose(0))


@pytest.mark.parametrize('key', ['refill', 'recolour'])
def test_refill_and_recolour_are_booleans(teachers, key):
    with pytest.raises(ValueError, match=f'recombine: {key} must be True'):
        _engine(teachers['yolov3'], recombine=dict(WARM, **{key: 1}))


def test_feather_mask_ramps_from_the_sides_to_one():
    from mmdiode.models.task_modules.inversion.object_bank import feather_mask
    mask = feather_mask(20, 10, 0.25)
    assert mask.shape == (20, 10)
    # Ramps of 5 rows and 2.5 columns from each side: pixel centres at
    # 0.5, 1.5, ... from the side weigh (1 - cos(pi * d / ramp)) / 2.
    rows = torch.tensor([0.5, 1.5, 2.5, 3.5, 4.5]) / 5
    cols = torch.tensor([0.5, 1.5]) / 2.5
    row_ramp = torch.cat([(1 - torch.cos(torch.pi * rows)) / 2,
                          torch.ones(10)])
    row_ramp = torch.cat([row_ramp[:10], row_ramp[:10].flip(0)])
    col_ramp = torch.cat([(1 - torch.cos(torch.pi * cols)) / 2,
                          torch.ones(6)])
    col_ramp = torch.cat([col_ramp[:5], col_ramp[:5].flip(0)])
    assert torch.allclose(mask, row_ramp[:, None] * col_ramp[None, :])
    assert torch.all(mask[5:15, 2:8] == 1.0)


def test_a_feathered_paste_keeps_the_noise_at_the_crop_border(
        teachers, monkeypatch):
    """Centre of the box: the crop; its corner: mostly what was under it;
    feather=0 pastes the hard rectangle."""
    _always_found(monkeypatch)
    boxes = [torch.tensor([[0., 0., 32., 32.]])]
    labels = [torch.tensor([1])]

    def paste(feather):
        engine = _engine(teachers['yolov3'],
                         recombine=dict(WARM, feather=feather))
        space = engine.pixel_space
        bank = engine.new_object_bank()
        bank.add_found(teachers['yolov3'], _images(1, value=200),
                       [torch.tensor([[0., 0., 32., 32.]])],
                       [torch.tensor([1])])
        background = space.to_model(torch.full((1, 3, 64, 64), 20.))
        return space.to_rgb(bank.compose(background, boxes, labels, space,
                                         torch.Generator().manual_seed(0)))

    from mmdiode.models.task_modules.inversion.object_bank import feather_mask
    hard, soft = paste(0.0), paste(0.25)
    assert torch.allclose(hard[0, :, :32, :32], torch.tensor(200.),
                          atol=0.5)
    # Crop (200) and background (20) mixed by the mask, pixel by pixel.
    expected = 20 + 180 * feather_mask(32, 32, 0.25)
    assert torch.allclose(soft[0, :, :32, :32], expected.expand(3, -1, -1),
                          atol=0.5)
    assert torch.equal(soft[0, :, 32:, :], hard[0, :, 32:, :])
    assert torch.equal(soft[0, :, :32, 32:], hard[0, :, :32, 32:])


@pytest.mark.parametrize('feather', [-0.1, 0.6, True, 'a'])
def test_feather_is_a_fraction_up_to_a_half(teachers, feather):
    with pytest.raises(ValueError, match='recombine: feather must be'):
        _engine(teachers['yolov3'], recombine=dict(WARM, feather=feather))
