"""mmdiode.datasets (components register on import)."""
from .layout_sampler import BoxLayoutSampler, Layout
from .synthetic_coco import SyntheticCocoWriter
from .box_sampler_dataset import BoxSamplerDataset
from .replay_pool import PoolEntry, ReplayPool

__all__ = [
    'BoxLayoutSampler', 'Layout', 'SyntheticCocoWriter', 'BoxSamplerDataset',
    'PoolEntry', 'ReplayPool'
]
