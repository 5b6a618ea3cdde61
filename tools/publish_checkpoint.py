#!/usr/bin/env python
"""Write a Runner checkpoint for release: weights and meta only.

Like mmdet's ``tools/model_converters/publish_model.py``: drops the
optimizer, scheduler and message-hub states, optionally stores the
floating-point weights in half precision (``--fp16``; they load into a
float32 model as usual, ``load_state_dict`` copies with conversion), writes
atomically and prints the file's size and SHA-256.

::

    python tools/publish_checkpoint.py work_dirs/yolov3_teacher/final.pth \\
        checkpoints/digits_yolov3_teacher_fp16.pth --fp16
"""
import hashlib
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import torch  # noqa: E402

import mmdiode  # noqa: E402,F401  (registers the safe globals for loading)
from mmdiode.utils import (CheckpointError, load_checkpoint_file,  # noqa: E402
                           save_checkpoint_atomic)
from mmdiode.utils.cli import (ArgumentParser, ConfigError,  # noqa: E402
                               check_output_file, fail)


def publish(src: str, dst: str, fp16: bool = False) -> str:
    """Writes the weights and meta of ``src`` to ``dst``; returns the
    SHA-256 of the written file."""
    check_output_file(dst)
    ckpt = load_checkpoint_file(src)
    state_dict = ckpt.get('state_dict', ckpt)
    if fp16:
        state_dict = {
            k: v.half() if torch.is_floating_point(v) else v
            for k, v in state_dict.items()
        }
    save_checkpoint_atomic(
        dict(meta=ckpt.get('meta', {}), state_dict=state_dict), dst)
    with open(dst, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


def parse_args(argv=None):
    parser = ArgumentParser(
        description='Write a checkpoint\'s weights and meta for release')
    parser.add_argument('checkpoint', help='Runner checkpoint (.pth)')
    parser.add_argument('out', help='output checkpoint path')
    parser.add_argument('--fp16', action='store_true',
                        help='store floating-point weights as float16')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        digest = publish(args.checkpoint, args.out, args.fp16)
    except (CheckpointError, ConfigError, OSError) as e:
        return fail(e)
    size = os.path.getsize(args.out) / 2**20
    print(f'wrote {args.out}: {size:.1f} MiB, sha256 {digest}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
