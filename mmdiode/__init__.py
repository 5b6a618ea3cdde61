"""mmdiode: data-free knowledge distillation for MMDetection 3.x detectors.

Importing the package registers every component into mmdet's registries
(``mmdet.registry.MODELS``, ``HOOKS``, ``DATASETS``, ...), so a config only
needs
``custom_imports = dict(imports=['mmdiode'], allow_failed_imports=False)``
and bare ``type='...'`` names. It also allow-lists the classes that mmengine
puts into Runner checkpoints for torch's safe loader (see
:mod:`mmdiode.utils.checkpoint`).
"""
from .utils.checkpoint import register_safe_globals
from .version import __version__

register_safe_globals()

# Imported for their side effect: registration into mmdet's registries.
from . import datasets, engine, models  # noqa: E402,F401

__all__ = ['__version__']
