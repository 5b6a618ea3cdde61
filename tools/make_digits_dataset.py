#!/usr/bin/env python
"""Build the bundled "digits-on-photos" detection benchmark (COCO format).

Examples::

    # labelled train/val/test splits (3000/500/500 images of 128x128)
    python tools/make_digits_dataset.py --out data/digits --seed 0 --viz
    # out-of-distribution proxy set: photo crops without digits
    python tools/make_digits_dataset.py --proxy --out data/digits_proxy \
        --num-proxy 3000
"""
import os.path as osp
import sys
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from benchmarks.digits.dataset import (SPLITS, DigitsConfig,  # noqa
                                       build_dataset)
from mmdiode.utils.cli import ArgumentParser  # noqa: E402
from mmdiode.visualization.grid import coco_grid  # noqa


def parse_args(argv=None):
    parser = ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out', required=True, help='output folder')
    parser.add_argument('--seed', type=int, default=0,
                        help='seed of every random choice (integer)')
    parser.add_argument('--num-train', type=int, default=3000)
    parser.add_argument('--num-val', type=int, default=500)
    parser.add_argument('--num-test', type=int, default=500)
    parser.add_argument('--img-size', type=int, default=128)
    parser.add_argument('--min-objects', type=int, default=1)
    parser.add_argument('--max-objects', type=int, default=6)
    parser.add_argument('--min-digit-size', type=int, default=12)
    parser.add_argument('--max-digit-size', type=int, default=56)
    parser.add_argument('--proxy', action='store_true',
                        help='write only the proxy set (no digits)')
    parser.add_argument('--num-proxy', type=int, default=3000)
    parser.add_argument('--viz', action='store_true',
                        help='also write a PNG grid of images with boxes')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace an existing, differently built --out')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    cfg = DigitsConfig(
        seed=args.seed,
        num_images=dict(train=args.num_train, val=args.num_val,
                        test=args.num_test),
        img_size=args.img_size,
        min_objects=args.min_objects,
        max_objects=args.max_objects,
        min_digit_size=args.min_digit_size,
        max_digit_size=args.max_digit_size,
        num_proxy=args.num_proxy if args.proxy else 0)
    splits = () if args.proxy else SPLITS
    start = time.time()
    try:
        out = build_dataset(args.out, cfg, splits=splits, proxy=args.proxy,
                            overwrite=args.overwrite)
    except (ValueError, TypeError, FileExistsError, FileNotFoundError,
            RuntimeError, OSError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    print(f'digits-on-photos ready in {out} ({time.time() - start:.1f} s)')
    if args.viz:
        for split in splits or ('proxy', ):
            png = coco_grid(
                osp.join(out, 'annotations', f'{split}.json'), out,
                osp.join(out, f'viz_{split}.png'))
            print(f'wrote {png}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
