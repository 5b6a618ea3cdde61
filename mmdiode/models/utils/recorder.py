"""Recording the outputs (or inputs) of named submodules during a forward.

A recording name is a module path as in ``model.named_modules()``; the suffix
``':input'`` records the tuple of positional arguments of the call instead
of its output (see :mod:`mmdiode.models.distill_base`). Recording only lasts
for a :func:`record` block, so a deep-copied model (e.g. by an EMA hook)
never carries stale recorders.
"""
from contextlib import contextmanager
from typing import Any, Dict, Iterable, Iterator, List, Tuple

from torch import nn

INPUT_SUFFIX = ':input'


def split_recording_name(name: str) -> Tuple[str, bool]:
    """Splits ``'a.b:input'`` into ``('a.b', True)`` and ``'a.b'`` into
    ``('a.b', False)``."""
    if name.endswith(INPUT_SUFFIX):
        return name[:-len(INPUT_SUFFIX)], True
    return name, False


def check_recording_names(model: nn.Module, names: Iterable[str],
                          role: str) -> None:
    """Raises a clear error for recording names the model does not have.

    Args:
        model (nn.Module): The model whose submodules will be recorded.
        names (Iterable[str]): Recording names.
        role (str): ``'student'`` or ``'teacher'``, for the message.

    Raises:
        ValueError: Naming the first unknown module and a few known ones.
    """
    known = dict(model.named_modules())
    for name in names:
        path, _ = split_recording_name(name)
        if path == '' or path not in known:
            examples = [n for n in known if n and n.count('.') < 2][:12]
            raise ValueError(
                f'the {role} ({type(model).__name__}) has no submodule '
                f'"{path}" (asked for by recording name "{name}"); known '
                f'names include {examples}')


@contextmanager
def record(model: nn.Module, names: Iterable[str]) -> Iterator[Dict[str, Any]]:
    """Records the named submodules of ``model`` while the block runs.

    The modules' ``forward`` is wrapped for the block's duration rather than
    hooked: mmdet calls heads as ``head.forward(x)`` in ``_forward``, which
    bypasses forward hooks. Each entry holds the last call's output (or
    positional arguments for ``':input'`` names); a module called several
    times keeps the last call. Outputs are stored as they are, so student
    outputs keep their autograd graph.

    Args:
        model (nn.Module): The model to record from.
        names (Iterable[str]): Recording names, checked beforehand with
            :func:`check_recording_names`.

    Yields:
        dict[str, Any]: Filled in as the model runs.
    """
    records: Dict[str, Any] = {}
    modules = dict(model.named_modules())
    wanted: Dict[str, List[Tuple[str, bool]]] = {}
    for name in names:
        path, want_input = split_recording_name(name)
        wanted.setdefault(path, []).append((name, want_input))
    patched = []
    for path, entries in wanted.items():
        module = modules[path]
        previous = module.__dict__.get('forward')  # usually none
        original = module.forward

        def forward(*args, _original=original, _entries=entries, **kwargs):
            output = _original(*args, **kwargs)
            for name, want_input in _entries:
                records[name] = args if want_input else output
            return output

        module.forward = forward
        patched.append((module, previous))
    try:
        yield records
    finally:
        for module, previous in reversed(patched):
            if previous is None:
                del module.forward
            else:
                module.forward = previous
