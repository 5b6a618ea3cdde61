"""The digits-on-photos builder: determinism, tight boxes, disjoint splits."""
import filecmp
import json
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from benchmarks.digits import dataset as digits
from benchmarks.digits.dataset import DigitsConfig, build_dataset

ROOT = osp.abspath(osp.join(osp.dirname(__file__), *[osp.pardir] * 3))
TOOL = osp.join(ROOT, 'tools', 'make_digits_dataset.py')


def small_cfg(seed=0, **kw):
    return DigitsConfig(seed=seed, num_images=dict(train=12, val=4, test=4),
                        **kw)


def test_same_seed_gives_byte_identical_files(tmp_path):
    a = build_dataset(str(tmp_path / 'a'), small_cfg())
    b = build_dataset(str(tmp_path / 'b'), small_cfg())
    files = sorted(
        osp.relpath(osp.join(d, f), a) for d, _, fs in os.walk(a) for f in fs)
    assert len(files) == 12 + 4 + 4 + 3 + 1  # images, 3 jsons, meta
    for rel in files:
        assert filecmp.cmp(osp.join(a, rel), osp.join(b, rel), shallow=False)
    c = build_dataset(str(tmp_path / 'c'), small_cfg(seed=1))
    assert not filecmp.cmp(osp.join(a, 'train/000000.png'),
                           osp.join(c, 'train/000000.png'), shallow=False)


def test_boxes_are_tight_around_the_ink(tmp_path, monkeypatch):
    # A flat grey "photo": every pixel that differs from it is digit ink.
    grey = np.full((256, 256, 3), 0.5, dtype=np.float32)
    monkeypatch.setattr(digits, 'load_photo', lambda name: grey)
    out = build_dataset(str(tmp_path / 'd'), small_cfg())
    coco = json.load(open(osp.join(out, 'annotations', 'train.json')))
    by_image = {}
    for ann in coco['annotations']:
        by_image.setdefault(ann['image_id'], []).append(ann['bbox'])
    for info in coco['images']:
        img = np.asarray(Image.open(osp.join(out, info['file_name'])))
        ink = np.abs(img.astype(int) - 128).max(-1) > 2
        covered = np.zeros_like(ink)
        for x, y, w, h in by_image[info['id']]:
            patch = ink[y:y + h, x:x + w]
            covered[y:y + h, x:x + w] = True
            # every edge row/column of the box holds ink: the box is tight
            assert patch[0].any() and patch[-1].any()
            assert patch[:, 0].any() and patch[:, -1].any()
        assert not (ink & ~covered).any(), 'ink outside every box'


def test_objects_per_image_sizes_and_no_overlap(tmp_path):
    out = build_dataset(str(tmp_path / 'e'), small_cfg())
    for split in digits.SPLITS:
        coco = json.load(open(osp.join(out, 'annotations', f'{split}.json')))
        assert [c['name'] for c in coco['categories']] == list(digits.CLASSES)
        counts = {}
        for ann in coco['annotations']:
            counts[ann['image_id']] = counts.get(ann['image_id'], 0) + 1
            x, y, w, h = ann['bbox']
            assert 0 <= x and x + w <= 128 and 0 <= y and y + h <= 128
            assert max(w, h) <= 56
        assert all(1 <= n <= 6 for n in counts.values())
        assert len(counts) == len(coco['images'])
        boxes = {}
        for ann in coco['annotations']:
            boxes.setdefault(ann['image_id'], []).append(ann['bbox'])
        for bs in boxes.values():
            for i, (x0, y0, w0, h0) in enumerate(bs):
                for x1, y1, w1, h1 in bs[i + 1:]:
                    assert (x0 + w0 <= x1 or x1 + w1 <= x0 or y0 + h0 <= y1
                            or y1 + h1 <= y0)


def test_splits_share_no_digit_sample_and_no_photo():
    index = digits.split_digit_indices(
        __import__('sklearn.datasets').datasets.load_digits().target, 0)
    sets = [set(index[s].tolist()) for s in digits.SPLITS]
    assert not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2])
    assert sum(map(len, sets)) == 1797
    photos = [set(digits.PHOTOS[s]) for s in digits.SPLITS]
    assert not (photos[0] & photos[1] or photos[0] & photos[2]
                or photos[1] & photos[2])


def test_proxy_mode_writes_images_without_objects(tmp_path):
    out = tmp_path / 'proxy'
    r = subprocess.run([
        sys.executable, TOOL, '--proxy', '--out', str(out), '--num-proxy',
        '5', '--viz'
    ], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    coco = json.load(open(out / 'annotations' / 'proxy.json'))
    assert len(coco['images']) == 5 and coco['annotations'] == []
    assert (out / 'viz_proxy.png').exists()


@pytest.mark.parametrize('args, message', [
    (['--seed', 'abc'], 'invalid int value'),
    (['--num-val', '0'], 'split "val" would have 0 images'),
])
def test_bad_input_one_clear_error_and_nothing_left(tmp_path, args, message):
    out = tmp_path / 'bad'
    r = subprocess.run(
        [sys.executable, TOOL, '--out', str(out), '--num-train', '4'] + args,
        capture_output=True, text=True)
    assert r.returncode != 0
    assert message in r.stderr
    assert os.listdir(tmp_path) == []  # no output, no temporary folder


def test_existing_folder_built_differently_is_refused(tmp_path):
    out = str(tmp_path / 'f')
    build_dataset(out, small_cfg())
    build_dataset(out, small_cfg())  # same parameters: kept as is
    with pytest.raises(FileExistsError, match='--overwrite'):
        build_dataset(out, small_cfg(seed=3))
    build_dataset(out, small_cfg(seed=3), overwrite=True)
    assert json.load(open(osp.join(out, 'meta.json')))['seed'] == 3
