"""Image synthesis by inverting a frozen mmdet teacher (DIODE, MOI).

Importing this package registers ``DeepInversion``,
``MultiObjectImpressions`` and the ``ClassCoOccurrence`` label sampler in
``mmdet.registry.TASK_UTILS``;
``StudentCompetition`` (Adaptive DeepInversion's term) is configured
through their ``competition`` argument.
"""
from .augment import BoxConsistentAugment
from .bn_prior import BNStatisticsPrior
from .class_co_occurrence import ClassCoOccurrence
from .competition import StudentCompetition
from .deep_inversion import DeepInversion, SynthesisResult
from .early_exit import EarlyExit
from .fp_sampling import FalsePositiveSampler
from .image_priors import l2_prior, tv_l1, tv_l2
from .input_space import PixelSpace
from .layout_generator import LayoutGenerator
from .moi import MultiObjectImpressions
from .object_bank import ObjectBank

__all__ = [
    'BoxConsistentAugment', 'BNStatisticsPrior', 'ClassCoOccurrence',
    'DeepInversion', 'EarlyExit', 'FalsePositiveSampler', 'LayoutGenerator',
    'MultiObjectImpressions', 'ObjectBank', 'PixelSpace', 'StudentCompetition',
    'SynthesisResult', 'l2_prior', 'tv_l1', 'tv_l2'
]
