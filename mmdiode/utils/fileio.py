"""Atomic file writes: the one way mmdiode writes a file a reader or a
resumed run may see; and the checked read of a json file such a write made.

Every output (a synthesized PNG, a batch record, a pool index, a
checkpoint, a plot, a results json) is written to a hidden temporary file
beside its final path, ``.<name>.<random>.tmp``, and renamed over it
(``os.replace`` is atomic on POSIX). A process killed mid-write leaves the
previous file intact and at most a stray temporary, which the data sets'
resume scans (:data:`TMP_SUFFIX`) delete. The temporary lives in the same
folder so that the rename never crosses a file system.
"""
import json
import os
import os.path as osp
import tempfile
from contextlib import contextmanager
from typing import IO, Any, Iterator

from .cli import ConfigError

#: Suffix of the temporaries :func:`atomic_open` leaves behind when killed.
TMP_SUFFIX = '.tmp'


@contextmanager
def atomic_open(path: str, mode: str = 'wb',
                encoding: str = None) -> Iterator[IO]:
    """Opens a temporary file beside ``path`` for writing; on a clean exit
    it replaces ``path``, on an error it is deleted and ``path`` is left
    as it was.

    Args:
        path (str): The final file. Its folder is created.
        mode (str): ``'wb'`` or ``'w'``. Defaults to ``'wb'``.
        encoding (str, optional): Text encoding for ``'w'`` (utf-8 when
            not given).

    Yields:
        IO: The open temporary file.
    """
    if mode not in ('w', 'wb'):
        raise ValueError(f"atomic_open writes only ('w', 'wb'), not {mode!r}")
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder,
                               prefix='.' + osp.basename(path) + '.',
                               suffix=TMP_SUFFIX)
    if mode == 'w':
        encoding = encoding or 'utf-8'
    try:
        with os.fdopen(fd, mode, encoding=encoding) as f:
            yield f
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.unlink(tmp)
        raise


def dump_json_atomic(obj: Any, path: str, **kwargs) -> None:
    """Writes ``obj`` as json to ``path`` through :func:`atomic_open`, so
    readers never see a partial file.

    Args:
        obj: A json-serialisable object.
        path (str): The json file.
        **kwargs: Passed to :func:`json.dump` (e.g. ``indent``).
    """
    with atomic_open(path, 'w') as f:
        json.dump(obj, f, **kwargs)


def load_json_object(path: str, what: str, advice: str) -> dict:
    """Reads a json file that must hold a json object.

    For files mmdiode writes (atomically, see :func:`dump_json_atomic`): a
    corrupt one was written by another program or by hand, which the error
    names.

    Args:
        path (str): The json file.
        what (str): What the file should be, for the error, e.g.
            ``'a results json'``.
        advice (str): How to get past a corrupt file, for the error.

    Returns:
        dict: The file's object.

    Raises:
        ConfigError: ``'<path> is not <what> (<problem>); <advice>'``, the
            problem being the json parser's error or the type of the value
            the file holds instead of an object.
    """
    with open(path, encoding='utf-8') as f:
        text = f.read()
    try:
        content = json.loads(text)
        problem = None if isinstance(content, dict) else \
            f'a {type(content).__name__}'
    except ValueError as e:
        problem = str(e)
    if problem is not None:
        raise ConfigError(f'{path} is not {what} ({problem}); {advice}')
    return content
