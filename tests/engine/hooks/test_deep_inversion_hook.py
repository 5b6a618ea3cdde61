"""DeepInversionHook: the full data-free loop with mmengine's Runner (tiny
YOLOv3 teacher and student, BoxSamplerDataset, synthesis before and during
training, CocoMetric validation on a tiny real COCO set), then a resumed run
that continues the pool and the layout counter; the default pool folder in
the work_dir."""
import json
import os.path as osp
import sys

import numpy as np
import pytest
import torch
from mmdet.registry import DATASETS, HOOKS, MODELS, TASK_UTILS
from mmdet.utils import register_all_modules
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.runner import Runner

from mmdiode.datasets import ReplayPool, SyntheticCocoWriter
from mmdiode.engine.hooks.deep_inversion_hook import CHECKPOINT_KEY
from mmdiode.models.task_modules import BoxLayoutSampler
from mmdiode.testing import run_dist_tool, tiny_yolov3
from mmdiode.utils import load_checkpoint_file
from mmdiode.utils.cli import ConfigError

TESTS = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, osp.join(TESTS, 'models'))
from kd_helpers import (CLASSES, make_tiny_coco, runner_config,  # noqa: E402
                        save_teacher, tiny_pair)

ROOT = osp.dirname(TESTS)
SIZE = 32
BATCH = 2

SYNTHESIZER = dict(type='DeepInversion',
                   bn_prior=dict(weight=0.1),
                   image_prior=dict(tv_l1=1.0),
                   augment=dict(flip_prob=0.0, erase_prob=0.0),
                   stages=[dict(size=SIZE, iterations=2, lr=0.1, jitter=2)],
                   fp_sampling=dict(enable=False))


@pytest.fixture(scope='module', autouse=True)
def _registered():
    torch.set_num_threads(1)
    register_all_modules()
    import mmdiode  # noqa: F401


def _config(root, max_iters, resume=False):
    student, teacher = tiny_pair('yolov3')
    # Untrained heads score below the default thresholds; keep every box so
    # that CocoMetric has detections to score.
    student['test_cfg'].update(score_thr=0.0, conf_thr=0.0)
    teacher_ckpt = str(root / 'teacher.pth')
    if not osp.exists(teacher_ckpt):
        save_teacher(teacher, teacher_ckpt)
    model = dict(
        type='KDDetector',
        student=student,
        teacher=dict(config=teacher, checkpoint=teacher_ckpt),
        distill_losses=dict(out=dict(type='OutputMSELoss')),
        # The pool's synthesis targets are the student's ground truth.
        det_loss_weight=1.0,
        classes=CLASSES)
    coco = make_tiny_coco(str(root / 'coco'), num_images=2)
    cfg = runner_config(model, coco, str(root / 'work'), max_iters=max_iters)
    cfg['train_dataloader']['dataset'] = dict(
        type='BoxSamplerDataset',
        pool_dir=str(root / 'pool'),
        layout_sampler=dict(type='BoxLayoutSampler',
                            min_size=0.3,
                            max_size=0.8),
        num_samples=8,
        img_size=SIZE,
        seed=1,
        # No metainfo: the hook records the teacher's classes (the KD
        # model's) in the pool.
        pipeline=[
            dict(type='RandomFlip', prob=0.5),
            dict(type='PackDetInputs')
        ])
    cfg['custom_hooks'] = [
        dict(type='DeepInversionHook',
             synthesizer=SYNTHESIZER,
             pool_size=5,
             interval=2,
             batches_per_round=1,
             batch_size=BATCH,
             initial_batches=1,
             seed=0)
    ]
    # INFO: the LoggerHook's iteration lines reach the log file. A distinct
    # experiment name per run: mmengine keys its MessageHub on it.
    cfg.update(log_level='INFO', experiment_name=f'datafree_{max_iters}')
    if resume:
        cfg.update(resume=True, load_from=str(root / 'work' / 'iter_2.pth'))
    return Config(cfg)


def _hook(runner):
    return next(h for h in runner.hooks
                if type(h).__name__ == 'DeepInversionHook')


@pytest.fixture(scope='module')
def loop(tmp_path_factory):
    root = tmp_path_factory.mktemp('datafree')
    runner = Runner.from_cfg(_config(root, max_iters=2))
    runner.train()
    return root, runner


def test_synthesizes_before_and_during_training(loop):
    root, runner = loop
    hook = _hook(runner)
    # 1 initial batch + 1 round at iteration 2, of BATCH new layouts each.
    assert hook.counter == 2 * BATCH
    entries = hook.pool.entries()
    assert len(entries) == 2 * BATCH
    dataset = runner.train_dataloader.dataset
    for k, entry in enumerate(entries):
        # Without FP sampling the final targets are the layouts.
        layout = dataset.layout(k)
        np.testing.assert_allclose(entry.bboxes, layout.bboxes, atol=1e-4)
        assert entry.labels.tolist() == layout.labels.tolist()
    assert dataset.metainfo['classes'] == CLASSES
    # The config's pool_dir as it is: not the default <work_dir>/pool.
    assert dataset.pool_dir == str(root / 'pool')
    assert not osp.exists(root / 'work' / 'pool')
    hub = runner.message_hub
    assert hub.get_scalar('train/synth/pool_size').current() == 2 * BATCH
    assert hub.get_scalar('train/synth/images_per_s').current() > 0
    # No early exit: the one stage's 2 iterations.
    assert hub.get_scalar('train/synth/iterations').current() == 2
    for term in ('loss_bn', 'loss_tv_l1', 'loss_task', 'loss'):
        assert np.isfinite(hub.get_scalar(f'train/synth/{term}').current())
    assert 'val/coco/bbox_mAP' in hub.log_scalars
    # The log line of the round's iteration printed the synthesis scalars.
    log = open(osp.join(runner.log_dir, f'{runner.timestamp}.log')).read()
    assert 'synth/pool_size: 4' in log and 'synth/loss_bn' in log
    ckpt = load_checkpoint_file(str(root / 'work' / 'iter_2.pth'))
    assert ckpt[CHECKPOINT_KEY] == dict(counter=2 * BATCH,
                                        pool=dict(next_ids={0: 2 * BATCH}))


def test_synthesis_leaves_teacher_and_student_alone(loop):
    _, runner = loop
    hook, model = _hook(runner), runner.model
    model.train()
    model.zero_grad()
    inputs = torch.randn(2, 3, SIZE, SIZE)
    model.student._forward(inputs)[0][0].sum().backward()
    grads = {
        n: p.grad.clone()
        for n, p in model.student.named_parameters() if p.grad is not None
    }
    hook._synthesize_batch(runner)
    assert model.student.training and not model.teacher.training
    for name, param in model.student.named_parameters():
        if name in grads:
            assert torch.equal(param.grad, grads[name]), name
    assert all(p.grad is None and not p.requires_grad
               for p in model.teacher.parameters())
    assert all(not m._forward_hooks and not m._forward_pre_hooks
               for m in model.teacher.modules())


def test_resume_continues_pool_and_counter(loop):
    root, first = loop
    pool_before = {osp.basename(e.file) for e in _hook(first).pool.entries()}
    next_id = _hook(first).pool.state_dict()['next_ids'][0]
    runner = Runner.from_cfg(_config(root, max_iters=4, resume=True))
    runner.train()
    hook = _hook(runner)
    # The counter of the checkpoint (2 * BATCH), no new initial batch, one
    # round at iteration 4. (A batch synthesized after the checkpoint, as by
    # the previous test, stays in the pool; its counter values are reused.)
    assert hook.counter == 3 * BATCH
    entries = hook.pool.entries()
    assert len(entries) == 5  # pool_size: the oldest were evicted
    names = [osp.basename(e.file) for e in entries]
    # File numbers continue where the pool folder left them.
    assert names[-BATCH:] == [
        f'rank0_{n:08d}.png' for n in range(next_id, next_id + BATCH)
    ]
    assert set(names[:-BATCH]) <= pool_before
    dataset = runner.train_dataloader.dataset
    for entry, index in zip(entries[-BATCH:], (4, 5)):
        np.testing.assert_allclose(entry.bboxes,
                                   dataset.layout(index).bboxes,
                                   atol=1e-4)


def _synthesized_set(root, num_images: int) -> str:
    """A set as tools/synthesize.py writes it with the train set's layout
    sampler and seed (layouts 0..num_images-1); noise for pixels."""
    sampler = BoxLayoutSampler(CLASSES,
                               img_size=SIZE,
                               min_size=0.3,
                               max_size=0.8,
                               seed=1)
    writer = SyntheticCocoWriter(str(root), CLASSES, num_images, num_images)
    images = torch.randint(0, 256, (num_images, 3, SIZE, SIZE),
                           dtype=torch.uint8)
    layouts = [sampler.sample(i) for i in range(num_images)]
    writer.write_batch(0, images, layouts)
    writer.merge()
    return str(root)


def test_warm_start_is_followed_by_new_layouts(tmp_path):
    warm = _synthesized_set(tmp_path / 'synth', num_images=3)
    cfg = _config(tmp_path, max_iters=2)
    cfg.custom_hooks[0].warm_start = warm
    runner = Runner.from_cfg(cfg)
    runner.train()
    hook = _hook(runner)
    dataset = runner.train_dataloader.dataset
    entries = hook.pool.entries()
    # The 3 imported images (layouts 0-2, no initial batch), then the round
    # at iteration 2 on layouts 3 and 4, not on the imported ones again.
    assert [osp.dirname(e.file) for e in entries[:3]] == [
        osp.join(warm, 'images')] * 3
    assert len(entries) == 3 + BATCH and hook.counter == 3 + BATCH
    for entry, index in zip(entries, range(3 + BATCH)):
        np.testing.assert_allclose(entry.bboxes,
                                   dataset.layout(index).bboxes,
                                   atol=1e-4)
    with open(osp.join(dataset.pool_dir, 'hook_state_rank0.json')) as f:
        assert json.load(f)['counter'] == 3 + BATCH


def test_each_rank_synthesizes_its_share_under_torchrun(tmp_path):
    """The data-free loop with 2 CPU processes (torchrun + gloo, through
    tools/dist_train.sh): each rank writes its own images into the one pool
    folder, the layout counter advances by both ranks' batches, and rank 1's
    layouts interleave with rank 0's."""
    cfg = _config(tmp_path, max_iters=2)
    # Each rank keeps its 2 batches.
    cfg.custom_hooks[0]['pool_size'] = 4 * BATCH
    cfg.custom_imports = dict(imports=['mmdiode'], allow_failed_imports=False)
    # MobileNetV2's last conv has no reader (as in mmdet's own configs).
    cfg.find_unused_parameters = True
    config_file = str(tmp_path / 'datafree_ddp.py')
    cfg.dump(config_file)
    r = run_dist_tool(osp.join(ROOT, 'tools', 'dist_train.sh'),
                      [config_file, 2, '--work-dir', tmp_path / 'work'],
                      cwd=ROOT)
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    ckpt = load_checkpoint_file(str(tmp_path / 'work' / 'iter_2.pth'))
    # 1 initial batch + 1 round at iteration 2, on each of the 2 ranks.
    assert ckpt[CHECKPOINT_KEY]['counter'] == 2 * BATCH * 2
    pool = ReplayPool(str(tmp_path / 'pool'))
    names = sorted(osp.basename(e.file) for e in pool.entries())
    assert names == sorted(f'rank{r}_{n:08d}.png' for r in (0, 1)
                           for n in range(2 * BATCH))
    # Rank r of 2 synthesized layouts r, r + 2, ...: its first image has
    # the targets of layout r (no FP sampling).
    dataset = DATASETS.build(_config(tmp_path, 2).train_dataloader.dataset)
    for entry in pool.entries():
        rank, number = osp.basename(entry.file)[4:-4].split('_')
        if int(number) == 0:
            np.testing.assert_allclose(entry.bboxes,
                                       dataset.layout(int(rank)).bboxes,
                                       atol=1e-4)


def _default_pool_config(root, max_epochs, resume=False):
    """``_config`` without the train set's pool_dir (the pool goes to
    <work_dir>/pool), epoch-based with a persistent loader worker: forked
    after ``before_run``, it must copy the data set with its folder."""
    cfg = _config(root, max_iters=1)
    del cfg.train_dataloader.dataset['pool_dir']
    cfg.train_dataloader.update(num_workers=1, persistent_workers=True)
    # 8 samples at batch 2: 4 iterations an epoch, a round every 2.
    cfg.train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs,
                         val_interval=10)
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=1)
    cfg.experiment_name = f'default_pool_{max_epochs}'
    if resume:
        cfg.update(resume=True,
                   load_from=str(root / 'work' / f'epoch_{max_epochs - 1}'
                                 '.pth'))
    return cfg


def test_default_pool_lives_in_the_work_dir(tmp_path):
    """Without pool_dir in the config the hook puts the pool in
    <work_dir>/pool before the persistent worker is forked and before a
    resumed run reads the data set's metainfo (the pool's classes)."""
    runner = Runner.from_cfg(_default_pool_config(tmp_path, max_epochs=1))
    runner.train()
    pool_dir = osp.join(runner.work_dir, 'pool')
    dataset = runner.train_dataloader.dataset
    assert dataset.pool_dir == pool_dir == str(tmp_path / 'work' / 'pool')
    assert not osp.exists(tmp_path / 'pool')
    hook = _hook(runner)
    assert hook.pool.pool_dir == pool_dir
    # 1 initial batch + rounds at iterations 2 and 4.
    assert hook.counter == 3 * BATCH
    assert ReplayPool(pool_dir).num_added == 3 * BATCH
    # The classes the hook recorded in the pool (the train set names none).
    assert dataset.metainfo['classes'] == CLASSES
    # The persistent worker (the process that served the training batches)
    # reads the pool in the work_dir.
    batch = next(iter(runner.train_dataloader))
    assert all(
        s.img_path.startswith(pool_dir + osp.sep)
        for s in batch['data_samples'])

    resumed = Runner.from_cfg(
        _default_pool_config(tmp_path, max_epochs=2, resume=True))
    resumed.train()
    # The same pool and counter: rounds at iterations 6 and 8, no initial
    # batch.
    assert _hook(resumed).counter == 5 * BATCH
    assert resumed.train_dataloader.dataset.pool_dir == pool_dir
    log = open(osp.join(resumed.log_dir, f'{resumed.timestamp}.log')).read()
    assert 'replay pool ' + pool_dir in log
    assert 'metainfo from the resumed checkpoint is different' not in log


def test_pool_dir_needs_the_hook_or_the_config(tmp_path):
    """A train set without pool_dir in a run without DeepInversionHook
    stops at its first read with an error that says what to set; an
    iteration-based loop, whose loader workers start before any hook, needs
    pool_dir in the config."""
    cfg = _config(tmp_path, max_iters=1)
    del cfg.train_dataloader.dataset['pool_dir']
    cfg.custom_hooks = []
    cfg.experiment_name = 'no_hook'
    with pytest.raises(ConfigError,
                       match='no pool_dir.*add one to custom_hooks.*pool_dir'):
        Runner.from_cfg(cfg).train()
    assert not osp.exists(tmp_path / 'work' / 'pool')

    cfg = _config(tmp_path, max_iters=1)
    del cfg.train_dataloader.dataset['pool_dir']
    cfg.train_dataloader.num_workers = 1
    cfg.experiment_name = 'iter_based_workers'
    with pytest.raises(ConfigError, match='started its data loader workers'):
        Runner.from_cfg(cfg).train()


def test_errors_name_the_problem(tmp_path):
    hook = HOOKS.build(dict(type='DeepInversionHook', synthesizer=SYNTHESIZER))
    plain = MODELS.build(tiny_yolov3())
    with pytest.raises(TypeError, match='frozen teacher'):
        hook._teacher_of(plain)
    with pytest.raises(ValueError, match='do not set teacher'):
        HOOKS.build(
            dict(type='DeepInversionHook',
                 synthesizer=dict(SYNTHESIZER, teacher=None)))
    with pytest.raises(ValueError, match='interval must be >= 1'):
        HOOKS.build(
            dict(type='DeepInversionHook', synthesizer=SYNTHESIZER,
                 interval=0))


def test_finds_box_sampler_set_inside_dataset_wrappers(tmp_path):
    """Mosaic needs MultiImageMixDataset around the BoxSamplerDataset: the
    hook reaches through wrappers to the set that reads the pool, and names
    what it found otherwise."""
    from types import SimpleNamespace
    box_set = dict(type='BoxSamplerDataset',
                   pool_dir=str(tmp_path / 'pool'),
                   metainfo=dict(classes=CLASSES),
                   layout_sampler=dict(type='BoxLayoutSampler'),
                   num_samples=4,
                   img_size=SIZE,
                   pipeline=[])
    mosaic = DATASETS.build(
        dict(type='RepeatDataset',
             times=2,
             dataset=dict(type='MultiImageMixDataset',
                          dataset=box_set,
                          pipeline=[
                              dict(type='Mosaic', img_scale=(SIZE, SIZE)),
                              dict(type='PackDetInputs')
                          ])))
    hook = HOOKS.build(dict(type='DeepInversionHook', synthesizer=SYNTHESIZER))
    runner = SimpleNamespace(train_dataloader=SimpleNamespace(dataset=mosaic))
    found = hook._train_set(runner)
    assert found is mosaic.dataset.dataset
    assert found.pool_dir == str(tmp_path / 'pool')
    other = HOOKS.build(
        dict(type='DeepInversionHook', synthesizer=SYNTHESIZER,
             pool_dir=str(tmp_path / 'other')))
    with pytest.raises(ValueError, match='differs from the train set'):
        other._train_set(runner)
    # A wrapper (anything with .dataset) around a set of plain samples.
    runner.train_dataloader.dataset = SimpleNamespace(dataset=[])
    with pytest.raises(TypeError, match='got list in SimpleNamespace'):
        hook._train_set(runner)


DATA_FREE_CONFIGS = [
    'configs/diode/diode_yolov3-mv2_yolov3-mv2-x0.5_24e_digits.py',
    'configs/moi/moi_faster-rcnn-r18_faster-rcnn-r18-x0.5_8e_digits.py',
    'configs/diode/diode_yolov3-d53_yolov3-d53_273e_coco.py',
    'configs/moi/moi_faster-rcnn-r50_faster-rcnn-r18_1x_coco.py',
]


@pytest.mark.parametrize('path', DATA_FREE_CONFIGS)
def test_data_free_config_wires_dataset_hook_and_teacher(path, tmp_path):
    """Each data-free config's train set, hook and synthesizer build and fit
    together (teacher without weights); on digits, a training step of the
    KD model runs on the train set's samples."""
    from mmengine.config import ConfigDict

    from mmdiode.models.utils import load_teacher_model_config
    cfg = Config.fromfile(osp.join(ROOT, path))
    dataset_cfg = box_set_cfg = cfg.train_dataloader.dataset
    while box_set_cfg.type != 'BoxSamplerDataset':  # Mosaic's wrapper
        box_set_cfg = box_set_cfg.dataset
    # The hook gives the pool its folder, <work_dir>/pool.
    assert 'pool_dir' not in box_set_cfg
    box_set_cfg.pool_dir = str(tmp_path / 'pool')
    dataset = DATASETS.build(dataset_cfg)
    box_set = getattr(dataset, 'dataset', dataset)
    assert len(box_set.layout(0).labels) >= 1
    hook_cfg, = [h for h in cfg.custom_hooks if h.type == 'DeepInversionHook']
    hook = HOOKS.build(hook_cfg)
    teacher_cfg, _ = load_teacher_model_config(cfg.model.teacher.config)
    teacher = MODELS.build(ConfigDict(teacher_cfg))
    synthesizer = TASK_UTILS.build(dict(hook.synthesizer_cfg, teacher=teacher))
    assert tuple(synthesizer.final_size) == (box_set.img_size, ) * 2
    samples = [dataset[0], dataset[1]]  # through the config's pipeline
    if not path.endswith('_digits.py'):
        return  # the COCO students initialise from downloaded weights
    cfg.model.teacher.checkpoint = None
    model = MODELS.build(cfg.model).train()
    batch = model.data_preprocessor(pseudo_collate(samples), True)
    losses = model.loss(batch['inputs'], batch['data_samples'])
    assert {k.split('.')[0]
            for k in losses if '.' in k} == set(cfg.model.distill_losses)
    assert all(
        torch.isfinite(v).all() for vs in losses.values()
        for v in (vs if isinstance(vs, list) else [vs]))


def _killed_run(cfg, method, replacement):
    """Trains ``cfg`` with ``DeepInversionHook.<method>`` replaced by
    ``replacement``, which raises KeyboardInterrupt (the run is killed);
    the method is restored afterwards."""
    from mmdiode.engine.hooks import deep_inversion_hook as module
    original = getattr(module.DeepInversionHook, method)
    setattr(module.DeepInversionHook, method, replacement)
    try:
        with pytest.raises(KeyboardInterrupt):
            Runner.from_cfg(cfg).train()
    finally:
        setattr(module.DeepInversionHook, method, original)


def _restart_completes_initial_batches(cfg, experiment_name):
    """Starts ``cfg`` again (3 initial batches): it ends with all of them
    done, their images on layouts 0..5, none twice. Returns the runner."""
    cfg.experiment_name = experiment_name
    runner = Runner.from_cfg(cfg)
    runner.train()
    hook = _hook(runner)
    assert (hook.counter, hook.initial_done) == (3 * BATCH, 3)
    entries = hook.pool.entries()
    assert len(entries) == 3 * BATCH
    dataset = runner.train_dataloader.dataset
    for k, entry in enumerate(entries):  # layouts 0..5, none twice
        np.testing.assert_allclose(entry.bboxes,
                                   dataset.layout(k).bboxes,
                                   atol=1e-4)
    return runner


def test_start_stopped_during_initial_batches_continues_them(tmp_path):
    """Killed before its first checkpoint (during the minutes-long initial
    batches), a run has nothing to resume from; started again on the same
    pool it synthesizes only the initial batches still missing, on new
    layouts, then trains."""
    cfg = _config(tmp_path, max_iters=1)
    cfg.custom_hooks[0].update(initial_batches=3, interval=100, pool_size=10)
    from mmdiode.engine.hooks import deep_inversion_hook as module
    calls = []
    original = module.DeepInversionHook._synthesize_batch

    def dies_in_second_batch(self, runner, initial=False):
        calls.append(self.counter)
        if len(calls) == 2:
            raise KeyboardInterrupt('killed')
        original(self, runner, initial)

    _killed_run(cfg, '_synthesize_batch', dies_in_second_batch)
    with open(tmp_path / 'pool' / 'hook_state_rank0.json') as f:
        assert json.load(f) == dict(counter=BATCH, initial_done=1)
    runner = _restart_completes_initial_batches(cfg, 'datafree_restart')
    log = open(osp.join(runner.log_dir, f'{runner.timestamp}.log')).read()
    assert 'continuing an earlier start' in log
    assert '1/3 initial batches done' in log


def test_start_killed_before_recording_its_first_batch_continues(tmp_path):
    """Killed between committing its first initial batch to the pool and
    recording it in hook_state_rank0.json, a run leaves images without a
    progress record; started again, it counts them as one initial batch
    done and synthesizes the others on new layouts (it used to take them
    for a pool filled otherwise and skip the remaining initial batches)."""
    cfg = _config(tmp_path, max_iters=1)
    cfg.custom_hooks[0].update(initial_batches=3, interval=100, pool_size=10)

    def killed(self):
        raise KeyboardInterrupt('killed')

    _killed_run(cfg, '_save_progress', killed)
    assert not osp.exists(tmp_path / 'pool' / 'hook_state_rank0.json')
    assert len(ReplayPool(str(tmp_path / 'pool'))) == BATCH
    _restart_completes_initial_batches(cfg, 'datafree_unrecorded_restart')


def _train_with_recombine(tmp_path, recombine: dict, max_iters: int,
                          resume: bool = False):
    """Trains the hook's test run with the synthesizer's ``recombine``
    option; returns the runner and its hook."""
    cfg = _config(tmp_path, max_iters=max_iters, resume=resume)
    cfg.custom_hooks[0].synthesizer = dict(SYNTHESIZER, recombine=recombine)
    cfg.experiment_name = f'recombine_{max_iters}'
    runner = Runner.from_cfg(cfg)
    runner.train()
    return runner, _hook(runner)


@pytest.mark.parametrize('refill', [False, True])
def test_recombine_starts_later_batches_from_the_saved_bank(
        tmp_path, monkeypatch, refill):
    """The first batch (the initial one) fills the object bank, saved
    beside the pool; the round's batch starts warm from it (and with refill
    adds its objects too); a resumed run loads the bank instead of
    refilling it."""
    from mmdiode.engine.hooks.deep_inversion_hook import BANK_FILE
    from mmdiode.models.task_modules.inversion import object_bank

    # A random tiny teacher finds nothing: every target counts as found.
    monkeypatch.setattr(
        object_bank, 'found_targets',
        lambda preds, boxes, labels, score_thr, iou_thr: torch.ones(
            len(boxes), dtype=torch.bool))
    recombine = dict(
        enable=True,
        cold_batches=1,
        stages=[dict(size=SIZE, iterations=1, lr=0.05, jitter=2)],
        refill=refill)

    def run(max_iters, resume=False):
        return _train_with_recombine(tmp_path, recombine, max_iters, resume)

    runner, hook = run(max_iters=2)
    bank_file = tmp_path / 'pool' / BANK_FILE.format(rank=0)
    assert bank_file.is_file()
    assert hook.objects.batches == 1 + refill and len(hook.objects) > 0
    hub = runner.message_hub
    assert hub.get_scalar('train/synth/warm').current() == 1
    # The warm schedule's one iteration, not the recipe's two.
    assert hub.get_scalar('train/synth/iterations').current() == 1
    crops, batches = len(hook.objects), hook.objects.batches
    runner, hook = run(max_iters=4, resume=True)
    if refill:  # the saved bank, then the resumed run's warm batches
        assert hook.objects.batches > batches
    else:
        assert hook.objects.batches == 1 and len(hook.objects) == crops
    assert runner.message_hub.get_scalar('train/synth/warm').current() == 1


def test_an_amortised_warm_start_is_saved_and_resumed(tmp_path):
    """With source='amortised' the hook's warm-start source is a generator,
    saved beside the pool after each batch it learns from and loaded by a
    resumed run."""
    from mmdiode.engine.hooks.deep_inversion_hook import BANK_FILE
    from mmdiode.models.task_modules.inversion import LayoutGenerator
    recombine = dict(
        enable=True,
        cold_batches=1,
        stages=[dict(size=SIZE, iterations=1, lr=0.05, jitter=2)],
        refill=True,
        source='amortised',
        amortised=dict(size=16, channels=4, steps=2, batch_size=2))

    def run(max_iters, resume=False):
        return _train_with_recombine(tmp_path, recombine, max_iters, resume)

    runner, hook = run(max_iters=2)
    assert isinstance(hook.objects, LayoutGenerator)
    assert (tmp_path / 'pool' / BANK_FILE.format(rank=0)).is_file()
    assert hook.objects.batches == 2 and hook.objects.steps_taken == 4
    assert runner.message_hub.get_scalar('train/synth/warm').current() == 1
    _, hook = run(max_iters=4, resume=True)
    assert hook.objects.batches > 2 and hook.objects.steps_taken > 4


def test_competition_term_competes_with_the_trained_student(tmp_path):
    """With the synthesizer's competition term the hook gives it the KD
    model's student: the term is logged, and a synthesized batch leaves the
    student (its mode, gradients, BatchNorm statistics) as it was."""
    cfg = _config(tmp_path, max_iters=2)
    cfg.custom_hooks[0].synthesizer = dict(
        SYNTHESIZER,
        competition=dict(weight=1.0,
                         loss=dict(type='YOLOv3OutputKDLoss',
                                   box_weight=0.0)))
    cfg.experiment_name = 'competition'
    runner = Runner.from_cfg(cfg)
    runner.train()
    hook, model = _hook(runner), runner.model
    assert hook.synthesizer.competition.student is model.student
    compete = runner.message_hub.get_scalar('train/synth/loss_compete')
    assert compete.current() > 0
    model.train()
    model.zero_grad()
    outs = model.student._forward(torch.randn(2, 3, SIZE, SIZE))
    outs[0][0].sum().backward()
    before = {k: v.clone() for k, v in model.student.state_dict().items()}
    grads = {n: p.grad.clone() for n, p in model.student.named_parameters()
             if p.grad is not None}
    hook._synthesize_batch(runner)
    assert model.student.training
    after = model.student.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    for name, param in model.student.named_parameters():
        if name in grads:
            assert torch.equal(param.grad, grads[name]), name
