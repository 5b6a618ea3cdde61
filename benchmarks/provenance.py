"""Where a benchmark's numbers come from: the commit they were measured on.
"""
import os.path as osp
import subprocess
from typing import Sequence


def git_commit(outputs: Sequence[str] = ()) -> str:
    """HEAD's hash, with ``-dirty`` when tracked files differ from it.

    Args:
        outputs (Sequence[str]): Files this tool itself rewrites (the results
            json and plot): changes to them do not count as dirty.

    Returns:
        str: The hash (``-dirty`` appended), or ``'unknown'`` outside a git
        checkout or without git.
    """
    # Outputs outside the repository (e.g. /tmp) are not git's business.
    excludes = [f':(exclude){path}' for path in outputs
                if not osp.relpath(path).startswith('..')]
    try:
        head = subprocess.run(['git', 'rev-parse', 'HEAD'],
                              capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(['git', 'status', '--porcelain',
                                '--untracked-files=no', '--', '.'] + excludes,
                               capture_output=True, text=True,
                               check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return 'unknown'
    return head + ('-dirty' if dirty else '')
