"""mmdiode.datasets (components register on import)."""
from .layout_sampler import BoxLayoutSampler, Layout
from .synthetic_coco import SyntheticCocoWriter

__all__ = ['BoxLayoutSampler', 'Layout', 'SyntheticCocoWriter']
