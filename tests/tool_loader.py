"""The tools are scripts, not modules: tests import them by path."""
import importlib.util
import os.path as osp
from types import ModuleType

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def load_tool(name: str) -> ModuleType:
    """Imports ``tools/<name>.py`` as a fresh module.

    Args:
        name (str): The script's path under ``tools/`` without ``.py``,
            e.g. ``'test'`` or ``'analysis_tools/kill_resume'``.

    Returns:
        ModuleType: The executed script (its ``main`` etc.).
    """
    spec = importlib.util.spec_from_file_location(
        'tool_' + name.replace('/', '_'),
        osp.join(ROOT, 'tools', f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
