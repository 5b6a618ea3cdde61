"""tools/benchmark.py synth-quality: two recipes side by side on a tiny,
randomly initialised teacher (its mAP and BN drops mean nothing; the
command's plumbing does)."""
import json
import os
import os.path as osp
import re

import pytest
import torch
from tool_loader import load_tool

from benchmarks.profiling import synthesis_quality as sq
from mmdiode.testing import save_tiny_teacher, write_tiny_synthesis_config

ROOT = osp.abspath(osp.join(osp.dirname(__file__), *[osp.pardir] * 2))
LAST_LINE = re.compile(r'speedup=(\d+\.\d\d) map50=(\d\.\d\d\d)/(\d\.\d\d\d) '
                       r'bn_drop=(\d+\.\d\d)/(\d+\.\d\d)')


def load_benchmark_tool():
    return load_tool('benchmark')


@pytest.fixture(scope='module')
def recipes(tmp_path_factory):
    """A tiny teacher, a tiny recipe of it (3 iterations at 32 px, 2 at
    64 px) and the same recipe on another teacher."""
    tmp = tmp_path_factory.mktemp('recipes')
    teacher = save_tiny_teacher(str(tmp / 'teacher.pth'))
    other = save_tiny_teacher(str(tmp / 'other.pth'), seed=1)
    return dict(
        tool=load_benchmark_tool(),
        synth=write_tiny_synthesis_config(str(tmp / 'synth.py'), teacher,
                                          iterations=(3, 2)),
        other=write_tiny_synthesis_config(str(tmp / 'other.py'), other,
                                          iterations=(3, 2)))


@pytest.fixture
def keep_threads():
    """The tool sets torch's global thread count; restore it."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def run(recipes, capsys, config, baseline, *extra):
    rc = recipes['tool'].main([
        'synth-quality', '--config', config, '--baseline', baseline,
        '--batches', '2', '--batch-size', '1', '--threads', '1'
    ] + list(extra))
    out, err = capsys.readouterr()
    return rc, out.strip().splitlines(), err


def test_compares_two_recipes(recipes, tmp_path, capsys, keep_threads):
    work = tmp_path / 'work'
    # The new recipe: (1, 1) iterations instead of (3, 2).
    rc, lines, err = run(recipes, capsys, recipes['synth'], recipes['synth'],
                         '--work-dir', str(work), '--cfg-options',
                         'synthesizer.stages.0.iterations=1',
                         'synthesizer.stages.1.iterations=1')
    assert rc == 0, err[-3000:]
    # ABBA: batch 0 baseline first, batch 1 the new recipe first.
    assert any(re.fullmatch(r'batch 0: baseline \d+\.\d\d s, new \d+\.\d\d s',
                            line) for line in lines)
    assert any(re.fullmatch(r'batch 1: new \d+\.\d\d s, baseline \d+\.\d\d s',
                            line) for line in lines)
    assert any(line.startswith('teacher mAP@0.5') for line in lines)
    match = LAST_LINE.fullmatch(lines[-1])
    assert match, lines[-1]

    with open(work / sq.REPORT_FILE) as f:
        report = json.load(f)
    assert set(report['sides']) == {'baseline', 'new'}
    assert report['cfg_options']['new'] == {
        'synthesizer.stages.0.iterations': 1,
        'synthesizer.stages.1.iterations': 1
    }
    assert report['cfg_options']['baseline'] == {}
    assert [row['order'] for row in report['batch_seconds']] == [
        ['baseline', 'new'], ['new', 'baseline']]
    for name, side in report['sides'].items():
        assert side['images'] == 2
        assert side['seconds'] == pytest.approx(
            sum(row[name] for row in report['batch_seconds']))
        assert side['bn_prior']['drop'] > 0
        root = work / name
        with open(root / 'annotations.json') as f:
            assert len(json.load(f)['images']) == 2
        assert osp.isfile(root / 'fidelity.json')
    summary = report['summary']
    assert summary['speedup'] == pytest.approx(
        report['sides']['new']['images_per_hour'] /
        report['sides']['baseline']['images_per_hour'])
    assert match.group(1) == f'{summary["speedup"]:.2f}'
    assert match.group(2, 3) == (f'{summary["map50"]["new"]:.3f}',
                                 f'{summary["map50"]["baseline"]:.3f}')
    assert report['bn_prior'] == dict(p=2, first_bn_multiplier=2.0,
                                      layer_pattern='.*')


def test_identical_recipes_make_identical_images(recipes, tmp_path, capsys,
                                                 keep_threads):
    work = tmp_path / 'work'
    rc, lines, err = run(recipes, capsys, recipes['synth'], recipes['synth'],
                         '--work-dir', str(work), '--seed', '3')
    assert rc == 0, err[-3000:]
    names = sorted(os.listdir(work / 'new' / 'images'))
    assert names == sorted(os.listdir(work / 'baseline' / 'images'))
    assert len(names) == 2
    for name in names:
        # Batch 1 ran the new side first: the order changes nothing.
        assert (work / 'new' / 'images' / name).read_bytes() == \
            (work / 'baseline' / 'images' / name).read_bytes()
    annotations = [
        json.loads((work / side / 'annotations.json').read_text())
        for side in ('new', 'baseline')
    ]
    assert annotations[0] == annotations[1]
    match = LAST_LINE.fullmatch(lines[-1])
    assert match, lines[-1]
    assert match.group(2) == match.group(3)  # map50 new == baseline
    assert match.group(4) == match.group(5)  # bn_drop new == baseline


def test_different_teachers_are_one_error(recipes, tmp_path, capsys,
                                          keep_threads):
    work = tmp_path / 'work'
    rc, lines, err = run(recipes, capsys, recipes['other'], recipes['synth'],
                         '--work-dir', str(work))
    assert rc == 2
    errors = [line for line in err.splitlines() if line.startswith('error:')]
    assert len(errors) == 1, err
    assert 'different teachers: teacher.checkpoint' in errors[0]
    assert not osp.exists(work)


def test_batch_order_and_last_line():
    assert [sq.batch_order(b) for b in range(4)] == [
        ('baseline', 'new'), ('new', 'baseline')] * 2
    report = dict(summary=dict(speedup=1.5, map50=dict(new=0.25, baseline=0.5),
                               bn_drop=dict(new=None, baseline=12.345)))
    assert sq.summary_line(report) == \
        'speedup=1.50 map50=0.250/0.500 bn_drop=n/a/12.35'


@pytest.mark.parametrize('refill', [False, True])
def test_a_recombining_recipe_reports_its_warm_speedup(
        recipes, tmp_path, capsys, keep_threads, monkeypatch, refill):
    """The new side fills its bank from its first batch (the fill counted
    in its time) and starts the second warm; with refill the warm batch
    joins the bank after it is written."""
    from mmdiode.models.task_modules.inversion import object_bank

    # A random tiny teacher finds nothing: every target counts as found.
    monkeypatch.setattr(
        object_bank, 'found_targets',
        lambda preds, boxes, labels, score_thr, iou_thr: torch.ones(
            len(boxes), dtype=torch.bool))
    config = tmp_path / 'recombine.py'
    config.write_text(
        f'_base_ = {recipes["synth"]!r}\n'
        'synthesizer = dict(recombine=dict(enable=True, cold_batches=1, '
        f'stages=[dict(size=64, iterations=1, lr=0.05)], refill={refill}))\n')
    offered = []
    offer = sq.offer_written_batch
    monkeypatch.setattr(
        sq, 'offer_written_batch',
        lambda bank, teacher, writer, batch: offered.append(batch) or offer(
            bank, teacher, writer, batch))
    work = tmp_path / 'work'
    rc, lines, err = run(recipes, capsys, str(config), recipes['synth'],
                         '--work-dir', str(work))
    assert rc == 0, err[-3000:]
    assert offered == ([1] if refill else [])
    with open(work / sq.REPORT_FILE) as f:
        report = json.load(f)
    assert [row['warm'] for row in report['batch_seconds']] == [[], ['new']]
    assert report['sides']['new']['iterations'] == [5, 1]
    rows = report['batch_seconds']
    assert report['summary']['warm_speedup'] == pytest.approx(
        rows[1]['baseline'] / rows[1]['new'])
    head, warm = lines[-1].rsplit(' warm_speedup=', 1)
    assert LAST_LINE.fullmatch(head) and re.fullmatch(r'\d+\.\d\d', warm)
