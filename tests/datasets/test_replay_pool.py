"""ReplayPool: PNG + per-rank index on disk, eviction, atomic index writes,
persisted counters, warm start from SyntheticCocoWriter output and the COCO
view loaded by mmdet's CocoDataset."""
import json
import os
import os.path as osp

import numpy as np
import pytest
import torch
from coco_helpers import load_coco_dataset
from PIL import Image

from mmdiode.datasets import ReplayPool, SyntheticCocoWriter
from mmdiode.models.task_modules import BoxLayoutSampler, Layout

CLASSES = ('cat', 'dog', 'bird')
SIZE = 32


def _images(n, start=0):
    """(n, SIZE, SIZE, 3) uint8 images whose pixels encode their number."""
    imgs = np.zeros((n, SIZE, SIZE, 3), np.uint8)
    for k in range(n):
        imgs[k] = 10 * (start + k) + np.arange(3)
    return imgs


def _layouts(n, start=0):
    return [
        Layout(np.array([[1, 2, 11 + i, 12 + i]], np.float32),
               np.array([i % 3], np.int64)) for i in range(start, start + n)
    ]


def _tmp_files(root):
    return [
        name for _, _, files in os.walk(root) for name in files
        if name.endswith('.tmp')
    ]


def test_add_writes_pngs_and_index(tmp_path):
    pool = ReplayPool(str(tmp_path), max_size=10, classes=CLASSES)
    pool.add(_images(3), _layouts(3))
    # Tensors and (boxes, labels) pairs are accepted too.
    pool.add(torch.from_numpy(_images(1, start=3)),
             [(torch.tensor([[0., 0., 5., 5.]]), torch.tensor([2]))])
    entries = pool.entries()
    assert len(pool) == 4
    for k, entry in enumerate(entries):
        assert entry.file == osp.join(str(tmp_path), 'images',
                                      f'rank0_{k:08d}.png')
        np.testing.assert_array_equal(np.asarray(Image.open(entry.file)),
                                      _images(1, start=k)[0])
    np.testing.assert_allclose(entries[1].bboxes, [[1, 2, 12, 13]])
    assert entries[1].labels.tolist() == [1]
    assert entries[1].bboxes.dtype == np.float32
    assert entries[1].labels.dtype == np.int64
    with open(tmp_path / 'index_rank0.json') as f:
        index = json.load(f)
    assert index['next_id'] == 4 and len(index['images']) == 4
    with open(tmp_path / 'meta.json') as f:
        assert json.load(f)['classes'] == list(CLASSES)
    assert not _tmp_files(tmp_path)


def test_evicts_oldest_and_deletes_their_files(tmp_path):
    pool = ReplayPool(str(tmp_path), max_size=3, classes=CLASSES)
    pool.add(_images(2), _layouts(2))
    first = pool.entries()
    pool.add(_images(2, start=2), _layouts(2, start=2))
    entries = pool.entries()
    assert len(entries) == 3
    assert [osp.basename(e.file) for e in entries] == [
        'rank0_00000001.png', 'rank0_00000002.png', 'rank0_00000003.png'
    ]
    assert not osp.exists(first[0].file)
    assert sorted(os.listdir(
        tmp_path / 'images')) == [osp.basename(e.file) for e in entries]
    np.testing.assert_allclose(entries[0].bboxes, [[1, 2, 12, 13]])


def test_index_is_replaced_atomically_and_readers_follow(tmp_path):
    writer = ReplayPool(str(tmp_path), max_size=5, classes=CLASSES)
    reader = ReplayPool(str(tmp_path))
    assert reader.classes == CLASSES
    assert len(reader) == 0 and reader.num_added == 0
    writer.add(_images(1), _layouts(1))
    inode = os.stat(tmp_path / 'index_rank0.json').st_ino
    # The reader re-reads the changed index without being told.
    assert len(reader) == 1 and reader.num_added == 1
    assert not reader.refresh()  # unchanged: not re-read
    writer.add(_images(1, start=1), _layouts(1, start=1))
    # A new file renamed over the index, never a rewrite in place.
    assert os.stat(tmp_path / 'index_rank0.json').st_ino != inode
    assert [osp.basename(e.file) for e in reader.entries()
            ] == ['rank0_00000000.png', 'rank0_00000001.png']
    assert not _tmp_files(tmp_path)


def test_ranks_write_own_indexes_and_readers_merge(tmp_path):
    pool = ReplayPool(str(tmp_path), max_size=2, classes=CLASSES)
    pool.add(_images(3), _layouts(3), rank=1)
    pool.add(_images(1, start=5), _layouts(1, start=5), rank=0)
    assert osp.exists(tmp_path / 'index_rank0.json')
    assert osp.exists(tmp_path / 'index_rank1.json')
    # Eviction is per rank; rank 0's entries come first.
    assert [osp.basename(e.file) for e in pool.entries()] == [
        'rank0_00000000.png', 'rank1_00000001.png', 'rank1_00000002.png'
    ]
    assert pool.state_dict() == dict(next_ids={0: 1, 1: 3})


def test_counter_persists_and_checkpoint_state_is_a_lower_bound(tmp_path):
    pool = ReplayPool(str(tmp_path), max_size=4, classes=CLASSES)
    pool.add(_images(2), _layouts(2))
    state = pool.state_dict()
    assert state == dict(next_ids={0: 2})
    # A new process on the same folder continues the numbering.
    again = ReplayPool(str(tmp_path), max_size=4, classes=CLASSES)
    again.add(_images(1), _layouts(1))
    assert osp.basename(again.entries()[-1].file) == 'rank0_00000002.png'
    # A fresh folder restored from a checkpoint never reuses a name.
    fresh = ReplayPool(str(tmp_path / 'fresh'), max_size=4, classes=CLASSES)
    fresh.load_state_dict(dict(next_ids={0: 7}))
    fresh.add(_images(1), _layouts(1))
    assert osp.basename(fresh.entries()[0].file) == 'rank0_00000007.png'
    # Lower than the folder's own counter: the folder wins.
    again.load_state_dict(state)
    again.add(_images(1), _layouts(1))
    assert osp.basename(again.entries()[-1].file) == 'rank0_00000003.png'


def test_classes_are_checked_against_the_recorded_ones(tmp_path):
    ReplayPool(str(tmp_path), classes=CLASSES)
    with pytest.raises(ValueError, match='holds images of the classes'):
        ReplayPool(str(tmp_path), classes=('x', 'y'))


@pytest.mark.parametrize('images, layouts, match', [
    (_images(1).astype(np.float32), _layouts(1), 'uint8'),
    (_images(2), _layouts(1), '2 images but 1 layouts'),
    (_images(1), [Layout(np.array([[0, 0, 40, 5]]), np.array([0]))], 'inside'),
    (_images(1), [Layout(np.array([[0, 0, 4, 5]]), np.array([3]))], 'outside')
])
def test_bad_input_is_refused(tmp_path, images, layouts, match):
    pool = ReplayPool(str(tmp_path), classes=CLASSES)
    with pytest.raises(ValueError, match=match):
        pool.add(images, layouts)
    assert len(pool) == 0


def test_boxes_overshooting_by_rounding_are_clipped(tmp_path):
    pool = ReplayPool(str(tmp_path), classes=CLASSES)
    pool.add(_images(1),
             [Layout(np.array([[-0.01, 0, 32.01, 5]]), np.array([0]))])
    np.testing.assert_allclose(pool.entries()[0].bboxes, [[0, 0, 32, 5]])


def test_remove_orphans(tmp_path):
    pool = ReplayPool(str(tmp_path), classes=CLASSES)
    pool.add(_images(1), _layouts(1))
    stray = ['rank0_00000005.png', '.rank0_00000006.png.x.tmp']
    for name in stray + ['rank1_00000000.png']:
        (tmp_path / 'images' / name).write_bytes(b'x')
    assert pool.remove_orphans(0) == 2
    assert sorted(os.listdir(
        tmp_path / 'images')) == ['rank0_00000000.png', 'rank1_00000000.png']


def _synthetic_coco(root, classes=CLASSES):
    sampler = BoxLayoutSampler(classes,
                               img_size=SIZE,
                               strategy='tiling',
                               min_size=0.5,
                               seed=1)
    writer = SyntheticCocoWriter(str(root), classes, 5, 5)
    images = torch.from_numpy(_images(5)).permute(0, 3, 1, 2)
    writer.write_batch(0, images, [sampler.sample(i) for i in range(5)])
    writer.merge()
    return sampler


def test_warm_start_references_a_synthesized_data_set(tmp_path):
    src = tmp_path / 'synth'
    sampler = _synthetic_coco(src, classes=('bird', 'cat', 'dog'))
    pool = ReplayPool(str(tmp_path / 'pool'), max_size=2, classes=CLASSES)
    # Rank 1 of 2 takes images 1, 3 (max_size would allow 2).
    assert pool.warm_start(str(src), rank=1, world_size=2) == 2
    entries = pool.entries()
    for entry, index in zip(entries, (1, 3)):
        assert entry.file == str(src / 'images' / f'{index:06d}.png')
        layout = sampler.sample(index)
        np.testing.assert_allclose(entry.bboxes, layout.bboxes, atol=1e-4)
        # Labels follow the category names into the pool's class order.
        names = [('bird', 'cat', 'dog')[i] for i in layout.labels]
        assert [CLASSES[i] for i in entry.labels] == names
    # Rank 0 takes images 0, 2 (4 is beyond max_size).
    assert pool.warm_start(str(src), rank=0, world_size=2) == 2
    assert len(pool) == 4
    # Evicting referenced images leaves the source data set intact.
    pool.add(_images(2), _layouts(2), rank=1)
    assert [osp.basename(e.file) for e in pool.entries()[2:]
            ] == ['rank1_00000002.png', 'rank1_00000003.png']
    assert len(os.listdir(src / 'images')) == 5
    assert pool.remove_orphans(1) == 0


def test_warm_start_errors(tmp_path):
    _synthetic_coco(tmp_path / 'synth', classes=('cat', 'dog', 'fish'))
    pool = ReplayPool(str(tmp_path / 'pool'), classes=CLASSES)
    with pytest.raises(ValueError, match="'fish' is not one of"):
        pool.warm_start(str(tmp_path / 'synth'))
    with pytest.raises(FileNotFoundError, match='tools/synthesize.py'):
        pool.warm_start(str(tmp_path))
    with pytest.raises(ValueError, match='needs the pool'):
        ReplayPool(str(tmp_path / 'other')).warm_start(str(tmp_path / 'synth'))
    _synthetic_coco(tmp_path / 'gone')
    os.remove(tmp_path / 'gone' / 'images' / '000002.png')
    with pytest.raises(FileNotFoundError, match='000002.png .* is missing'):
        pool.warm_start(str(tmp_path / 'gone'))


def test_coco_view_loads_in_coco_dataset(tmp_path):
    pool = ReplayPool(str(tmp_path), max_size=3, classes=CLASSES)
    pool.add(_images(2), _layouts(2), rank=1)
    pool.add(_images(1, start=2), _layouts(1, start=2), rank=0)
    assert pool.dump_coco() == osp.join(str(tmp_path), 'annotations.json')
    dataset = load_coco_dataset(tmp_path, CLASSES)
    assert len(dataset) == 3
    for k, entry in enumerate(pool.entries()):
        info = dataset.get_data_info(k)
        assert info['img_path'] == entry.file
        np.testing.assert_allclose([i['bbox'] for i in info['instances']],
                                   entry.bboxes)
        assert [i['bbox_label']
                for i in info['instances']] == entry.labels.tolist()
