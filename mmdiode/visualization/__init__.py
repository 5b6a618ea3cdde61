"""Drawing detection images with their boxes."""
from .grid import coco_grid, draw_boxes, save_grid

__all__ = ["coco_grid", "draw_boxes", "save_grid"]
