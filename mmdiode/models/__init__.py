"""mmdiode.models: the KD detector wrapper and distillation losses."""
from .detectors import KDDetector
from .distill_base import BaseDistillLoss, DistillContext
from .losses import (DenseHeadKDLoss, OutputMSELoss, RoIHeadKDLoss,
                     YOLOv3OutputKDLoss)
from .task_modules import (BoxLayoutSampler, DeepInversion,
                           MultiObjectImpressions)
from .utils.mmdet_compat import patch_ssd_head

patch_ssd_head()

__all__ = [
    'BaseDistillLoss', 'DistillContext', 'KDDetector', 'BoxLayoutSampler',
    'DeepInversion', 'MultiObjectImpressions', 'OutputMSELoss',
    'YOLOv3OutputKDLoss', 'DenseHeadKDLoss', 'RoIHeadKDLoss'
]
