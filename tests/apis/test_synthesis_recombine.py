"""The synthesis job with the synthesizer's warm start: the first
``cold_batches`` batches fill the object bank, later ones start from it, and
a job resumed after its cold batches makes the same data set."""
import json

import pytest
import torch
from mmengine.config import Config

from mmdiode.testing import save_tiny_teacher, write_tiny_synthesis_config

WARM_START = dict(
    enable=True,
    cold_batches=1,
    stages=[dict(size=64, iterations=2, lr=0.02, jitter=2)])


@pytest.fixture
def config(tmp_path, monkeypatch):
    from mmdet.utils import register_all_modules
    from mmengine.registry import init_default_scope

    import mmdiode  # noqa: F401
    from mmdiode.models.task_modules.inversion import object_bank
    torch.set_num_threads(1)
    register_all_modules()
    init_default_scope('mmdet')
    # A random tiny teacher finds nothing: every target counts as found.
    monkeypatch.setattr(
        object_bank, 'found_targets',
        lambda preds, boxes, labels, score_thr, iou_thr: torch.ones(
            len(boxes), dtype=torch.bool))
    teacher = save_tiny_teacher(str(tmp_path / 'teacher.pth'))
    path = write_tiny_synthesis_config(
        str(tmp_path / 'synth.py'), teacher, num_images=6, batch_size=2)
    cfg = Config.fromfile(path)
    cfg.synthesizer.recombine = WARM_START
    return cfg


def _job(cfg, root, name):
    from mmdiode.apis import SynthesisJob
    return SynthesisJob(cfg, str(root / name), str(root / f'work_{name}'),
                        torch.device('cpu'))


def _data_set(root, name):
    with open(root / name / 'annotations.json') as f:
        coco = json.load(f)
    pixels = [(root / name / img['file_name']).read_bytes()
              for img in coco['images']]
    return coco['images'], coco['annotations'], pixels


def test_later_batches_start_warm_and_a_resumed_job_matches(
        config, tmp_path):
    _job(config, tmp_path, 'full').run()
    with open(tmp_path / 'work_full' / 'losses_rank0.jsonl') as f:
        entries = [json.loads(line) for line in f]
    assert [(e['batch'], e['warm'], e['iterations'])
            for e in entries] == [(0, False, 10), (1, True, 2),
                                  (2, True, 2)]
    # Stopped after batch 1, resumed by a new job (a new process): its bank
    # is refilled from batch 0 on disk.
    first = _job(config, tmp_path, 'resumed')
    for batch in (0, 1):
        first._synthesize_batch(batch, None)
    _job(config, tmp_path, 'resumed').run()
    assert _data_set(tmp_path, 'full') == _data_set(tmp_path, 'resumed')


def test_refill_adds_warm_batches_to_the_bank_and_resumes_alike(
        config, tmp_path):
    """With refill every written batch joins the bank (cold and warm); a
    job resumed after batch 1 refills it from batches 0 and 1 on disk and
    writes the same data set."""
    from mmdiode.apis.synthesis import fill_object_bank
    config.synthesizer.recombine = dict(WARM_START, refill=True)
    job = _job(config, tmp_path, 'full')
    job.run()
    assert job.objects.batches == 3  # batch 0 (filled), then 1 and 2
    refilled = fill_object_bank(job.synthesizer, job.writer)
    assert refilled.batches == 3 and len(refilled) == len(job.objects)
    # Without refill the bank holds the cold batch only.
    no_refill = dict(job.synthesizer.recombine, refill=False)
    job.synthesizer.recombine = no_refill
    assert fill_object_bank(job.synthesizer, job.writer).batches == 1
    first = _job(config, tmp_path, 'resumed')
    for batch in (0, 1):
        first._synthesize_batch(batch, None)
    resumed = _job(config, tmp_path, 'resumed')
    resumed.run()
    assert resumed.objects.batches == 3
    assert _data_set(tmp_path, 'full') == _data_set(tmp_path, 'resumed')


def test_sharding_a_recombining_job_is_refused(config, tmp_path,
                                               monkeypatch):
    from mmdiode.apis import synthesis
    from mmdiode.utils.cli import ConfigError
    monkeypatch.setattr(synthesis, 'get_dist_info', lambda: (0, 2))
    with pytest.raises(ConfigError, match='run it on one process'):
        _job(config, tmp_path, 'sharded')


def test_an_amortised_warm_start_resumes_to_the_same_data_set(
        config, tmp_path):
    """With source='amortised' the cold batch and, with refill, every batch
    teach the generator; a job resumed after batch 1 retrains it from
    batches 0 and 1 on disk and writes the same data set."""
    from mmdiode.models.task_modules.inversion import LayoutGenerator
    config.synthesizer.recombine = dict(
        WARM_START, refill=True, source='amortised',
        amortised=dict(size=32, channels=4, steps=2, batch_size=2))
    job = _job(config, tmp_path, 'full')
    job.run()
    assert isinstance(job.objects, LayoutGenerator)
    assert job.objects.batches == 3 and job.objects.steps_taken == 6
    with open(tmp_path / 'work_full' / 'losses_rank0.jsonl') as f:
        assert [json.loads(line)['warm'] for line in f] == [False, True, True]
    first = _job(config, tmp_path, 'resumed')
    for batch in (0, 1):
        first._synthesize_batch(batch, None)
    _job(config, tmp_path, 'resumed').run()
    assert _data_set(tmp_path, 'full') == _data_set(tmp_path, 'resumed')
