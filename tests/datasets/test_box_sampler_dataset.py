"""BoxSamplerDataset: placeholders while the pool is empty, pool images with
their targets through real mmdet pipelines, reproducibility, classes, data
loader workers that see images added after they started, and a pool_dir
left to DeepInversionHook (the Runner side is in
tests/engine/hooks/test_deep_inversion_hook.py)."""
import os
import os.path as osp

import numpy as np
import pytest
import torch
from mmdet.registry import DATASETS
from mmdet.utils import register_all_modules
from mmengine.dataset import pseudo_collate
from PIL import Image
from torch.utils.data import DataLoader

from mmdiode.datasets import BoxSamplerDataset, ReplayPool
from mmdiode.models.task_modules import Layout
from mmdiode.utils.cli import ConfigError

CLASSES = ('cat', 'dog', 'bird')
SIZE = 32


@pytest.fixture(scope='module', autouse=True)
def _registered():
    torch.set_num_threads(1)
    register_all_modules()


def _dataset(pool_dir, **kwargs):
    cfg = dict(type='BoxSamplerDataset',
               pool_dir=None if pool_dir is None else str(pool_dir),
               layout_sampler=dict(type='BoxLayoutSampler',
                                   strategy='multi-box',
                                   min_size=0.2,
                                   max_size=0.5),
               num_samples=6,
               img_size=SIZE,
               seed=3,
               metainfo=dict(classes=CLASSES),
               pipeline=[dict(type='PackDetInputs')])
    cfg.update(kwargs)
    return DATASETS.build(cfg)


def _fill(pool_dir, n, start=0, max_size=10):
    """Adds n distinct images (value encodes the number) with one box."""
    pool = ReplayPool(str(pool_dir), max_size=max_size, classes=CLASSES)
    rng = np.random.default_rng(start)
    images = rng.integers(0, 256, (n, SIZE, SIZE, 3), dtype=np.uint8)
    layouts = [
        Layout(np.array([[2, 3, 12 + k, 20]], np.float32),
               np.array([(start + k) % 3])) for k in range(n)
    ]
    pool.add(images, layouts)
    return pool


def test_empty_pool_gives_seeded_noise_with_the_layout(tmp_path):
    dataset = _dataset(tmp_path)
    assert isinstance(dataset, BoxSamplerDataset) and len(dataset) == 6
    sample = dataset[4]
    inputs, data_sample = sample['inputs'], sample['data_samples']
    assert inputs.shape == (3, SIZE, SIZE) and inputs.dtype == torch.uint8
    layout = dataset.layout(4)
    np.testing.assert_allclose(data_sample.gt_instances.bboxes.numpy(),
                               layout.bboxes)
    assert data_sample.gt_instances.labels.tolist() == layout.labels.tolist()
    assert data_sample.img_id == 4
    # Reproducible in another instance; other indices differ.
    again = _dataset(tmp_path)[4]
    assert torch.equal(again['inputs'], inputs)
    assert not torch.equal(dataset[3]['inputs'], inputs)
    # The layout is the sampler's pure function of (seed, index), for any
    # index (the hook's counter runs past num_samples).
    np.testing.assert_allclose(
        dataset.layout(100).bboxes,
        dataset.layout_sampler.sample(100).bboxes)
    assert dataset.layout_sampler.img_size == SIZE
    assert dataset.layout_sampler.seed == 3


def test_pool_images_go_through_a_real_pipeline(tmp_path):
    pool = _fill(tmp_path, 3)
    dataset = _dataset(tmp_path,
                       pipeline=[
                           dict(type='RandomFlip', prob=1.0),
                           dict(type='PackDetInputs')
                       ])
    files = {e.file: e for e in pool.entries()}
    for i in range(len(dataset)):
        data_sample = dataset[i]['data_samples']
        entry = files[data_sample.img_path]
        rgb = np.asarray(Image.open(entry.file))
        # Loaded as BGR (as LoadImageFromFile), then flipped.
        expected = torch.from_numpy(rgb[:, ::-1, ::-1].copy()).permute(2, 0, 1)
        assert torch.equal(dataset[i]['inputs'], expected)
        x0, y0, x1, y1 = entry.bboxes[0]
        np.testing.assert_allclose(data_sample.gt_instances.bboxes.numpy(),
                                   [[SIZE - x1, y0, SIZE - x0, y1]])
        assert data_sample.gt_instances.labels.tolist() == \
            entry.labels.tolist()
        assert data_sample.flip


def test_pool_choice_is_seeded_and_covers_the_pool(tmp_path):
    _fill(tmp_path, 5)
    dataset = _dataset(tmp_path, num_samples=40)
    paths = [dataset[i]['data_samples'].img_path for i in range(40)]
    again = _dataset(tmp_path, num_samples=40)
    assert [again[i]['data_samples'].img_path for i in range(40)] == paths
    assert len(set(paths)) == 5
    other = _dataset(tmp_path, num_samples=40, seed=4)
    assert [other[i]['data_samples'].img_path for i in range(40)] != paths


def test_classes_from_the_pool_or_a_clear_error(tmp_path):
    dataset = _dataset(tmp_path / 'a', metainfo=None)
    with pytest.raises(ValueError, match='has no classes'):
        dataset[0]
    _fill(tmp_path / 'a', 1)  # the hook records the teacher's classes
    assert dataset.metainfo['classes'] == CLASSES
    assert dataset.classes == CLASSES
    _fill(tmp_path / 'b', 1)
    with pytest.raises(ValueError, match='differ from the classes'):
        _dataset(tmp_path / 'b',
                 metainfo=dict(classes=('x', 'y', 'z'))).classes


def test_bad_configs(tmp_path):
    with pytest.raises(ValueError, match='img_size=64 differs'):
        _dataset(tmp_path,
                 layout_sampler=dict(type='BoxLayoutSampler', img_size=64))
    with pytest.raises(ValueError, match='do not set classes'):
        _dataset(tmp_path,
                 layout_sampler=dict(type='BoxLayoutSampler', classes=CLASSES))
    with pytest.raises(IndexError):
        _dataset(tmp_path).load_sample(6)


def test_workers_see_images_added_after_they_started(tmp_path):
    _fill(tmp_path, 2, max_size=2)
    dataset = _dataset(tmp_path, num_samples=4)
    loader = DataLoader(dataset,
                        batch_size=4,
                        num_workers=1,
                        persistent_workers=True,
                        collate_fn=pseudo_collate)
    first = {s.img_path for s in next(iter(loader))['data_samples']}
    assert {osp.basename(p)
            for p in first} <= {'rank0_00000000.png', 'rank0_00000001.png'}
    # Two new images evict the two old ones; the same worker process
    # re-reads the index.
    _fill(tmp_path, 2, start=2, max_size=2)
    second = {s.img_path for s in next(iter(loader))['data_samples']}
    assert {osp.basename(p)
            for p in second} <= {'rank0_00000002.png', 'rank0_00000003.png'}


def test_without_pool_dir_nothing_reads_the_pool_until_it_is_set(tmp_path):
    """pool_dir None (the default, filled in by DeepInversionHook): length
    and metainfo need no pool; a read says what to set; once set, the data
    set serves that folder."""
    dataset = _dataset(None, metainfo=None)
    assert dataset.pool_dir is None and len(dataset) == 6
    assert 'classes' not in dataset.metainfo  # no pool to take them from
    assert dataset._pool is None  # nothing opened
    for read in (lambda: dataset[0], lambda: dataset.classes,
                 lambda: dataset.layout(0)):
        with pytest.raises(ConfigError,
                           match='no pool_dir: a DeepInversionHook in the '
                           'run sets it'):
            read()
    _fill(tmp_path / 'pool', 2)
    dataset.pool_dir = str(tmp_path / 'pool')
    assert dataset.metainfo['classes'] == CLASSES
    assert osp.dirname(dataset[0]['data_samples'].img_path) == str(
        tmp_path / 'pool' / 'images')
    # Declared classes: the metainfo is complete without a pool too.
    declared = _dataset(None)
    assert declared.metainfo['classes'] == CLASSES


def test_missing_pool_image_is_reported(tmp_path):
    pool = _fill(tmp_path, 1)
    os.remove(pool.entries()[0].file)  # deleted behind the index's back
    with pytest.raises(RuntimeError, match='kept disappearing'):
        _dataset(tmp_path).load_sample(0)
