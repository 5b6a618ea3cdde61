"""mmdiode.datasets (components register on import)."""
from .box_sampler_dataset import BoxSamplerDataset
from .replay_pool import PoolEntry, ReplayPool
from .synthetic_coco import SyntheticCocoWriter

__all__ = [
    'SyntheticCocoWriter', 'BoxSamplerDataset', 'PoolEntry', 'ReplayPool'
]
