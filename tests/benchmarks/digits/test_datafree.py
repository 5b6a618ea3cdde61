"""The data-free benchmark's row plans, schedules and result files."""
import dataclasses
import json
import os.path as osp

import pytest
from mmengine.config import Config

from benchmarks.digits.datafree import (ABLATIONS, PAIRS, PROFILES, ROWS,
                                        DatafreeBenchmark, collect, set_epochs,
                                        teacher_training_seconds,
                                        train_set_key)
from mmdiode.utils.cli import ConfigError
from mmdiode.visualization.results import plot_datafree_results, results_table


@pytest.mark.parametrize('pair', sorted(PAIRS))
def test_every_row_plans_existing_configs_with_one_schedule(pair, tmp_path):
    pair = PAIRS[pair]
    bench = DatafreeBenchmark(PROFILES['quick'], str(tmp_path))
    epochs = PROFILES['quick'].epochs[pair.name]
    iterations = set()
    for row in ROWS:
        if not bench.applies(pair, row):
            continue
        plan = bench.plan(pair, row)
        assert osp.isfile(plan.test_config)
        if plan.synth_cmd is not None:
            assert osp.isfile(plan.synth_cmd[1])
        if plan.train_config is None:
            continue
        cfg = Config.fromfile(plan.train_config)
        cfg.merge_from_dict(plan.train_options)
        set_epochs(cfg, epochs)
        dataset = cfg.train_dataloader.dataset
        while dataset.type in ('MultiImageMixDataset', ):  # same length
            dataset = dataset.dataset
        # Every trained row sees 3000 images an epoch, same batch size.
        length = (dataset.get('times', 1) * plan.images
                  if dataset.type == 'RepeatDataset' else
                  dataset.get('num_samples', 3000))
        iterations.add((length * cfg.train_cfg.max_epochs,
                        cfg.train_dataloader.batch_size))
    assert len(iterations) == 1, iterations


@pytest.mark.parametrize('profile', sorted(PROFILES))
def test_online_row_takes_its_own_pairs_synthesis_schedule(profile):
    """A Faster R-CNN/MOI batch costs several YOLOv3 batches: each pair's
    online row gets its own hook schedule from the profile."""
    bench = DatafreeBenchmark(PROFILES[profile], '/tmp/unused')
    for name, pair in PAIRS.items():
        options = bench.plan(pair, 'kd_synth_online').train_options
        schedule = PROFILES[profile].online[name]
        assert {k.rsplit('.', 1)[1]: v for k, v in options.items()
                if k.startswith('custom_hooks.0.')} == schedule
        cfg = Config.fromfile(pair.kd_configs['online'])
        assert cfg.custom_hooks[0].type == 'DeepInversionHook'


def test_bn_prior_online_row_is_the_online_row_with_diodes_synthesizer(
        tmp_path):
    """kd_synth_online_bn applies to the pair whose online recipe (MOI) has
    no BN prior: the same schedule and pool handling as kd_synth_online,
    its own pool, and a synthesizer that differs in the BN prior and the
    label sampling alone."""
    bench = DatafreeBenchmark(PROFILES['full'], str(tmp_path))
    assert not bench.applies(PAIRS['yolov3'], 'kd_synth_online_bn')
    pair = PAIRS['faster_rcnn']
    assert bench.applies(pair, 'kd_synth_online_bn')
    online = bench.plan(pair, 'kd_synth_online')
    bn = bench.plan(pair, 'kd_synth_online_bn')
    assert bn.train_config == bn.test_config == pair.kd_configs['online_bn']
    pool_key = train_set_key(bn.train_config, 'BoxSamplerDataset') + \
        '.pool_dir'
    assert bn.train_options.pop(pool_key) == osp.join(
        bench.row_dir(pair, 'kd_synth_online_bn'), 'pool')
    online.train_options.pop(pool_key)
    assert bn.train_options == online.train_options
    hooks = [
        Config.fromfile(config).custom_hooks[0]
        for config in (online.train_config, bn.train_config)
    ]
    moi, diode = (hook.pop('synthesizer') for hook in hooks)
    assert hooks[0] == hooks[1]
    assert (moi.type, diode.type) == ('MultiObjectImpressions',
                                      'DeepInversion')
    assert diode.bn_prior.weight > 0
    for key in ('image_prior', 'task_loss', 'augment', 'stages',
                'fp_sampling'):
        assert diode[key] == moi[key], key


def test_warm_online_row_starts_from_the_offline_rows_set(
        tmp_path, monkeypatch):
    """kd_synth_online_warm is the online row with the pool seeded by the
    kd_synth_offline row's set, kept whole; it waits for that set, and its
    seconds count the set's synthesis."""
    monkeypatch.setenv('FAKE_LOG', str(tmp_path / 'calls.jsonl'))
    monkeypatch.setenv('FAKE_EPOCHS', '1')
    fake = tmp_path / 'fake_python'
    fake.write_text(FAKE_TOOLS)
    fake.chmod(0o755)
    profile = PROFILES['full']
    bench = DatafreeBenchmark(profile, str(tmp_path / 'work'),
                              python=str(fake), commit='abc')
    pair = PAIRS['faster_rcnn']
    online = bench.plan(pair, 'kd_synth_online').train_options
    warm = bench.plan(pair, 'kd_synth_online_warm').train_options
    data = osp.join(bench.row_dir(pair, 'kd_synth_offline'), 'data')
    hook = Config.fromfile(pair.kd_configs['online']).custom_hooks[0]
    pool_key, = [k for k in online if k.endswith('.pool_dir')]
    assert warm[pool_key] == osp.join(
        bench.row_dir(pair, 'kd_synth_online_warm'), 'pool')
    assert warm == dict(
        online, **{
            pool_key: warm[pool_key],
            'custom_hooks.0.warm_start': data,
            'custom_hooks.0.pool_size':
            hook.pool_size + profile.synth_images['faster_rcnn'],
        })
    with pytest.raises(ConfigError, match='run --rows kd_synth_offline'):
        bench.run_row(pair, 'kd_synth_online_warm')
    import os
    os.makedirs(data)
    open(osp.join(data, 'annotations.json'), 'w').close()
    with open(osp.join(osp.dirname(data), 'seconds.json'), 'w') as f:
        json.dump(dict(synthesize=600.0, train=50.0), f)
    result = bench.run_row(pair, 'kd_synth_online_warm')
    # The set's 600 s of synthesis, not its training, plus this row's.
    spent = bench.step_seconds(pair, 'kd_synth_online_warm')
    assert result['seconds'] == pytest.approx(600.0 + spent['train'],
                                              abs=0.1)


def test_the_long_profile_doubles_the_schedule_not_the_online_images():
    full, long = PROFILES['full'], PROFILES['long']
    for name in PAIRS:
        assert long.epochs[name] == 2 * full.epochs[name]
        # Batches synthesized after the initial ones: iterations / interval.
        assert long.epochs[name] / long.online[name]['interval'] == \
            full.epochs[name] / full.online[name]['interval']
        assert long.online[name]['initial_batches'] == \
            full.online[name]['initial_batches']


def test_set_epochs_moves_the_cosine_schedule():
    cfg = Config.fromfile('configs/detectors/yolov3-mv2-x0.5_24e_digits.py')
    set_epochs(cfg, 5)
    cosine = [s for s in cfg.param_scheduler
              if s.type == 'CosineAnnealingLR'][0]
    assert (cfg.train_cfg.max_epochs, cosine.T_max, cosine.end) == (5, 5, 5)
    warmup = [s for s in cfg.param_scheduler if s.type == 'LinearLR'][0]
    assert not warmup.by_epoch and warmup.end != 5  # iterations: unchanged
    with pytest.raises(ValueError, match='epochs'):
        set_epochs(cfg, 0)


@pytest.mark.parametrize('row', sorted(ABLATIONS))
def test_ablations_change_what_they_name(row):
    cfg = Config.fromfile(PAIRS['yolov3'].synth_config)
    before = cfg.to_dict()
    cfg.merge_from_dict(
        dict(option.split('=', 1) for option in ABLATIONS[row]))
    after = cfg.to_dict()
    assert after != before
    changed = {k for k in before if before[k] != after[k]}
    assert changed <= {'synthesizer', 'layout_sampler'}


def test_results_json_table_and_plot(tmp_path):
    bench = DatafreeBenchmark(PROFILES['quick'], str(tmp_path))
    pair = PAIRS['yolov3']
    for row, map50 in (('teacher', 0.9), ('kd_real', 0.8),
                       ('kd_synth_offline', 0.6)):
        path = osp.join(bench.row_dir(pair, row), 'row.json')
        import os
        os.makedirs(osp.dirname(path))
        with open(path, 'w') as f:
            json.dump(dict(map=map50 / 2, map50=map50, images=10,
                           seconds=60.0, commit='abcdef0123'), f)
    results = collect(bench, [pair], 'abc')
    assert list(results['pairs']['yolov3']) == [
        'teacher', 'kd_real', 'kd_synth_offline'
    ]
    table = results_table(results)
    assert ('| yolov3 | kd_synth_offline | 0.300 | 0.600 | 67 % | 75 % | 10 '
            '| 1.0 | abcdef0 |') in table
    assert '| yolov3 | teacher | 0.450 | 0.900 |  |  | 10 |' in table
    png = tmp_path / 'plot.png'
    plot_datafree_results(results, str(png))
    assert png.read_bytes()[:4] == b'\x89PNG'


def test_results_of_other_machines_are_kept(tmp_path):
    """Rows of an earlier json that this work dir has not run stay; a row
    run here replaces the earlier one; another profile's json is refused."""
    bench = DatafreeBenchmark(PROFILES['quick'], str(tmp_path))
    pair = PAIRS['yolov3']
    old = dict(map=0.1, map50=0.2, images=3000, seconds=5.0, commit='old')
    previous = dict(commit='old', profile='quick',
                    pairs=dict(yolov3=dict(teacher=old, kd_real=old)))
    path = osp.join(bench.row_dir(pair, 'kd_real'), 'row.json')
    import os
    os.makedirs(osp.dirname(path))
    new = dict(old, map50=0.3, commit='new')
    with open(path, 'w') as f:
        json.dump(new, f)
    results = collect(bench, [pair], 'new', previous)
    assert results['pairs']['yolov3'] == dict(teacher=old, kd_real=new)
    with pytest.raises(ValueError, match="profile 'full'"):
        collect(bench, [pair], 'new', dict(previous, profile='full'))


def test_teacher_training_seconds_from_the_runner_log(tmp_path):
    log = tmp_path / '20261122_015736' / '20261122_015736.log'
    log.parent.mkdir()
    log.write_text(
        '11/22 01:57:40 - mmengine - INFO - Config: ...\n'
        '11/22 02:00:00 - mmengine - INFO - Epoch(train) [1][20/188] ...\n'
        '11/22 02:34:30 - mmengine - INFO - Saving checkpoint at 24 epochs\n')
    assert teacher_training_seconds(str(tmp_path)) == 36 * 60 + 50
    # The file log of a Runner has the year too.
    log.write_text(
        '2026/11/22 01:57:40 - mmengine - INFO - Config: ...\n'
        '2026/11/22 02:00:00 - mmengine - INFO - Epoch(train) [1][20/188]\n'
        '2026/11/22 02:34:30 - mmengine - INFO - Saving checkpoint\n')
    assert teacher_training_seconds(str(tmp_path)) == 36 * 60 + 50
    assert teacher_training_seconds(str(tmp_path / 'none')) is None


def test_forced_row_starts_afresh_and_keeps_the_previous_run(tmp_path):
    """--force must not continue an old replay pool (the hook only fills an
    empty one): the old row dir moves to <row>.prev."""
    import sys
    bench = DatafreeBenchmark(PROFILES['quick'], str(tmp_path),
                              python=sys.executable, commit='abc')
    pair = PAIRS['yolov3']
    row_dir = bench.row_dir(pair, 'kd_noise')
    pool = osp.join(row_dir, 'pool')
    import os
    os.makedirs(pool)
    with open(osp.join(pool, 'index_rank0.json'), 'w') as f:
        f.write('{}')
    with open(osp.join(row_dir, 'row.json'), 'w') as f:
        json.dump(dict(map=0.1, map50=0.2, images=3, seconds=1.0), f)
    assert bench.run_row(pair, 'kd_noise')['map50'] == 0.2  # kept
    # `false` as the interpreter: the row's first step fails at once.
    bench.python = 'false'
    with pytest.raises((RuntimeError, OSError)):
        bench.run_row(pair, 'kd_noise', force=True)
    assert osp.isfile(osp.join(row_dir + '.prev', 'pool', 'index_rank0.json'))
    assert not osp.exists(pool)
    assert not osp.exists(osp.join(row_dir, 'row.json'))


@pytest.mark.parametrize('pair', sorted(PAIRS))
def test_offline_and_online_rows_synthesize_with_one_recipe(pair):
    """The offline sets (synth config) and the online hook (data-free KD
    config) take their synthesizer from one _base_ file, so kd_synth_offline
    and kd_synth_online differ only in when the images are made: both pick
    the same recipe of it and the hook passes that one on. The hook's may
    add the competition term, which needs the student: off."""
    pair = PAIRS[pair]
    synth_cfg = Config.fromfile(pair.synth_config)
    online_cfg = Config.fromfile(pair.kd_configs['online'])
    hook, = [h for h in online_cfg.custom_hooks
             if h.type == 'DeepInversionHook']
    online = dict(hook.synthesizer)
    assert online.pop('competition', dict(weight=0.0))['weight'] == 0.0
    assert online == online_cfg.synthesizer == synth_cfg.synthesizer
    # ... and the same layouts, the one copy of _base_/datasets/
    # digits_layouts.py (img_size is the data set's own).
    key = train_set_key(pair.kd_configs['online'], 'BoxSamplerDataset')
    box_set = online_cfg
    for name in key.split('.'):
        box_set = box_set[name]
    online_layout = dict(box_set.layout_sampler)
    offline_layout = dict(synth_cfg.layout_sampler)
    offline_layout.pop('img_size')
    assert online_layout == offline_layout


# A stand-in for the interpreter of the row's tools: `train.py` saves one
# epoch checkpoint per run and then "dies" (exit 3) unless it reaches the
# last epoch; `test.py` prints the metrics line. Every call is logged.
FAKE_TOOLS = r"""#!/usr/bin/env python3
import json, os, sys
tool, args = sys.argv[1], sys.argv[2:]
with open(os.environ['FAKE_LOG'], 'a') as f:
    f.write(json.dumps([os.path.basename(tool)] + args) + '\n')
if tool.endswith('train.py'):
    work = args[args.index('--work-dir') + 1]
    os.makedirs(work, exist_ok=True)
    last = os.path.join(work, 'last_checkpoint')
    epoch = 0
    if '--resume' in args:
        epoch = int(open(last).read().strip().rsplit('_', 1)[1][:-4])
    epoch += 1
    ckpt = os.path.join(work, f'epoch_{epoch}.pth')
    open(ckpt, 'w').close()
    open(last, 'w').write(ckpt)
    print(f'epoch {epoch}', flush=True)
    sys.exit(0 if epoch >= int(os.environ['FAKE_EPOCHS']) else 3)
if tool.endswith('test.py'):
    print('metrics_json=' + json.dumps({'coco/bbox_mAP': 0.25,
                                        'coco/bbox_mAP_50': 0.5}))
"""


def test_interrupted_row_resumes_training_and_adds_up_its_time(
        tmp_path, monkeypatch):
    """A row killed during training continues from its last checkpoint
    (--resume), says what it resumes, keeps every sitting's log, and its
    seconds count all sittings."""
    import os
    fake = tmp_path / 'fake_python'
    fake.write_text(FAKE_TOOLS)
    fake.chmod(0o755)
    calls = tmp_path / 'calls.jsonl'
    monkeypatch.setenv('FAKE_LOG', str(calls))
    monkeypatch.setenv('FAKE_EPOCHS', '3')
    profile = PROFILES['quick']
    profile = type(profile)(name='quick', epochs=dict(yolov3=3),
                            synth_images=dict(yolov3=200))
    messages = []
    bench = DatafreeBenchmark(profile, str(tmp_path / 'work'),
                              python=str(fake), log=messages.append,
                              commit='abc')
    pair = PAIRS['yolov3']
    for sitting in (1, 2):
        with pytest.raises(RuntimeError, match='train failed'):
            bench.run_row(pair, 'kd_real')
    result = bench.run_row(pair, 'kd_real')
    assert (result['map'], result['map50']) == (0.25, 0.5)
    trains = [json.loads(line) for line in calls.read_text().splitlines()
              if 'train.py' in line]
    assert ['--resume' in call for call in trains] == [False, True, True]
    resumed = [m for m in messages if 'resuming: training from' in m]
    assert len(resumed) == 2 and resumed[-1].endswith('(epoch 2 of 3)')
    row_dir = bench.row_dir(pair, 'kd_real')
    log = open(osp.join(row_dir, 'train.out')).read()
    assert [f'epoch {k}' in log for k in (1, 2, 3)] == [True] * 3
    spent = json.load(open(osp.join(row_dir, 'seconds.json')))
    assert result['seconds'] == pytest.approx(spent['train'], abs=0.1)
    # The row's config keeps every epoch's checkpoint.
    cfg = Config.fromfile(osp.join(row_dir, 'kd_real.py'))
    assert (cfg.default_hooks.checkpoint.interval,
            cfg.default_hooks.checkpoint.max_keep_ckpts) == (1, -1)
    # Finished training is not run again when only the test was missing.
    os.remove(osp.join(row_dir, 'row.json'))
    bench.run_row(pair, 'kd_real')
    assert sum('train.py' in line
               for line in calls.read_text().splitlines()) == 3


@pytest.mark.parametrize('pair', sorted(PAIRS))
def test_scaling_rows_synthesize_sets_of_their_own_size(pair, tmp_path):
    """The full profile's scaling rows synthesize N images with the
    kd_synth_offline row's recipe into their own dirs, repeated to the same
    epoch length; the quick profile runs none of them."""
    pair = PAIRS[pair]
    full = DatafreeBenchmark(PROFILES['full'], str(tmp_path))
    offline = full.plan(pair, 'kd_synth_offline')
    epoch_lengths, data_roots = set(), set()
    for row in ('kd_synth_offline', 'scaling_100', 'scaling_300'):
        plan = full.plan(pair, row)
        cmd = plan.synth_cmd
        assert cmd[:4] == offline.synth_cmd[:4]  # same tool, config, teacher
        assert cmd[cmd.index('--num-images') + 1] == str(plan.images)
        assert cmd[cmd.index('--out') + 1].startswith(full.row_dir(pair, row))
        options = {k.rsplit('.', 1)[1]: v
                   for k, v in plan.train_options.items()}
        assert 'indices' not in options
        data_roots.add(options['data_root'])
        epoch_lengths.add(options['times'] * plan.images)
        cfg = Config.fromfile(plan.train_config)
        cfg.merge_from_dict(plan.train_options)  # the keys exist
    assert len(data_roots) == 3
    assert epoch_lengths == {3000}
    quick = DatafreeBenchmark(PROFILES['quick'], str(tmp_path))
    assert not quick.applies(pair, 'scaling_100')
    with pytest.raises(ValueError, match='does not apply'):
        quick.run_row(pair, 'scaling_100')


def test_a_scaling_set_as_large_as_the_offline_set_is_no_row(tmp_path):
    """With a 300-image offline set, scaling_300 would be kd_synth_offline
    again; the full profile's 750-image Faster R-CNN set has both points."""
    full = PROFILES['full']
    small = dataclasses.replace(
        full, synth_images=dict(full.synth_images, faster_rcnn=300))
    frcnn = PAIRS['faster_rcnn']
    bench = DatafreeBenchmark(small, str(tmp_path))
    assert bench.plan(frcnn, 'kd_synth_offline').images == 300
    assert bench.applies(frcnn, 'scaling_100')
    assert not bench.applies(frcnn, 'scaling_300')
    assert DatafreeBenchmark(full, str(tmp_path)).applies(frcnn, 'scaling_300')
    assert bench.applies(PAIRS['yolov3'], 'scaling_300')


def test_scaling_points_and_their_synthesis_minutes(tmp_path):
    import os

    from benchmarks.digits.datafree import scaling_points, synthesis_minutes
    from mmdiode.visualization.results import plot_scaling
    bench = DatafreeBenchmark(PROFILES['full'], str(tmp_path))
    pair = PAIRS['yolov3']

    def write_log(row, batches, seconds):
        synth = osp.join(bench.row_dir(pair, row), 'synth')
        os.makedirs(synth)
        with open(osp.join(synth, 'losses_rank0.jsonl'), 'w') as f:
            for batch in range(batches):
                f.write(json.dumps(dict(batch=batch, seconds=seconds)) + '\n')
            f.write(json.dumps(dict(batch=3, seconds=30.0)) + '\n')  # retry
        return synth

    synth = write_log('kd_synth_offline', 63, 60.0)  # 1000 images by 16
    # 100 images: batches 0-6 (7 x 60 s) plus the retry of batch 3.
    assert synthesis_minutes(synth, 100) == pytest.approx(7.5)
    assert synthesis_minutes(str(tmp_path / 'none'), 100) is None
    write_log('scaling_100', 7, 120.0)  # its own set: 7 x 2 min + retry
    for row, n, map50 in (('kd_synth_offline', 1000, 0.7),
                          ('scaling_100', 100, 0.4)):
        with open(osp.join(bench.row_dir(pair, row), 'row.json'), 'w') as f:
            json.dump(dict(map=map50 / 2, map50=map50, images=n,
                           seconds=1.0, commit='abc'), f)
    points = scaling_points(bench, pair)
    assert [(p['images'], p['synth_minutes'], p['map50'])
            for p in points] == [(100, 14.5, 0.4), (1000, 63.5, 0.7)]
    png = tmp_path / 'scaling.png'
    plot_scaling(points, dict(teacher=0.9), str(png))
    assert png.read_bytes()[:4] == b'\x89PNG'
