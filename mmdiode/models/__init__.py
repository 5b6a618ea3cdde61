"""mmdiode.models: the KD detector wrapper and distillation losses."""
from .detectors import KDDetector, TeacherEvalHook
from .distill_base import BaseDistillLoss, DistillContext
from .losses import (DenseHeadKDLoss, OutputMSELoss, RoIHeadKDLoss,
                     YOLOv3OutputKDLoss)

__all__ = [
    'BaseDistillLoss', 'DistillContext', 'KDDetector', 'TeacherEvalHook',
    'OutputMSELoss', 'YOLOv3OutputKDLoss', 'DenseHeadKDLoss', 'RoIHeadKDLoss'
]
