"""The bundled "digits-on-photos" detection benchmark.

Real content shipped inside Python packages, so it builds offline and
deterministically: scikit-learn's handwritten digits (``load_digits``, 1797
8x8 grey glyphs of 10 classes) are scaled, coloured and pasted onto crops of
the photographs scikit-image ships in its data folder.

Each split draws from its own digit samples and its own photographs, so the
train, val and test splits share neither. A second mode writes the
out-of-distribution *proxy* set used as a data-free baseline: photo crops of
the same kind with no digits.

The output is a standard COCO data set that mmdet's ``CocoDataset`` loads::

    DIR/
      meta.json                      # the arguments it was built with
      annotations/{train,val,test}.json
      train/000000.png ...
      proxy/000000.png ...  annotations/proxy.json   (proxy mode)
"""
import json
import os
import os.path as osp
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

from mmdiode.utils.fileio import dump_json_atomic

CLASSES: Tuple[str, ...] = tuple(str(d) for d in range(10))
SPLITS: Tuple[str, ...] = ('train', 'val', 'test')

# Photographs of scikit-image's data folder, split so that no photograph
# serves two splits. Synthetic pictures (chessboards, logos, phantoms,
# silhouettes) are left out: the backgrounds should be real clutter.
PHOTOS: Dict[str, Tuple[str, ...]] = {
    'train': ('astronaut.png', 'brick.png', 'camera.png', 'chelsea.png',
              'coffee.png', 'grass.png', 'gravel.png', 'hubble_deep_field.jpg',
              'motorcycle_left.png', 'rocket.jpg', 'page.png', 'cell.png'),
    'val': ('coins.png', 'moon.png', 'clock_motion.png', 'ihc.png'),
    'test': ('retina.jpg', 'motorcycle_right.png', 'text.png',
             'microaneurysms.png'),
}
# Fractions of the 1797 digit samples given to each split (disjoint).
DIGIT_FRACTIONS: Dict[str, float] = {'train': 0.6, 'val': 0.2, 'test': 0.2}


@dataclass
class DigitsConfig:
    """Parameters of the benchmark; all of them are recorded in meta.json.

    Args:
        seed (int): Seed of every random choice.
        num_images (dict): Images per split (train/val/test).
        img_size (int): Side of the square images in pixels.
        min_objects (int): Fewest digits per image.
        max_objects (int): Most digits per image.
        min_digit_size (int): Smallest glyph side in pixels (the 8x8 glyph
            is scaled to this square before its box is tightened).
        max_digit_size (int): Largest glyph side in pixels.
        min_gap (int): Pixels kept free between two boxes (no overlap).
        min_contrast (float): Least luminance difference, in [0, 1], between
            a digit's colour and the mean of the photo under it; keeps every
            digit visible to a human.
        num_proxy (int): Images of the proxy set (photo crops, no digits).
    """
    seed: int = 0
    num_images: Dict[str, int] = field(
        default_factory=lambda: dict(train=3000, val=500, test=500))
    img_size: int = 128
    min_objects: int = 1
    max_objects: int = 6
    min_digit_size: int = 12
    max_digit_size: int = 56
    min_gap: int = 1
    min_contrast: float = 0.3
    num_proxy: int = 0


def photo_dir() -> str:
    """Folder of scikit-image's bundled photographs."""
    import skimage
    return osp.join(osp.dirname(skimage.__file__), 'data')


def load_photo(name: str) -> np.ndarray:
    """Loads a bundled photograph as float32 RGB in [0, 1], shape (H, W, 3)."""
    path = osp.join(photo_dir(), name)
    if not osp.exists(path):
        raise FileNotFoundError(
            f'scikit-image photograph {path} is missing; reinstall '
            'scikit-image (its wheel ships the data folder)')
    img = np.asarray(Image.open(path).convert('RGB'), dtype=np.float32)
    return img / 255.0


def split_digit_indices(labels: np.ndarray,
                        seed: int) -> Dict[str, np.ndarray]:
    """Splits digit samples into disjoint, class-stratified index sets."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 7]))
    out: Dict[str, List[int]] = {s: [] for s in SPLITS}
    for cls in range(len(CLASSES)):
        idx = rng.permutation(np.flatnonzero(labels == cls))
        n_train = int(round(len(idx) * DIGIT_FRACTIONS['train']))
        n_val = int(round(len(idx) * DIGIT_FRACTIONS['val']))
        out['train'] += idx[:n_train].tolist()
        out['val'] += idx[n_train:n_train + n_val].tolist()
        out['test'] += idx[n_train + n_val:].tolist()
    return {s: np.sort(np.asarray(v)) for s, v in out.items()}


def random_photo_crop(photos: Sequence[np.ndarray], size: int,
                      rng: np.random.Generator) -> np.ndarray:
    """A random, randomly scaled square crop of a random photograph.

    Returns:
        np.ndarray: float32 RGB in [0, 1], shape (size, size, 3).
    """
    photo = photos[rng.integers(len(photos))]
    h, w = photo.shape[:2]
    # Crop a window of 1x to 4x the output side, then resize: the scale of
    # the photo's texture varies from image to image. Photos smaller than
    # the output are upsampled.
    side = int(rng.integers(min(size, h, w), min(h, w, 4 * size) + 1))
    y0 = int(rng.integers(0, h - side + 1))
    x0 = int(rng.integers(0, w - side + 1))
    crop = photo[y0:y0 + side, x0:x0 + side]
    if side != size:
        crop = np.stack([
            np.asarray(
                Image.fromarray(crop[..., c]).resize(
                    (size, size), Image.BILINEAR)) for c in range(3)
        ], -1)
    return np.clip(crop, 0.0, 1.0).astype(np.float32)


def scaled_glyph(glyph: np.ndarray, side: int) -> np.ndarray:
    """Scales an 8x8 glyph (values 0..16) to an alpha mask (side, side)."""
    img = Image.fromarray((glyph / 16.0).astype(np.float32))
    alpha = np.asarray(img.resize((side, side), Image.BILINEAR))
    return np.clip(alpha, 0.0, 1.0)


def tight_box(alpha: np.ndarray,
              thr: float = 0.15) -> Tuple[int, int, int, int]:
    """Inclusive-exclusive bounds (x0, y0, x1, y1) of alpha > thr."""
    ys, xs = np.nonzero(alpha > thr)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def _luminance(rgb: np.ndarray) -> np.ndarray:
    return rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)


def contrasting_colour(background: np.ndarray, min_contrast: float,
                       rng: np.random.Generator) -> np.ndarray:
    """A random RGB colour whose luminance differs from the background's."""
    bg_lum = float(_luminance(background.reshape(-1, 3)).mean())
    for _ in range(50):
        colour = rng.random(3).astype(np.float32)
        if abs(float(_luminance(colour)) - bg_lum) >= min_contrast:
            return colour
    # Rare: a mid-grey background; black or white always contrasts enough.
    return np.full(3, 0.0 if bg_lum > 0.5 else 1.0, dtype=np.float32)


def boxes_overlap(box: Sequence[int], others: Sequence[Sequence[int]],
                  gap: int) -> bool:
    x0, y0, x1, y1 = box
    return any(x0 < b[2] + gap and b[0] < x1 + gap and y0 < b[3] + gap
               and b[1] < y1 + gap for b in others)


def render_image(photos: Sequence[np.ndarray], glyphs: np.ndarray,
                 labels: np.ndarray, cfg: DigitsConfig,
                 rng: np.random.Generator
                 ) -> Tuple[np.ndarray, List[Tuple[List[int], int]]]:
    """Renders one image and its objects.

    Returns:
        tuple: uint8 RGB image (S, S, 3) and a list of
        ``([x0, y0, x1, y1], label)`` with tight, non-overlapping boxes.
    """
    size = cfg.img_size
    img = random_photo_crop(photos, size, rng)
    wanted = int(rng.integers(cfg.min_objects, cfg.max_objects + 1))
    objects: List[Tuple[List[int], int]] = []
    attempts = 0
    while len(objects) < wanted and attempts < 200:
        attempts += 1
        k = int(rng.integers(len(glyphs)))
        side = int(rng.integers(cfg.min_digit_size, cfg.max_digit_size + 1))
        alpha = scaled_glyph(glyphs[k], side)
        bx0, by0, bx1, by1 = tight_box(alpha)
        alpha = alpha[by0:by1, bx0:bx1]
        h, w = alpha.shape
        x = int(rng.integers(0, size - w + 1))
        y = int(rng.integers(0, size - h + 1))
        box = [x, y, x + w, y + h]
        if boxes_overlap(box, [o[0] for o in objects], cfg.min_gap):
            continue
        region = img[y:y + h, x:x + w]
        colour = contrasting_colour(region, cfg.min_contrast, rng)
        a = alpha[..., None]
        img[y:y + h, x:x + w] = region * (1 - a) + colour * a
        objects.append((box, int(labels[k])))
    if not objects:
        raise RuntimeError('could not place a single digit; '
                           'min/max_digit_size too large for img_size?')
    return (np.round(img * 255).astype(np.uint8), objects)


def coco_categories() -> List[dict]:
    return [dict(id=i + 1, name=name) for i, name in enumerate(CLASSES)]


def write_png(path: str, img: np.ndarray) -> None:
    Image.fromarray(img).save(path, format='PNG', optimize=False)


def build_split(root: str, split: str, num: int, photos: Sequence[np.ndarray],
                glyphs: np.ndarray, labels: np.ndarray, cfg: DigitsConfig,
                seed_key: int) -> dict:
    """Renders a split into ``root/split`` and returns its COCO dict."""
    if num < 1:
        raise ValueError(f'split "{split}" would have {num} images; '
                         'every split needs at least one')
    rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, seed_key]))
    os.makedirs(osp.join(root, split), exist_ok=True)
    images, annotations = [], []
    for i in range(num):
        img, objects = render_image(photos, glyphs, labels, cfg, rng)
        file_name = f'{split}/{i:06d}.png'
        write_png(osp.join(root, file_name), img)
        images.append(
            dict(id=i, file_name=file_name, width=cfg.img_size,
                 height=cfg.img_size))
        for (x0, y0, x1, y1), label in objects:
            w, h = x1 - x0, y1 - y0
            annotations.append(
                dict(id=len(annotations) + 1, image_id=i,
                     category_id=label + 1, bbox=[x0, y0, w, h], area=w * h,
                     iscrowd=0))
    return dict(images=images, annotations=annotations,
                categories=coco_categories())


def build_proxy(root: str, num: int, photos: Sequence[np.ndarray],
                cfg: DigitsConfig) -> dict:
    """Photo crops without digits: the out-of-distribution proxy set."""
    rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, 99]))
    os.makedirs(osp.join(root, 'proxy'), exist_ok=True)
    images = []
    for i in range(num):
        img = np.round(random_photo_crop(photos, cfg.img_size, rng) * 255)
        file_name = f'proxy/{i:06d}.png'
        write_png(osp.join(root, file_name), img.astype(np.uint8))
        images.append(
            dict(id=i, file_name=file_name, width=cfg.img_size,
                 height=cfg.img_size))
    return dict(images=images, annotations=[], categories=coco_categories())


def build_dataset(out_dir: str,
                  cfg: DigitsConfig,
                  splits: Optional[Sequence[str]] = SPLITS,
                  proxy: bool = False,
                  overwrite: bool = False) -> str:
    """Builds the benchmark into ``out_dir`` atomically.

    Everything is written into a temporary sibling folder that is renamed to
    ``out_dir`` at the end, so an interrupted build leaves nothing half
    written. An existing ``out_dir`` built with the same parameters is kept
    as is (the build is deterministic); one built differently is an error
    unless ``overwrite`` is set.

    Args:
        out_dir (str): Destination folder.
        cfg (DigitsConfig): Benchmark parameters.
        splits (Sequence[str]): Labelled splits to write.
        proxy (bool): Also write the proxy set (``cfg.num_proxy`` images).
        overwrite (bool): Replace an existing, differently built folder.

    Returns:
        str: ``out_dir``.
    """
    from sklearn.datasets import load_digits

    if not isinstance(cfg.seed, int):
        raise TypeError(f'seed must be an integer, got {cfg.seed!r}')
    for split in splits or []:
        if cfg.num_images.get(split, 0) < 1:
            raise ValueError(f'split "{split}" would have '
                             f'{cfg.num_images.get(split, 0)} images; '
                             'every split needs at least one')
    meta = dict(asdict(cfg), splits=list(splits or []), proxy=proxy,
                format_version=1)
    meta_path = osp.join(out_dir, 'meta.json')
    if osp.exists(out_dir):
        if osp.exists(meta_path):
            with open(meta_path, encoding='utf-8') as f:
                if json.load(f) == meta:
                    return out_dir
        if not overwrite:
            raise FileExistsError(
                f'{out_dir} exists and was not built with these parameters; '
                'pass --overwrite to replace it')
    parent = osp.dirname(osp.abspath(out_dir))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=osp.basename(out_dir) + '.tmp-', dir=parent)
    try:
        digits = load_digits()
        index = split_digit_indices(digits.target, cfg.seed)
        os.makedirs(osp.join(tmp, 'annotations'))
        for key, split in enumerate(splits or []):
            photos = [load_photo(p) for p in PHOTOS[split]]
            idx = index[split]
            coco = build_split(tmp, split, cfg.num_images[split], photos,
                               digits.images[idx], digits.target[idx], cfg,
                               seed_key=key)
            dump_json_atomic(coco,
                             osp.join(tmp, 'annotations', f'{split}.json'),
                             sort_keys=True)
        if proxy:
            if cfg.num_proxy < 1:
                raise ValueError('the proxy set needs --num-proxy >= 1')
            photos = [load_photo(p) for p in PHOTOS['train']]
            dump_json_atomic(build_proxy(tmp, cfg.num_proxy, photos, cfg),
                             osp.join(tmp, 'annotations', 'proxy.json'),
                             sort_keys=True)
        dump_json_atomic(meta, osp.join(tmp, 'meta.json'), sort_keys=True)
        if osp.exists(out_dir):
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    finally:
        if osp.exists(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
    return out_dir
