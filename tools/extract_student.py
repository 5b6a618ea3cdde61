#!/usr/bin/env python
"""Extract the student of a KDDetector checkpoint into a plain checkpoint.

::

    python tools/extract_student.py work_dirs/kd/iter_4000.pth student.pth
    python tools/test.py configs/detectors/yolov3-mv2-x0.5_24e_digits.py \\
        student.pth

How a KD checkpoint loads: a Runner checkpoint of a ``KDDetector`` holds the
student under ``student.*`` and trainable distillation-loss parameters
(adaptation layers) under ``distill_losses.*``; the teacher is never saved
(it is rebuilt from its own config and checkpoint). So the KD checkpoint
loads as it is into the KD config (``tools/test.py KD_CONFIG KD_CKPT``
evaluates the student, whose ``predict`` the wrapper uses, or ``--resume``
training). For the plain student config, this tool writes a checkpoint whose
``state_dict`` is the student's alone (``student.`` stripped, everything
else dropped), with the KD checkpoint's ``meta`` (``dataset_meta`` etc.) and
without optimizer or scheduler states. The output is written to a temporary
file in the same folder and renamed, so an interrupted run never leaves a
partial file behind.
"""
import os.path as osp
import sys
from collections import OrderedDict
from typing import Dict

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import torch  # noqa: E402

import mmdiode  # noqa: E402,F401  (registers the safe globals for loading)
from mmdiode.utils import (CheckpointError, load_checkpoint_file,  # noqa: E402
                           save_checkpoint_atomic)
from mmdiode.utils.cli import (ArgumentParser, ConfigError,  # noqa: E402
                               check_output_file, fail)

STUDENT_PREFIX = 'student.'


def student_state_dict(
        state_dict: Dict[str,
                         torch.Tensor]) -> 'OrderedDict[str, torch.Tensor]':
    """The ``student.*`` entries of a KD state dict, prefix stripped.

    Args:
        state_dict (dict): A ``KDDetector`` state dict (a leading
            ``module.`` from a DDP save is tolerated).

    Returns:
        OrderedDict: The student's state dict.

    Raises:
        CheckpointError: No ``student.*`` key (not a KD checkpoint).
    """
    student = OrderedDict()
    for key, value in state_dict.items():
        key = key[len('module.'):] if key.startswith('module.') else key
        if key.startswith(STUDENT_PREFIX):
            student[key[len(STUDENT_PREFIX):]] = value
    if not student:
        raise CheckpointError(
            'no "student.*" weights in the checkpoint: it is not a '
            'KDDetector checkpoint (a plain detector checkpoint loads into '
            'its config directly)')
    return student


def extract_student(src: str, dst: str) -> int:
    """Writes the student of KD checkpoint ``src`` to ``dst`` atomically.

    Returns:
        int: The number of tensors written.
    """
    check_output_file(dst)
    ckpt = load_checkpoint_file(src)
    state_dict = student_state_dict(ckpt.get('state_dict', ckpt))
    save_checkpoint_atomic(
        dict(meta=ckpt.get('meta', {}), state_dict=state_dict), dst)
    return len(state_dict)


def parse_args(argv=None):
    parser = ArgumentParser(
        description='Write the student of a KDDetector checkpoint as a '
        'plain detector checkpoint')
    parser.add_argument('checkpoint', help='KDDetector checkpoint (.pth)')
    parser.add_argument('out', help='output checkpoint path')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        count = extract_student(args.checkpoint, args.out)
    except (CheckpointError, ConfigError, OSError) as e:
        return fail(e)
    print(f'wrote {count} student tensors to {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
