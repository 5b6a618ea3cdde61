"""Task modules (``mmdet.registry.TASK_UTILS``): the box-layout sampler and
the image synthesizers that invert a teacher (DIODE, MOI)."""
from .inversion import (BNStatisticsPrior, BoxConsistentAugment, DeepInversion,
                        EarlyExit, FalsePositiveSampler,
                        MultiObjectImpressions, PixelSpace, SynthesisResult)
from .layout_sampler import BoxLayoutSampler, Layout

__all__ = [
    'BNStatisticsPrior', 'BoxConsistentAugment', 'BoxLayoutSampler',
    'DeepInversion', 'EarlyExit', 'FalsePositiveSampler', 'Layout',
    'MultiObjectImpressions', 'PixelSpace', 'SynthesisResult'
]
