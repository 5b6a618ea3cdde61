"""The data-free distillation benchmark: every row, one results json.

Trains and evaluates, for the bundled teachers, the students of
:mod:`benchmarks.digits.datafree` (supervised, distilled on real images,
on DIODE / MOI images offline and on the fly, on a proxy set, on noise,
and the synthesis ablations), each with ``tools/train.py`` /
``tools/synthesize.py`` / ``tools/test.py`` in a subprocess. Finished rows
are kept (``<work-dir>/<profile>/<pair>/<row>/row.json``): the same command
continues an interrupted benchmark. After every row, the json and the bar
plot are rewritten with the rows finished so far.

Examples::

    # everything, the quick profile (hours on 2 CPU cores)
    python tools/benchmark_datafree.py
    # two rows of one pair
    python tools/benchmark_datafree.py --pairs yolov3 \\
        --rows supervised kd_real
    # what would run
    python tools/benchmark_datafree.py --dry-run
    # the students' own schedules (results/digits_datafree_full.json); a
    # row killed midway continues from its last epoch when run again
    python tools/benchmark_datafree.py --profile full --pairs yolov3 \
        --rows teacher kd_synth_online
    # the main job of `make demo`: the YOLOv3 teacher and the student
    # distilled from it on the fly, without any training image
    python tools/benchmark_datafree.py --pairs yolov3 \
        --rows teacher kd_synth_online --stream
"""
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from benchmarks.digits.datafree import (PAIRS, PROFILES, ROWS,  # noqa: E402
                                        DatafreeBenchmark, collect,
                                        scaling_points)
from benchmarks.provenance import git_commit  # noqa: E402
from mmdiode.utils.cli import ArgumentParser, ConfigError, fail  # noqa
from mmdiode.utils.fileio import dump_json_atomic, load_json_object  # noqa
from mmdiode.visualization.results import (plot_datafree_results, plot_scaling,
                                           results_table)


def parse_args(argv=None):
    parser = ArgumentParser(
        description='Data-free distillation benchmark on digits-on-photos')
    parser.add_argument('--profile', choices=sorted(PROFILES),
                        default='quick',
                        help='schedule and synthesis sizes (default: quick)')
    parser.add_argument('--pairs', nargs='+', choices=sorted(PAIRS),
                        default=list(PAIRS), help='teacher-student pairs')
    parser.add_argument('--rows', nargs='+', choices=ROWS,
                        default=list(ROWS), help='rows to run')
    parser.add_argument('--work-dir', default='work_dirs/datafree',
                        help='root of the rows\' work dirs')
    parser.add_argument('--out',
                        help='results json; its rows that the work dir has '
                        'not finished (run elsewhere) are kept (default: '
                        'results/digits_datafree.json for the quick '
                        'profile, results/digits_datafree_<profile>.json for '
                        'the others)')
    parser.add_argument('--plot',
                        help='bar plot of mAP@0.5 per row (default: the '
                        'json\'s path with .png)')
    parser.add_argument('--scaling-out',
                        default='results/digits_datafree_scaling.json',
                        help='the scaling curve\'s json (profiles with '
                        'scaling rows; YOLOv3), plot beside it as .png')
    parser.add_argument('--force', action='store_true',
                        help='rerun rows that are done (a row\'s previous '
                        'work dir is moved to <row>.prev)')
    parser.add_argument('--stream', action='store_true',
                        help='echo the tools\' output (progress bars, logs) '
                        'live; it always goes to <row>/<step>.out')
    parser.add_argument('--dry-run', action='store_true',
                        help='print the commands of each row and exit')
    args = parser.parse_args(argv)
    if args.out is None:
        suffix = '' if args.profile == 'quick' else f'_{args.profile}'
        args.out = f'results/digits_datafree{suffix}.json'
    if args.plot is None:
        args.plot = osp.splitext(args.out)[0] + '.png'
    return args


def write_scaling(bench: DatafreeBenchmark, results: dict, path: str,
                  commit: str) -> None:
    """The YOLOv3 scaling curve (json + plot), once it has a point."""
    if not bench.profile.scaling:
        return
    points = scaling_points(bench, PAIRS['yolov3'])
    if not points:
        return
    rows = results['pairs'].get('yolov3', {})
    references = {row: rows[row]['map50'] for row in ('teacher', 'kd_real')
                  if row in rows}
    dump_json_atomic(dict(commit=commit, pair='yolov3',
                          epochs=bench.profile.epochs['yolov3'],
                          points=points, references_map50=references), path)
    plot_scaling(points, references, osp.splitext(path)[0] + '.png')


def earlier_results(path: str):
    """The results json already at ``path`` (its rows finished elsewhere,
    on another machine or in a deleted work dir, are kept), or None.

    Raises:
        ConfigError: The file is not a results json; it is left as it is.
    """
    if not osp.isfile(path):
        return None
    return load_json_object(path, 'a results json',
                            'move it away or give another --out')


def main(argv=None) -> int:
    args = parse_args(argv)
    commit = git_commit([args.out, args.plot])
    bench = DatafreeBenchmark(PROFILES[args.profile], args.work_dir,
                              stream=args.stream, commit=commit)
    pairs = [PAIRS[name] for name in args.pairs]
    jobs = [(pair, row) for pair in pairs for row in args.rows
            if bench.applies(pair, row)]
    if args.dry_run:
        for pair, row in jobs:
            plan = bench.plan(pair, row)
            print(f'{pair.name}/{row}: synth={plan.synth_cmd} '
                  f'train={plan.train_config} {plan.train_options} '
                  f'test={plan.test_config}')
        return 0
    try:
        previous = earlier_results(args.out)
        collect(bench, pairs, commit, previous)  # a profile mismatch fails
    except ConfigError as e:
        return fail(e)
    except ValueError as e:  # collect(): the earlier results' profile
        return fail(ConfigError(f'{args.out}: {e}'))
    os.makedirs(osp.dirname(args.out) or '.', exist_ok=True)
    for index, (pair, row) in enumerate(jobs, 1):
        print(f'=== row {index}/{len(jobs)}: {pair.name}/{row}', flush=True)
        try:
            bench.run_row(pair, row, force=args.force)
        except ConfigError as e:  # a row run before the one it needs
            return fail(e)
        results = collect(bench, list(PAIRS.values()), commit, previous)
        dump_json_atomic(results, args.out)
        plot_datafree_results(results, args.plot)
        write_scaling(bench, results, args.scaling_out, commit)
    print(results_table(collect(bench, list(PAIRS.values()), commit,
                                previous)))
    print(f'results: {args.out}, plot: {args.plot}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
