import glob
import json
import os
import os.path as osp

import numpy as np
import pytest
import torch
from coco_helpers import load_coco_dataset
from mmdet.structures.bbox import HorizontalBoxes
from mmengine.structures import InstanceData
from PIL import Image

from mmdiode.datasets import SyntheticCocoWriter
from mmdiode.models.task_modules import BoxLayoutSampler

CLASSES = ('cat', 'dog', 'bird')
SIZE = 32


def _images(indices):
    """Float RGB images in [0, 1] whose pixels encode their index."""
    imgs = torch.zeros(len(indices), 3, SIZE, SIZE)
    for k, i in enumerate(indices):
        imgs[k] = i / 100.0
    return imgs


def _write(writer, sampler, batch, rank=0, valid=None, indices=None):
    indices = list(writer.batch_indices(batch)) if indices is None else \
        indices
    writer.write_batch(
        batch,
        _images(indices), [sampler.sample(i) for i in indices],
        valid=valid,
        rank=rank,
        indices=indices)


def _writer(root, **kwargs):
    kwargs = dict(
        dict(
            num_images=10,
            batch_size=4,
            seed=5,
            config=dict(strategy='multi-box', sizes=(0.2, 0.8))), **kwargs)
    return SyntheticCocoWriter(str(root), CLASSES, **kwargs)


def _sampler():
    return BoxLayoutSampler(
        CLASSES,
        img_size=SIZE,
        strategy='multi-box',
        min_boxes=1,
        max_boxes=3,
        min_size=0.2,
        max_size=0.5,
        seed=5)


def test_batches_and_names(tmp_path):
    writer = _writer(tmp_path)
    assert writer.num_batches == 3
    assert list(writer.batch_indices(2)) == [8, 9]
    assert writer.image_file_name(12) == 'images/000012.png'
    assert writer.pending_batches(1, 2) == [1]
    with pytest.raises(ValueError, match='outside'):
        writer.batch_indices(3)


def test_resume_after_kill_then_merge(tmp_path):
    sampler = _sampler()
    writer = _writer(tmp_path)
    _write(writer, sampler, 0, rank=0)
    _write(writer, sampler, 1, rank=1)
    # The kill, in batch 2 of rank 0: one image renamed into place, one
    # still under its temporary name, no record yet; plus a temporary record.
    Image.fromarray(np.zeros(
        (SIZE, SIZE, 3), np.uint8)).save(tmp_path / 'images' / '000008.png')
    (tmp_path / 'images' / '.000009.png.abc123.tmp').write_bytes(b'\x89PN')
    (tmp_path / 'shards' / 'rank0' /
     '.batch_000002.json.x.tmp').write_text('{"batch": 2, "ima')
    with pytest.raises(RuntimeError, match='not finished'):
        writer.merge()

    # Restart: a new writer with the same settings skips finished batches.
    writer = _writer(tmp_path)
    assert writer.done_batches(0) == [0]
    assert writer.done_batches(1) == [1]
    assert writer.done_batches() == [0, 1]
    assert writer.pending_batches(0, 2) == [2]
    assert writer.pending_batches(1, 2) == []
    _write(writer, sampler, 2, rank=0)
    ann_file = writer.merge()

    assert not glob.glob(str(tmp_path / '**' / '.*.tmp'), recursive=True)
    with open(ann_file) as f:
        coco = json.load(f)
    ids = [img['id'] for img in coco['images']]
    assert sorted(ids) == list(range(1, 11))
    ann_ids = [a['id'] for a in coco['annotations']]
    assert sorted(ann_ids) == list(range(1, len(ann_ids) + 1))
    assert coco['categories'] == [
        dict(id=1, name='cat'),
        dict(id=2, name='dog'),
        dict(id=3, name='bird')
    ]
    # The image of index 8 is the regenerated one, not the killed job's.
    img8 = np.asarray(Image.open(tmp_path / 'images' / '000008.png'))
    assert img8.shape == (SIZE, SIZE, 3)
    assert (img8 == round(0.08 * 255)).all()
    with open(tmp_path / 'meta.json') as f:
        meta = json.load(f)
    assert meta['num_images'] == 10 and meta['seed'] == 5
    assert meta['config'] == dict(strategy='multi-box', sizes=[0.2, 0.8])
    assert meta['num_annotations'] == len(ann_ids)

    # mmdet's CocoDataset loads it as is, with the targets of the sampler.
    dataset = load_coco_dataset(tmp_path, CLASSES)
    assert len(dataset) == 10
    assert dataset.metainfo['classes'] == CLASSES
    for idx in range(10):
        info = dataset.get_data_info(idx)
        index = info['img_id'] - 1
        assert osp.exists(info['img_path'])
        assert info['img_path'].endswith(f'{index:06d}.png')
        layout = sampler.sample(index)
        boxes = np.array([inst['bbox'] for inst in info['instances']])
        labels = [inst['bbox_label'] for inst in info['instances']]
        np.testing.assert_allclose(boxes, layout.bboxes, atol=1e-4)
        assert labels == layout.labels.tolist()


def test_invalid_images_are_regenerated_before_merge(tmp_path):
    sampler = _sampler()
    writer = _writer(tmp_path)
    _write(writer, sampler, 0)
    _write(writer, sampler, 1, valid=torch.tensor([True, False, True, False]))
    _write(writer, sampler, 2)
    assert writer.invalid_indices() == [5, 7]
    assert not osp.exists(tmp_path / 'images' / '000005.png')
    assert writer.pending_batches() == []
    with pytest.raises(RuntimeError, match='invalid'):
        writer.merge()
    # A finished image cannot be overwritten by a regeneration.
    with pytest.raises(ValueError, match='invalid indices'):
        _write(writer, sampler, 1, indices=[4, 5])
    _write(writer, sampler, 1, indices=[5, 7], valid=[False, True])
    assert writer.invalid_indices() == [5]
    _write(writer, sampler, 1, indices=[5])
    assert writer.invalid_indices() == []
    writer.merge()
    assert len(load_coco_dataset(tmp_path, CLASSES)) == 10


def test_first_write_must_cover_the_batch(tmp_path):
    writer = _writer(tmp_path)
    with pytest.raises(ValueError, match='no record yet'):
        _write(writer, _sampler(), 0, indices=[0, 1])


def test_restart_with_other_settings_raises(tmp_path):
    _writer(tmp_path)
    with pytest.raises(ValueError, match='num_images'):
        _writer(tmp_path, num_images=12)
    with pytest.raises(ValueError, match='config'):
        _writer(tmp_path, config=dict(strategy='one-box'))


def test_merge_detects_missing_image(tmp_path):
    sampler = _sampler()
    writer = _writer(tmp_path)
    for batch in range(3):
        _write(writer, sampler, batch)
    os.remove(tmp_path / 'images' / '000003.png')
    with pytest.raises(RuntimeError, match='000003.png.*missing'):
        writer.merge()
    assert not osp.exists(writer.ann_file)


def test_batch_recorded_by_two_ranks_raises(tmp_path):
    sampler = _sampler()
    writer = _writer(tmp_path)
    for batch in range(3):
        _write(writer, sampler, batch, rank=0)
    os.makedirs(tmp_path / 'shards' / 'rank1')
    with open(writer.record_path(0, 2)) as f:
        (tmp_path / 'shards' / 'rank1' / 'batch_000002.json').write_text(
            f.read())
    with pytest.raises(RuntimeError, match='recorded twice'):
        writer.merge()


def test_bad_inputs_raise(tmp_path):
    writer = _writer(tmp_path)
    layouts = [_sampler().sample(i) for i in range(4)]
    with pytest.raises(ValueError, match=r'\[0, 1\]'):
        writer.write_batch(0, _images(range(4)) + 2, layouts)
    with pytest.raises(ValueError, match='shape'):
        writer.write_batch(0, torch.zeros(4, SIZE, SIZE), layouts)
    with pytest.raises(ValueError, match='3 layouts'):
        writer.write_batch(0, _images(range(4)), layouts[:3])
    layouts[0].labels[0] = 3
    with pytest.raises(ValueError, match='outside'):
        writer.write_batch(0, _images(range(4)), layouts)
    # Nothing was written by the refused calls.
    assert writer.done_batches() == []
    assert not glob.glob(str(tmp_path / 'images' / '*'))


def test_instance_data_targets(tmp_path):
    """Targets may come as the engine holds them: InstanceData, mmdet boxes."""
    writer = _writer(tmp_path, num_images=2, batch_size=2)
    boxes = torch.tensor([[1.0, 2.0, 11.0, 22.0]])
    layouts = [
        InstanceData(bboxes=HorizontalBoxes(boxes), labels=torch.tensor([2])),
        InstanceData(bboxes=boxes, labels=torch.tensor([0])),
    ]
    writer.write_batch(0, _images([0, 1]), layouts)
    with open(writer.merge()) as f:
        anns = json.load(f)['annotations']
    assert [a['bbox'] for a in anns] == [[1.0, 2.0, 10.0, 20.0]] * 2
    assert [a['category_id'] for a in anns] == [3, 1]
