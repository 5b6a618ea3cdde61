import json
from collections import Counter

import numpy as np
import pytest
from mmdet.registry import TASK_UTILS

from mmdiode.models.task_modules import BoxLayoutSampler, Layout
from mmdiode.models.task_modules.layout_sampler import box_iou

CLASSES = ('cat', 'dog', 'bird')


def _check_types(layout: Layout, img_size: int) -> None:
    assert layout.bboxes.dtype == np.float32
    assert layout.labels.dtype == np.int64
    assert layout.bboxes.shape == (len(layout.labels), 4)
    boxes = layout.bboxes
    assert (boxes[:, :2] >= 0).all() and (boxes[:, 2:] <= img_size).all()
    assert (boxes[:, 2:] > boxes[:, :2]).all()
    assert ((layout.labels >= 0) & (layout.labels < 3)).all()


def test_built_from_registry():
    sampler = TASK_UTILS.build(
        dict(type='BoxLayoutSampler', classes=CLASSES, img_size=64))
    assert isinstance(sampler, BoxLayoutSampler)
    assert sampler.num_classes == 3


def test_one_box_sizes_inside_image():
    sampler = BoxLayoutSampler(
        CLASSES, img_size=100, min_size=0.2, max_size=0.8)
    widths, heights = [], []
    for i in range(200):
        layout = sampler.sample(i)
        _check_types(layout, 100)
        assert len(layout.labels) == 1
        w, h = layout.bboxes[0, 2:] - layout.bboxes[0, :2]
        widths.append(w)
        heights.append(h)
    for sides in (widths, heights):
        assert 20 - 1e-4 <= min(sides) and max(sides) <= 80 + 1e-4
        # Uniform in [20, 80]: both ends of the range are reached.
        assert min(sides) < 30 and max(sides) > 70
    # DIODE draws width and height independently.
    assert abs(np.corrcoef(widths, heights)[0, 1]) < 0.3


def test_max_aspect_ratio_bounds_elongation():
    sampler = BoxLayoutSampler(CLASSES, img_size=100, max_aspect_ratio=1.5)
    for i in range(100):
        x0, y0, x1, y1 = sampler.sample(i).bboxes[0]
        ratio = (x1 - x0) / (y1 - y0)
        assert 1 / 1.5 - 1e-4 <= ratio <= 1.5 + 1e-4


def test_multi_box_counts_and_overlap():
    sampler = BoxLayoutSampler(
        CLASSES,
        img_size=128,
        strategy='multi-box',
        min_boxes=2,
        max_boxes=5,
        max_iou=0.1,
        min_size=0.1,
        max_size=0.4)
    counts = Counter()
    for i in range(100):
        layout = sampler.sample(i)
        _check_types(layout, 128)
        counts[len(layout.labels)] += 1
        boxes = layout.bboxes
        for k in range(1, len(boxes)):
            assert box_iou(boxes[k], boxes[:k]).max() <= 0.1 + 1e-6
    assert set(counts) == {2, 3, 4, 5}


def test_multi_box_impossible_settings_raise():
    # Two boxes of at least 90% of the side overlap by far more than 0.
    sampler = BoxLayoutSampler(
        CLASSES,
        img_size=64,
        strategy='multi-box',
        min_boxes=2,
        max_boxes=2,
        max_iou=0.0,
        min_size=0.9,
        max_size=1.0,
        max_attempts=20)
    with pytest.raises(ValueError, match='min_boxes.*max_iou=0.0'):
        sampler.sample(0)


@pytest.mark.parametrize('kwargs, match', [
    (dict(strategy='grid'), 'unknown layout strategy'),
    (dict(min_size=0.5, max_size=0.3), 'min_size'),
    (dict(max_size=1.5), 'max_size'),
    (dict(strategy='multi-box', min_boxes=3, max_boxes=2), 'min_boxes'),
    (dict(strategy='from-annotations'), 'ann_file'),
    (dict(max_aspect_ratio=0.5), 'max_aspect_ratio'),
    (dict(strategy='tiling', tiles_per_side=0), 'tiles_per_side'),
    (dict(strategy='tiling', tiles_per_side=[]), 'tiles_per_side'),
    (dict(strategy='tiling', tiles_per_side=[2, 1.5]), 'tiles_per_side'),
    (dict(strategy='tiling', tiles_per_side=True), 'tiles_per_side'),
])
def test_bad_settings_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        BoxLayoutSampler(CLASSES, img_size=64, **kwargs)


def test_negative_index_raises():
    with pytest.raises(ValueError, match='index'):
        BoxLayoutSampler(CLASSES).sample(-1)


def test_tiling_one_box_per_cell():
    sampler = BoxLayoutSampler(
        CLASSES,
        img_size=96,
        strategy='tiling',
        tiles_per_side=3,
        min_size=0.3,
        max_size=0.9)
    for i in range(20):
        layout = sampler.sample(i)
        _check_types(layout, 96)
        assert len(layout.labels) == 9
        for cell, box in enumerate(layout.bboxes):
            row, col = divmod(cell, 3)
            assert col * 32 - 1e-4 <= box[0] and box[2] <= (col +
                                                            1) * 32 + 1e-4
            assert row * 32 - 1e-4 <= box[1] and box[3] <= (row +
                                                            1) * 32 + 1e-4
            w, h = box[2:] - box[:2]
            assert 0.3 * 32 - 1e-4 <= min(w, h)
            assert max(w, h) <= 0.9 * 32 + 1e-4


def test_tiling_with_several_grids_varies_the_density():
    """tiles_per_side=(2, 3): each image is a 2x2 or a 3x3 grid (both
    occur), boxes inside their cells and sized to them; one grid in a list
    gives the layouts of the integer."""
    mixed = BoxLayoutSampler(CLASSES, img_size=96, strategy='tiling',
                             tiles_per_side=[2, 3], min_size=0.5,
                             max_size=1.0, class_balanced=True)
    assert mixed.slots_per_image == 9
    counts = Counter()
    for i in range(40):
        layout = mixed.sample(i)
        _check_types(layout, 96)
        k = {4: 2, 9: 3}[len(layout.labels)]
        counts[k] += 1
        cell_side = 96 / k
        for cell, box in enumerate(layout.bboxes):
            row, col = divmod(cell, k)
            assert col * cell_side - 1e-4 <= box[0]
            assert box[2] <= (col + 1) * cell_side + 1e-4
            assert row * cell_side - 1e-4 <= box[1]
            assert box[3] <= (row + 1) * cell_side + 1e-4
            assert min(box[2:] - box[:2]) >= 0.5 * cell_side - 1e-4
        again = mixed.sample(i)
        np.testing.assert_array_equal(layout.bboxes, again.bboxes)
    assert counts[2] > 5 and counts[3] > 5
    one = BoxLayoutSampler(CLASSES, img_size=96, strategy='tiling',
                           tiles_per_side=3, seed=4)
    listed = BoxLayoutSampler(CLASSES, img_size=96, strategy='tiling',
                              tiles_per_side=[3], seed=4)
    numpy_int = BoxLayoutSampler(CLASSES, img_size=96, strategy='tiling',
                                 tiles_per_side=np.array([3]), seed=4)
    for i in range(5):
        for other in (listed, numpy_int):
            np.testing.assert_array_equal(one.sample(i).bboxes,
                                          other.sample(i).bboxes)


@pytest.mark.parametrize('strategy', ['one-box', 'multi-box', 'tiling'])
def test_same_layout_per_index_in_any_order(strategy):
    kwargs = dict(
        img_size=64, strategy=strategy, seed=7, min_boxes=3, max_boxes=3)
    a = BoxLayoutSampler(CLASSES, **kwargs)
    b = BoxLayoutSampler(CLASSES, **kwargs)
    forward = [a.sample(i) for i in range(10)]
    backward = [b.sample(i) for i in reversed(range(10))][::-1]
    for x, y in zip(forward, backward):
        np.testing.assert_array_equal(x.bboxes, y.bboxes)
        np.testing.assert_array_equal(x.labels, y.labels)
    other_seed = BoxLayoutSampler(CLASSES, **dict(kwargs, seed=8))
    assert not np.array_equal(other_seed.sample(0).bboxes, forward[0].bboxes)
    assert not np.array_equal(forward[0].bboxes, forward[1].bboxes)


@pytest.mark.parametrize('strategy, per_image', [('one-box', 1), ('tiling', 4),
                                                 ('multi-box', 3)])
def test_class_balanced_counts_differ_by_at_most_one(strategy, per_image):
    classes = tuple(f'c{i}' for i in range(7))
    sampler = BoxLayoutSampler(
        classes,
        img_size=96,
        strategy=strategy,
        class_balanced=True,
        min_boxes=3,
        max_boxes=3,
        min_size=0.1,
        max_size=0.3,
        seed=3)
    labels = []
    for i in range(23):
        labels += sampler.sample(i).labels.tolist()
        counts = np.bincount(labels, minlength=7)
        assert counts.max() - counts.min() <= 1
    assert len(labels) == 23 * per_image
    # The cycle is shuffled, not the fixed order 0, 1, 2, ...
    assert labels[:7] != list(range(7))


def test_unbalanced_labels_cover_all_classes():
    sampler = BoxLayoutSampler(CLASSES, img_size=64)
    labels = [int(sampler.sample(i).labels[0]) for i in range(60)]
    assert set(labels) == {0, 1, 2}


def _write_coco(path, categories, images, annotations):
    with open(path, 'w') as f:
        json.dump(
            dict(
                images=images, annotations=annotations, categories=categories),
            f)


def test_from_annotations_rescales_and_maps_by_name(tmp_path):
    ann_file = str(tmp_path / 'ann.json')
    # Category ids and order differ from the teacher's class order.
    categories = [dict(id=10, name='bird'), dict(id=20, name='cat')]
    images = [
        dict(id=2, file_name='b.png', width=200, height=100),
        dict(id=1, file_name='a.png', width=50, height=50),
        dict(id=3, file_name='c.png', width=50, height=50),  # no boxes
    ]
    annotations = [
        dict(
            id=1,
            image_id=2,
            category_id=10,
            bbox=[20, 10, 100, 50],
            iscrowd=0),
        dict(id=2, image_id=2, category_id=20, bbox=[0, 0, 50, 50],
             iscrowd=1),  # crowd: dropped
        dict(id=3, image_id=1, category_id=20, bbox=[5, 5, 10, 20], iscrowd=0),
        dict(
            id=4, image_id=1, category_id=10, bbox=[0, 0, 0.1, 0.1],
            iscrowd=0),  # under 1 px at 100 px: dropped
    ]
    _write_coco(ann_file, categories, images, annotations)
    sampler = BoxLayoutSampler(
        CLASSES, img_size=100, strategy='from-annotations', ann_file=ann_file)
    first, second = sampler.sample(0), sampler.sample(1)
    # Images in id order: id 1 (50x50, scale 2), then id 2 (200x100).
    np.testing.assert_allclose(first.bboxes, [[10, 10, 30, 50]])
    assert first.labels.tolist() == [CLASSES.index('cat')]
    np.testing.assert_allclose(second.bboxes, [[10, 10, 60, 60]])
    assert second.labels.tolist() == [CLASSES.index('bird')]
    _check_types(second, 100)
    # The image without boxes is skipped; indices wrap around.
    np.testing.assert_array_equal(sampler.sample(2).bboxes, first.bboxes)
    # A caller editing a sample does not change later ones.
    first.bboxes[:] = 0
    np.testing.assert_allclose(sampler.sample(0).bboxes, [[10, 10, 30, 50]])


def test_from_annotations_unknown_category_raises(tmp_path):
    ann_file = str(tmp_path / 'ann.json')
    _write_coco(
        ann_file, [dict(id=1, name='cat'),
                   dict(id=2, name='zebra')],
        [dict(id=1, file_name='a.png', width=10, height=10)],
        [dict(id=1, image_id=1, category_id=2, bbox=[0, 0, 5, 5], iscrowd=0)])
    with pytest.raises(ValueError, match='zebra'):
        BoxLayoutSampler(
            CLASSES, strategy='from-annotations', ann_file=ann_file)


def test_from_annotations_refuses_class_balance(tmp_path):
    with pytest.raises(ValueError, match='class_balanced'):
        BoxLayoutSampler(
            CLASSES,
            strategy='from-annotations',
            ann_file=str(tmp_path / 'x.json'),
            class_balanced=True)
