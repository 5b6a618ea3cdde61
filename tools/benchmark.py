#!/usr/bin/env python
"""Timing benchmarks, one subcommand each.

``synth``: one synthesis iteration against the teacher's bare ``loss()`` +
backward to the pixels on the same batch, the configured schedule's
images/s, and resident memory over consecutive batches (see
:mod:`benchmarks.profiling.synthesis`)::

    python tools/benchmark.py synth \\
        --config configs/diode/diode_yolov3-mv2_synth_digits.py

``kd``: the overhead of a KD training step over the student's own step plus
the teacher's forward (see :mod:`benchmarks.profiling.kd`)::

    python tools/benchmark.py kd \\
        --config configs/hgd/hgd_yolov3-mv2_yolov3-mv2-x0.5_24e_digits.py \\
        --threads 2 --iters 20 --warmup 3

The last line both print is ``overhead_ratio=<float>``. Time on an
otherwise idle machine: concurrent jobs oversubscribe the cores.

``synth-quality``: a new synthesis recipe against a baseline one, in one
process, on the same teacher, layouts and seeds, alternating ABBA (see
:mod:`benchmarks.profiling.synthesis_quality`)::

    python tools/benchmark.py synth-quality \\
        --config configs/diode/diode_yolov3-mv2_synth-polish_digits.py \\
        --baseline configs/diode/diode_yolov3-mv2_synth_digits.py \\
        --batches 4 --work-dir work_dirs/synth_quality

Its last line is ``speedup=<new/baseline images/hour> map50=<new>/<baseline>
bn_drop=<new>/<baseline>``: only ratios measured in one process mean
anything on a shared machine.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import torch  # noqa: E402
from mmengine.logging import MMLogger  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402

import mmdiode  # noqa: E402,F401  (registers components)
from benchmarks.profiling import kd as kd_benchmark  # noqa: E402
from benchmarks.profiling.memory import peak_rss_mib  # noqa: E402
from mmdiode.utils import ConfigError, load_config  # noqa: E402
from mmdiode.utils.cli import ArgumentParser, DictAction  # noqa: E402


def int_at_least(minimum: int):
    """An argparse type: an int >= ``minimum``."""

    def parse(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f'must be >= {minimum}, got '
                                             f'{value}')
        return value

    return parse


def add_config_arguments(parser: argparse.ArgumentParser, config_help: str,
                         batch_help: str) -> None:
    """--config and --batch-size, the arguments every subcommand starts
    with (main() adds --cfg-options last)."""
    parser.add_argument('--config', required=True, help=config_help)
    parser.add_argument('--batch-size', type=int_at_least(1),
                        help=batch_help)


def add_threads_argument(parser: argparse.ArgumentParser,
                         default: int) -> None:
    parser.add_argument('--threads', type=int_at_least(1), default=default,
                        help=f'torch.set_num_threads (default: {default})')


def load_timed_config(args: argparse.Namespace):
    """Sets the thread count and loads --config (with --cfg-options) in its
    default scope: the start of the kd and synth runs."""
    torch.set_num_threads(args.threads)
    cfg = load_config(args.config, args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    return cfg


def report_overhead(ratio: float) -> int:
    """The last lines of the kd and synth runs, the last one the
    ``overhead_ratio=`` line that scripts read; returns the exit code 0."""
    print(f'peak_rss: {peak_rss_mib():.0f} MiB')
    print(f'overhead_ratio={ratio:.4f}')
    return 0


# --- kd ----------------------------------------------------------------------

def add_kd_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(
        parser, 'config whose model is a KDDetector',
        'images per step (default: the config\'s '
        'train_dataloader.batch_size)')
    parser.add_argument('--iters', type=int_at_least(1), default=20,
                        help='timed KD/baseline step pairs (default: 20)')
    parser.add_argument('--warmup', type=int_at_least(0), default=3,
                        help='untimed step pairs first (default: 3)')
    # One thread by default: timings that do not depend on the core count.
    add_threads_argument(parser, 1)


def run_kd(args: argparse.Namespace) -> int:
    # mmengine logs every parameter's optimizer options at INFO level.
    MMLogger.get_instance('benchmark', log_level='WARNING')
    cfg = load_timed_config(args)
    batch_size = args.batch_size or cfg.train_dataloader.batch_size
    size = kd_benchmark.input_size_of(cfg)
    model, note = kd_benchmark.build_kd_model(cfg)
    if note:
        print(f'note: {note}')
    batch = kd_benchmark.random_detection_batch(
        batch_size, size, kd_benchmark.num_classes_of(model))
    print(f'config: {args.config}')
    print(f'threads: {torch.get_num_threads()}')
    print(f'batch: {batch_size} x 3 x {size[0]} x {size[1]}, {args.iters} '
          f'timed step pairs after {args.warmup} warm-up, interleaved')
    timings = kd_benchmark.time_kd_overhead(model, batch, cfg.optim_wrapper,
                                            args.iters, args.warmup)
    for name, seconds in timings.medians().items():
        print(f'median {name}: {seconds:.4f} s')
    return report_overhead(timings.overhead_ratio)


# --- synth -------------------------------------------------------------------

def add_synth_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(
        parser, 'synthesis config (tools/synthesize.py)',
        'images per batch (default: the config\'s synthesis.batch_size)')
    # Five blocks each (was three) for steadier medians on a shared machine;
    # even so the ratio moves by about +-0.05 from run to run there (README).
    parser.add_argument('--rounds', type=int_at_least(1), default=5,
                        help='alternating synthesis/bare blocks (default 5)')
    parser.add_argument('--iters', type=int_at_least(1), default=8,
                        help='timed iterations per block (default: 8)')
    parser.add_argument('--warmup', type=int_at_least(0), default=2,
                        help='untimed iterations per block (default: 2)')
    parser.add_argument('--memory-batches', type=int_at_least(0),
                        default=20, help='consecutive batches of the memory '
                        'check (default: 20; 0 skips it)')
    add_threads_argument(parser, 2)
    parser.add_argument('--device', default='cpu', help='cpu or cuda')


def run_synth(args: argparse.Namespace) -> int:
    from mmdet.registry import TASK_UTILS

    from benchmarks.profiling import synthesis as sb
    cfg = load_timed_config(args)
    device = torch.device(args.device)
    teacher, classes, missing = sb.build_benchmark_teacher(cfg.teacher,
                                                           device)
    if missing:
        print(f'note: no teacher checkpoint at {missing}: timing a randomly '
              'initialised teacher (timing does not need trained weights)')
    batch = args.batch_size or cfg.get('synthesis', {}).get('batch_size', 16)
    sampler = TASK_UTILS.build(
        dict(cfg.layout_sampler, classes=classes, seed=0))
    size = sampler.img_size
    layouts = [sampler.sample(i).as_tensors() for i in range(batch)]
    synth_cfg = dict(cfg.synthesizer)
    print(f'config: {args.config}')
    print(f'device: {device}, threads: {torch.get_num_threads()}')
    print(f'batch: {batch} x 3 x {size} x {size}; {args.rounds} rounds of '
          f'{args.iters} timed iterations (+{args.warmup} warm-up), '
          'alternating synthesis and bare blocks')
    timing = sb.time_overhead(teacher, synth_cfg, layouts, size,
                              args.rounds, args.iters, args.warmup)
    seconds = sb.schedule_seconds(teacher, synth_cfg, layouts, size)
    print(f'median synthesis iteration: {timing["synth_s"]:.4f} s')
    print(f'median teacher loss()+backward: {timing["bare_s"]:.4f} s')
    print(f'configured schedule: {seconds:.1f} s per batch of {batch} -> '
          f'{batch / seconds:.3f} images/s '
          f'({3600 * batch / seconds:.0f} images/hour)')
    if args.memory_batches:
        rss = sb.memory_growth(teacher, synth_cfg, layouts, size,
                               batches=args.memory_batches)
        print(f'rss over {len(rss)} consecutive batches: first '
              f'{rss[0]:.0f} MiB, last {rss[-1]:.0f} MiB, growth after the '
              f'first {rss[-1] - rss[0]:+.1f} MiB')
    if device.type == 'cuda':
        print('peak_cuda_memory: '
              f'{torch.cuda.max_memory_allocated() / 2**20:.0f} MiB')
    return report_overhead(timing['overhead_ratio'])


# --- synth-quality -----------------------------------------------------------

def add_synth_quality_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(
        parser, 'the new synthesis config (tools/synthesize.py)',
        'images per batch (default: --config\'s synthesis.batch_size, '
        'else 16)')
    parser.add_argument('--baseline', required=True,
                        help='the baseline synthesis config (same teacher '
                        'and image size); its layout sampler makes the '
                        'layouts of both sides')
    parser.add_argument('--batches', type=int_at_least(1), default=4,
                        help='batches per side, alternating ABBA '
                        '(default: 4)')
    parser.add_argument('--seed', type=int, default=0,
                        help='seed of the layouts and of every batch\'s '
                        'generator, both sides alike (default: 0)')
    add_threads_argument(parser, 2)
    parser.add_argument('--device', default='cpu', help='cpu or cuda')
    parser.add_argument('--work-dir',
                        help='where both image sets, their fidelity '
                        'reports and synth_quality.json go (default: a '
                        'temporary folder, removed at the end)')
    parser.add_argument('--baseline-cfg-options', nargs='+',
                        action=DictAction,
                        help='override settings of --baseline, key=value '
                        '(--cfg-options applies to --config)')


def run_synth_quality(args: argparse.Namespace) -> int:
    import contextlib
    import tempfile

    from benchmarks.profiling import synthesis_quality as sq
    from benchmarks.provenance import git_commit
    torch.set_num_threads(args.threads)
    # CocoMetric logs its evaluation at INFO level.
    MMLogger.get_instance('benchmark', log_level='WARNING')
    new = sq.Recipe(args.config, load_config(args.config, args.cfg_options),
                    args.cfg_options)
    baseline = sq.Recipe(
        args.baseline,
        load_config(args.baseline, args.baseline_cfg_options),
        args.baseline_cfg_options)
    init_default_scope(new.cfg.get('default_scope', 'mmdet'))
    batch_size = args.batch_size or new.batch_size
    comparison = sq.SynthQualityComparison(baseline, new, batch_size,
                                           args.seed, args.device)
    for note in comparison.notes:
        print(f'note: {note}')
    print(f'new: {args.config}')
    print(f'baseline: {args.baseline}')
    print(f'device: {args.device}, threads: {torch.get_num_threads()}')
    print(f'{args.batches} batches of {batch_size} x 3 x '
          f'{comparison.img_size} x {comparison.img_size} per side, seed '
          f'{args.seed}, alternating ABBA')
    with contextlib.ExitStack() as stack:
        work_dir = args.work_dir or stack.enter_context(
            tempfile.TemporaryDirectory(prefix='synth_quality_'))
        report = comparison.run(
            work_dir, args.batches,
            on_batch=lambda row: print(sq.batch_line(row), flush=True),
            commit=git_commit([work_dir]))
    for line in sq.summary_table(report):
        print(line)
    if args.work_dir:
        print(f'wrote {osp.join(args.work_dir, sq.REPORT_FILE)}')
    print(sq.summary_line(report))
    return 0


# --- subcommands: name -> (help, add its arguments, run it) ------------------
COMMANDS = {
    'kd': ('KD step vs student step + teacher forward', add_kd_arguments,
           run_kd),
    'synth': ('synthesis iteration vs teacher loss + backward to the pixels',
              add_synth_arguments, run_synth),
    'synth-quality': ('two synthesis recipes side by side: images/hour, '
                      'teacher mAP@0.5, BN drop', add_synth_quality_arguments,
                      run_synth_quality),
}


def main(argv=None) -> int:
    parser = ArgumentParser(description='mmdiode timing benchmarks')
    subparsers = parser.add_subparsers(dest='command', required=True)
    for name, (help_text, add_arguments, _) in COMMANDS.items():
        subparser = subparsers.add_parser(name, help=help_text)
        add_arguments(subparser)
        subparser.add_argument('--cfg-options', nargs='+', action=DictAction,
                               help='override config settings, key=value')
    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command][2](args)
    except ConfigError as e:
        print(f'error: {e}', file=sys.stderr)
        return 2


if __name__ == '__main__':
    sys.exit(main())
