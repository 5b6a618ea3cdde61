"""Teachers: building a frozen teacher from its config and checkpoint, and
its class names.

One home for what the distillation wrapper (``KDDetector``), the synthesis
job (``tools/synthesize.py``) and ``DeepInversionHook`` need of a teacher.
A teacher is set as ``dict(config=..., checkpoint=..., classes=...)``:

* ``config``: a model config dict (with ``type``), a full config dict
  (with ``model``), a config file, or an ``'mmdet::path/to/config.py'``
  path into an installed OpenMMLab package;
* ``checkpoint``: a local file (loaded by mmdiode's safe loader), a URL or
  mmengine scheme (``https://``, ``open-mmlab://``), or None for the
  config's initial weights (for tests and timing only);
* ``classes`` (optional): the class names, for a checkpoint whose meta and
  a config whose data set name none.

Class names are decided in one place, :func:`build_frozen_teacher`:
explicit ``classes``, else the checkpoint's ``dataset_meta``, else the
config's data set ``metainfo``. A checkpoint that leaves parameters of the
teacher unloaded is an error (:func:`mmdiode.utils.check_checkpoint_fits`):
a teacher with random layers would distil noise without a warning.
"""
import importlib.util
import os.path as osp
from typing import Any, Optional, Tuple, Union

from mmdet.registry import MODELS
from mmengine.config import Config, ConfigDict
from mmengine.runner import CheckpointLoader, load_state_dict
from torch import nn

from mmdiode.utils import (CheckpointError, check_checkpoint_fits,
                           load_checkpoint_file)
from mmdiode.utils.checkpoint import strip_module_prefix

#: Keys of a ``teacher`` setting.
TEACHER_KEYS = ('config', 'checkpoint', 'classes')


def load_teacher_model_config(
        config: Union[dict, Config, str]) -> Tuple[dict, Optional[list]]:
    """Returns the teacher's model config and, if present, its class names.

    Args:
        config (dict | str): A model config dict (with ``type``), a full
            config dict (with ``model``), a config file path, or an
            ``'mmdet::path/to/config.py'`` package path.

    Returns:
        tuple[dict, list[str] | None]: The model config and the classes of
        the config's dataset ``metainfo`` (None when it names none).
    """
    if isinstance(config, str):
        if '::' in config:
            cfg = _package_config(config)
        elif not osp.isfile(config):
            raise FileNotFoundError(f'teacher config not found: {config}')
        else:
            cfg = Config.fromfile(config)
    elif isinstance(config, (dict, Config)):
        cfg = config
    else:
        raise TypeError('teacher config must be a dict or a path, got '
                        f'{type(config).__name__}')
    if 'model' in cfg:
        return dict(cfg['model']), _classes_in_config(cfg)
    if 'type' in cfg:
        return dict(cfg), None
    raise ValueError('teacher config has neither "model" (a full config) '
                     'nor "type" (a model config)')


def _package_config(path: str) -> Config:
    """Loads ``'package::rel/path.py'`` from an installed OpenMMLab package.

    mmengine's ``get_config`` would pip-install a missing package; refuse
    instead.
    """
    from mmengine.hub import get_config
    package = path.split('::', 1)[0]
    if importlib.util.find_spec(package) is None:
        raise ValueError(f'teacher config {path}: package "{package}" is '
                         'not installed')
    return get_config(path)


def _classes_in_config(cfg: dict) -> Optional[list]:
    """The dataset ``metainfo['classes']`` a full config declares."""
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        node = (cfg.get(key) or {}).get('dataset')
        while isinstance(node, dict):  # dataset wrappers nest 'dataset'
            classes = (node.get('metainfo') or {}).get('classes')
            if classes:
                return list(classes)
            node = node.get('dataset')
    classes = (cfg.get('metainfo') or {}).get('classes')
    return list(classes) if classes else None


def load_teacher_weights(model: nn.Module,
                         checkpoint: Optional[str]) -> Optional[list]:
    """Loads the teacher's weights strictly; returns the checkpoint's classes.

    Args:
        model (nn.Module): The built teacher.
        checkpoint (str, optional): Local path, or a URL / mmengine scheme
            (``https://``, ``open-mmlab://``...) loaded by mmengine's
            ``CheckpointLoader``. None keeps the initial weights.

    Returns:
        list[str] | None: ``meta['dataset_meta']['classes']`` if saved.

    Raises:
        CheckpointError: The file cannot be read or does not fit the model.
    """
    if checkpoint is None:
        return None
    if '://' in checkpoint:
        ckpt = CheckpointLoader.load_checkpoint(checkpoint, map_location='cpu')
    else:
        ckpt = load_checkpoint_file(checkpoint)
    state_dict = strip_module_prefix(ckpt.get('state_dict', ckpt))
    check_checkpoint_fits(model, state_dict,
                          f'teacher checkpoint {checkpoint}',
                          hint='; give one trained with the teacher config')
    try:
        load_state_dict(model, state_dict, strict=True)
    except RuntimeError as e:
        raise CheckpointError(
            f'teacher checkpoint {checkpoint} does not fit the teacher '
            f'config: {e}') from e
    meta = ckpt.get('meta') or {}
    classes = (meta.get('dataset_meta') or {}).get('classes')
    return list(classes) if classes else None


def check_teacher_cfg(teacher: Any) -> None:
    """Refuses a ``teacher`` setting that is not ``dict(config=...,
    checkpoint=..., classes=...)`` (``checkpoint`` and ``classes``
    optional)."""
    if not isinstance(teacher, dict) or 'config' not in teacher:
        raise ValueError('teacher must be dict(config=..., checkpoint=...)')
    unknown = set(teacher) - set(TEACHER_KEYS)
    if unknown:
        raise ValueError(f'unknown teacher keys {sorted(unknown)}; '
                         f'allowed: {list(TEACHER_KEYS)}')


def declared_teacher_classes(teacher: dict) -> Optional[Tuple[str, ...]]:
    """The teacher's class names known without loading its weights: its
    explicit ``classes``, else its config's data set ``metainfo``.

    Args:
        teacher (dict): The ``teacher`` setting (see :data:`TEACHER_KEYS`).

    Returns:
        tuple[str] | None: The class names, None when neither names them.
    """
    check_teacher_cfg(teacher)
    if teacher.get('classes'):
        return tuple(teacher['classes'])
    classes = load_teacher_model_config(teacher['config'])[1]
    return tuple(classes) if classes else None


def build_frozen_teacher(
        teacher: dict) -> Tuple[nn.Module, Optional[Tuple[str, ...]]]:
    """Builds a teacher, loads its weights and freezes it (eval mode).

    The one place where a teacher's class names are decided: the explicit
    ``classes``, else the checkpoint's ``meta['dataset_meta']``, else the
    config's data set ``metainfo``.

    Args:
        teacher (dict): ``config`` (see :func:`load_teacher_model_config`),
            ``checkpoint`` (see :func:`load_teacher_weights`; absent or
            None keeps the initial weights) and optional ``classes``.

    Returns:
        tuple: The frozen teacher and its class names (None when nothing
        names them).
    """
    check_teacher_cfg(teacher)
    model_cfg, cfg_classes = load_teacher_model_config(teacher['config'])
    model = MODELS.build(ConfigDict(model_cfg))
    ckpt_classes = load_teacher_weights(model, teacher.get('checkpoint'))
    model.eval()
    model.requires_grad_(False)
    classes = teacher.get('classes') or ckpt_classes or cfg_classes
    return model, tuple(classes) if classes else None


def head_num_classes(detector: nn.Module) -> Optional[int]:
    """``num_classes`` of the detector's final box head, if it has one."""
    roi_head = getattr(detector, 'roi_head', None)
    if roi_head is not None and getattr(roi_head, 'bbox_head', None):
        bbox_head = roi_head.bbox_head
        if isinstance(bbox_head, nn.ModuleList):  # cascade: the last stage
            bbox_head = bbox_head[-1]
        return bbox_head.num_classes
    return getattr(getattr(detector, 'bbox_head', None), 'num_classes', None)
