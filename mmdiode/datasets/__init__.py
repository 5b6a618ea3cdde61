"""mmdiode.datasets (components register on import)."""
from .box_sampler_dataset import BoxSamplerDataset
from .layout_sampler import BoxLayoutSampler, Layout
from .replay_pool import PoolEntry, ReplayPool
from .synthetic_coco import SyntheticCocoWriter

__all__ = [
    'BoxLayoutSampler', 'Layout', 'SyntheticCocoWriter', 'BoxSamplerDataset',
    'PoolEntry', 'ReplayPool'
]
