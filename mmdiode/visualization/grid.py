"""Grids of detection images with their boxes, for a quick look by eye."""
import os.path as osp
from typing import Optional, Sequence

import numpy as np
from PIL import Image, ImageDraw

from ..utils.fileio import atomic_open

# A fixed palette so a class keeps its colour across pictures.
PALETTE = [(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200),
           (245, 130, 48), (145, 30, 180), (70, 240, 240), (240, 50, 230),
           (210, 245, 60), (250, 190, 190), (0, 128, 128), (170, 110, 40)]


def draw_boxes(img: np.ndarray,
               boxes: np.ndarray,
               labels: Sequence[int],
               class_names: Sequence[str],
               scores: Optional[Sequence[float]] = None,
               scale: int = 2) -> Image.Image:
    """Draws boxes and class names on an image.

    Args:
        img (np.ndarray): uint8 RGB image, shape (H, W, 3).
        boxes (np.ndarray): Boxes (x0, y0, x1, y1) in pixels, shape (K, 4).
        labels (Sequence[int]): Class index of each box, length K.
        class_names (Sequence[str]): Names indexed by label.
        scores (Sequence[float], optional): Confidence shown after the name.
        scale (int): Upsampling factor, so small images stay legible.

    Returns:
        PIL.Image.Image: The annotated image, (H*scale, W*scale).
    """
    h, w = img.shape[:2]
    canvas = Image.fromarray(img).resize((w * scale, h * scale),
                                         Image.NEAREST)
    draw = ImageDraw.Draw(canvas)
    for k, (box, label) in enumerate(zip(np.asarray(boxes), labels)):
        colour = PALETTE[int(label) % len(PALETTE)]
        x0, y0, x1, y1 = (float(v) * scale for v in box)
        draw.rectangle([x0, y0, x1 - 1, y1 - 1], outline=colour, width=2)
        text = str(class_names[int(label)])
        if scores is not None:
            text += f' {float(scores[k]):.2f}'
        tx, ty = x0 + 2, max(0.0, y0 - 11)
        tw = draw.textlength(text)
        draw.rectangle([tx - 1, ty, tx + tw + 1, ty + 10], fill=colour)
        draw.text((tx, ty - 1), text, fill=(0, 0, 0))
    return canvas


def save_grid(tiles: Sequence[Image.Image], path: str, ncols: int = 8,
              pad: int = 2) -> str:
    """Saves equally sized tiles as one PNG grid (written atomically)."""
    if not tiles:
        raise ValueError('no images to put in the grid')
    tw, th = tiles[0].size
    nrows = (len(tiles) + ncols - 1) // ncols
    ncols = min(ncols, len(tiles))
    size = (ncols * (tw + pad) + pad, nrows * (th + pad) + pad)
    grid = Image.new('RGB', size, (255, 255, 255))
    for i, tile in enumerate(tiles):
        r, c = divmod(i, ncols)
        grid.paste(tile, (pad + c * (tw + pad), pad + r * (th + pad)))
    with atomic_open(path) as f:
        grid.save(f, format='PNG')
    return path


def coco_grid(ann_file: str, img_root: str, path: str, num: int = 32,
              ncols: int = 8) -> str:
    """Draws the first ``num`` images of a COCO json with their boxes.

    Args:
        ann_file (str): COCO annotation json.
        img_root (str): Folder that ``file_name`` entries are relative to.
        path (str): Output PNG.
        num (int): Number of images in the grid.
        ncols (int): Columns of the grid.
    """
    import json
    with open(ann_file, encoding='utf-8') as f:
        coco = json.load(f)
    cats = sorted(coco['categories'], key=lambda c: c['id'])
    cat_index = {c['id']: i for i, c in enumerate(cats)}
    names = [c['name'] for c in cats]
    by_image = {}
    for ann in coco['annotations']:
        by_image.setdefault(ann['image_id'], []).append(ann)
    tiles = []
    for info in coco['images'][:num]:
        img = np.asarray(
            Image.open(osp.join(img_root, info['file_name'])).convert('RGB'))
        anns = by_image.get(info['id'], [])
        boxes = np.array([[a['bbox'][0], a['bbox'][1],
                           a['bbox'][0] + a['bbox'][2],
                           a['bbox'][1] + a['bbox'][3]] for a in anns],
                         dtype=np.float32).reshape(-1, 4)
        labels = [cat_index[a['category_id']] for a in anns]
        tiles.append(draw_boxes(img, boxes, labels, names))
    return save_grid(tiles, path, ncols=ncols)
