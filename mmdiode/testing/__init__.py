"""Helpers for tests and examples: tiny real mmdet detectors, tiny runs of
the long jobs, and a launcher of multi-process CPU runs (as
``mmdet.testing`` is for mmdet)."""
from mmdiode.utils.samples import unscaled_metainfo
from ._utils import (TINY_CLASSES, TINY_PREPROCESSOR, make_data_samples,
                     run_dist_tool, save_tiny_teacher, tiny_faster_rcnn,
                     tiny_retinanet, tiny_yolov3, write_tiny_datafree_config,
                     write_tiny_synthesis_config)

__all__ = [
    'TINY_CLASSES', 'TINY_PREPROCESSOR', 'make_data_samples', 'run_dist_tool',
    'save_tiny_teacher', 'tiny_faster_rcnn', 'tiny_retinanet', 'tiny_yolov3',
    'unscaled_metainfo', 'write_tiny_datafree_config',
    'write_tiny_synthesis_config'
]
