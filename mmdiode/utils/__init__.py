from .checkpoint import (CheckpointError, check_checkpoint_fits,
                         load_checkpoint_file, register_safe_globals,
                         save_checkpoint_atomic)
from .cli import ConfigError, check_cfg_options, default_work_dir, load_config

__all__ = [
    'CheckpointError', 'check_checkpoint_fits', 'load_checkpoint_file',
    'register_safe_globals',
    'save_checkpoint_atomic',
    'ConfigError', 'check_cfg_options', 'default_work_dir', 'load_config'
]
