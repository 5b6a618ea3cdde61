"""The amortised initialisation: a generator fitted to synthesized images,
as a warm-start source of DeepInversion (tiny real teachers)."""
import pytest
import torch
from conftest import two_layouts

from mmdiode.models.task_modules.inversion import (DeepInversion,
                                                   LayoutGenerator,
                                                   MultiObjectImpressions,
                                                   PixelSpace)
from mmdiode.models.task_modules.inversion.layout_generator import \
    rasterise_layouts

NO_FP = dict(enable=False)
STAGES = (dict(size=32, iterations=6, lr=0.1, jitter=2),
          dict(size=64, iterations=4, lr=0.05, jitter=4))
AMORTISED = dict(
    enable=True,
    source='amortised',
    stages=[dict(size=64, iterations=3, lr=0.02, jitter=2)],
    amortised=dict(size=32, channels=8, steps=4, batch_size=4))


def _engine(teacher, engine_type=DeepInversion, **kwargs):
    return engine_type(
        teacher, stages=list(STAGES), **{
            'fp_sampling': NO_FP,
            'recombine': AMORTISED,
            **kwargs
        })


def _squares(n=4, size=64):
    """Images with a bright square in a dark field, and its box."""
    images = torch.zeros(n, size, size, 3, dtype=torch.uint8)
    images[:, 16:48, 16:48] = 255
    boxes = [torch.tensor([[16., 16., 48., 48.]])] * n
    return images, boxes, [torch.tensor([1])] * n


def test_rasterise_marks_each_box_with_its_label_and_position():
    label_map, layout = rasterise_layouts(
        [torch.tensor([[2., 2., 6., 4.]])], [torch.tensor([3])], 8, 8)
    assert label_map.shape == (1, 8, 8) and layout.shape == (1, 3, 8, 8)
    inside = label_map[0] == 3
    assert int(inside.sum()) == 8 and bool(inside[2:4, 2:6].all())
    assert torch.equal(layout[0, 0].bool(), inside)
    # u runs left to right over the box's 4 columns, v top to bottom.
    assert torch.allclose(layout[0, 1, 2, 2:6],
                          torch.tensor([0.125, 0.375, 0.625, 0.875]))
    assert torch.allclose(layout[0, 2, 2:4, 2], torch.tensor([0.25, 0.75]))
    assert float(layout[0, :, label_map[0] < 0].abs().sum()) == 0


def test_it_learns_the_images_it_is_offered(teachers):
    """Trained on squares, its image of the same layout is bright in the
    box and dark outside; training lowers its error."""
    teacher = teachers['yolov3']
    gen = LayoutGenerator(size=32, channels=8, steps=60, batch_size=4,
                          lr=1e-2)
    images, boxes, labels = _squares()
    assert gen.add_found(teacher, images, boxes, labels) == 4
    assert len(gen) == 4 and gen.classes() == [1] and gen.steps_taken == 60
    first = gen.last_loss
    gen.add_found(teacher, images, boxes, labels)
    assert gen.last_loss < first
    space = PixelSpace()
    out = gen.compose(torch.randn(2, 3, 64, 64), boxes[:2], labels[:2],
                      space)
    assert out.shape == (2, 3, 64, 64)
    assert float(out[:, :, 24:40, 24:40].mean()) > \
        float(out[:, :, :8, :8].mean()) + 100


def test_noise_adds_the_cold_start_to_the_networks_image(teachers):
    """The start is the network's image plus noise times the background
    noise outside the targets and object_noise times it inside, clamped to
    the input space; with both 0 the network's image alone."""
    images, boxes, labels = _squares(n=2)
    space = PixelSpace()
    background = torch.randn(2, 3, 64, 64,
                             generator=torch.Generator().manual_seed(0))
    starts = []
    for noise, object_noise in ((0.0, 0.0), (0.5, 0.0), (0.5, 0.25)):
        gen = LayoutGenerator(size=32, channels=8, steps=3, batch_size=2,
                              noise=noise, object_noise=object_noise)
        gen.add_found(teachers['yolov3'], images, boxes, labels)
        starts.append(gen.compose(background.clone(), boxes, labels, space))
    inside = torch.zeros(1, 1, 64, 64)
    inside[..., 16:48, 16:48] = 1
    for start, weight in ((starts[1], 0.5 * (1 - inside)),
                          (starts[2], 0.5 * (1 - inside) + 0.25 * inside)):
        expected = space.clamp_(starts[0] + weight * background)
        assert torch.allclose(start, expected, atol=1e-5)
    # Inside the box only object_noise changes the start.
    assert torch.equal(starts[1][..., 16:48, 16:48],
                       starts[0][..., 16:48, 16:48])


def test_same_offers_same_generator_and_saved_state_resumes(
        teachers, tmp_path):
    teacher = teachers['yolov3']
    images, boxes, labels = _squares()
    a, b = (LayoutGenerator(size=32, channels=8, steps=3, batch_size=2)
            for _ in range(2))
    a.add_found(teacher, images, boxes, labels)
    a.save(str(tmp_path / 'gen.pt'))
    b.load(str(tmp_path / 'gen.pt'))
    for gen in (a, b):
        gen.add_found(teacher, images[:2], boxes[:2], labels[:2])
    assert all(
        torch.equal(x, y)
        for x, y in zip(a.net.state_dict().values(),
                        b.net.state_dict().values()))
    assert len(b) == 6 and b.steps_taken == 6
    other = LayoutGenerator(size=16, channels=8)
    with pytest.raises(ValueError, match='other settings'):
        other.load(str(tmp_path / 'gen.pt'))


def test_buffer_keeps_the_newest_images(teachers):
    gen = LayoutGenerator(size=16, channels=4, steps=0, buffer_size=3)
    images, boxes, _ = _squares(n=4)
    gen.add_found(teachers['yolov3'], images, boxes,
                  [torch.tensor([k]) for k in range(4)])
    assert len(gen) == 3 and gen.classes() == [1, 2, 3]


def test_warm_batches_start_from_the_generator(teachers):
    teacher = teachers['yolov3']
    engine = _engine(teacher)
    cold = engine.synthesize(two_layouts(), torch.Generator().manual_seed(0))
    gen = engine.new_object_bank()
    assert isinstance(gen, LayoutGenerator) and len(gen) == 0
    # Untrained: the cold recipe.
    empty = engine.synthesize(two_layouts(), torch.Generator().manual_seed(0),
                              objects=gen)
    assert not empty.warm and torch.equal(empty.images, cold.images)
    gen.add_found(teacher, cold.images, cold.boxes, cold.labels)
    warm = [
        engine.synthesize(two_layouts(), torch.Generator().manual_seed(1),
                          objects=gen) for _ in range(2)
    ]
    assert warm[0].warm and warm[0].iterations == 3
    assert warm[0].images.shape == cold.images.shape
    assert torch.equal(warm[0].images, warm[1].images)


def test_moi_starts_from_the_generator_too(teachers):
    teacher = teachers['faster_rcnn']
    engine = _engine(teacher, MultiObjectImpressions)
    gen = engine.new_object_bank()
    images, boxes, labels = _squares(n=2)
    gen.add_found(teacher, images, boxes, labels)
    result = engine.synthesize(two_layouts(), torch.Generator().manual_seed(0),
                               objects=gen)
    assert result.warm and result.iterations == 3


@pytest.mark.parametrize('recombine, match', [
    (dict(source='crops'), "source must be one of \\('bank', 'amortised'\\)"),
    (dict(amortised=dict(depth=3)), r"amortised: unknown keys \['depth'\]"),
    (dict(amortised=dict(size=2)), 'size must be an int >= 4'),
    (dict(amortised=dict(lr=0)), 'lr must be a number > 0'),
    (dict(amortised=dict(noise=-1)), 'noise must be a number >= 0'),
    (dict(amortised=dict(object_noise=True)),
     'object_noise must be a number >= 0'),
])
def test_bad_settings_name_the_key(teachers, recombine, match):
    with pytest.raises(ValueError, match=match):
        _engine(teachers['yolov3'], recombine=recombine)


def test_labels_beyond_max_classes_say_what_to_raise(teachers):
    gen = LayoutGenerator(size=16, channels=4, max_classes=2)
    images, boxes, _ = _squares(n=1)
    with pytest.raises(ValueError, match='beyond max_classes=2'):
        gen.add_found(teachers['yolov3'], images, boxes, [torch.tensor([2])])


def test_a_bank_file_and_a_generator_file_are_told_apart(teachers, tmp_path):
    from mmdiode.models.task_modules.inversion import ObjectBank
    gen = LayoutGenerator(size=16, channels=4)
    gen.save(str(tmp_path / 'gen.pt'))
    with pytest.raises(ValueError, match='holds no object bank'):
        ObjectBank().load(str(tmp_path / 'gen.pt'))
    ObjectBank().save(str(tmp_path / 'bank.pt'))
    with pytest.raises(ValueError, match='an object bank'):
        gen.load(str(tmp_path / 'bank.pt'))
