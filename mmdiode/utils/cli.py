"""Helpers shared by the command-line tools: config loading and options."""
import os.path as osp
from typing import Optional

from mmengine.config import Config, DictAction  # noqa: F401 (re-export)

# Runner arguments that configs may leave out but --cfg-options may set.
RUNNER_KEYS = frozenset({
    'randomness', 'resume', 'load_from', 'work_dir', 'launcher', 'env_cfg',
    'experiment_name', 'default_hooks', 'custom_hooks', 'log_level',
    'visualizer', 'cfg', 'auto_scale_lr'
})


class ConfigError(ValueError):
    """A config path or a --cfg-options key is wrong."""


def _has_path(cfg: Config, dotted: str) -> bool:
    node = cfg.to_dict()
    for part in dotted.split('.'):
        if isinstance(node, (list, tuple)) and part.isdigit():
            if int(part) >= len(node):
                return False
            node = node[int(part)]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            return False
    return True


def check_cfg_options(cfg: Config, options: Optional[dict]) -> None:
    """Refuses --cfg-options keys that do not exist in the config.

    mmengine would silently add a mistyped key (``train_cfg.max_epoch``);
    we refuse it unless the full path exists or its first part is one of
    the Runner's own arguments (``randomness.seed`` etc.).

    Raises:
        ConfigError: Naming the first unknown key.
    """
    for key in options or {}:
        if key.split('.')[0] in RUNNER_KEYS or _has_path(cfg, key):
            continue
        raise ConfigError(
            f'unknown --cfg-options key "{key}": it is not in the config '
            f'{cfg.filename}')


def load_config(path: str, options: Optional[dict] = None) -> Config:
    """Loads a config file and merges checked --cfg-options into it."""
    if not osp.isfile(path):
        raise ConfigError(f'config file not found: {path}')
    cfg = Config.fromfile(path)
    check_cfg_options(cfg, options)
    if options:
        cfg.merge_from_dict(options)
    return cfg


def default_work_dir(config_path: str) -> str:
    """``./work_dirs/<config name>``, as mmdet's tools do."""
    return osp.join('./work_dirs', osp.splitext(osp.basename(config_path))[0])
