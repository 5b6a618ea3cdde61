from .checkpoint import (CheckpointError, load_checkpoint_file,
                         register_safe_globals, save_checkpoint_atomic)
from .cli import ConfigError, check_cfg_options, default_work_dir, load_config

__all__ = [
    'CheckpointError', 'load_checkpoint_file', 'register_safe_globals',
    'save_checkpoint_atomic',
    'ConfigError', 'check_cfg_options', 'default_work_dir', 'load_config'
]
