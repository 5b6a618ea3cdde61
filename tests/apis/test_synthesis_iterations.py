"""The synthesis job with the synthesizer's early exit: ``--iterations``
scales its counts, and each batch's entry of ``losses_rank*.jsonl``
records the iterations it ran."""
import copy
import json

import torch
from mmengine.config import Config

from mmdiode.apis import scale_schedule
from mmdiode.testing import save_tiny_teacher, write_tiny_synthesis_config

SYNTHESIZER = dict(
    type='DeepInversion',
    stages=[
        dict(size=64, iterations=200, lr=0.2),
        dict(size=128, iterations=100, lr=0.05)
    ],
    fp_sampling=dict(start=60, end=210, interval=50),
    early_exit=dict(enable=True, stages=[1], check_interval=5))


def test_scale_schedule_scales_the_early_exit_counts():
    original = copy.deepcopy(SYNTHESIZER)
    scaled = scale_schedule(SYNTHESIZER, 30)  # a tenth
    assert [s['iterations'] for s in scaled['stages']] == [20, 10]
    # Defaults 20 and 10 where not set; at least 0, 1 and 1.
    assert scaled['early_exit'] == dict(
        enable=True,
        stages=[1],
        min_iterations=2,
        check_interval=1,
        bn_window=1)
    assert SYNTHESIZER == original  # a copy is scaled
    without = {k: v for k, v in SYNTHESIZER.items() if k != 'early_exit'}
    assert 'early_exit' not in scale_schedule(without, 30)


def test_job_records_the_iterations_each_batch_ran(tmp_path):
    from mmdet.utils import register_all_modules
    from mmengine.registry import init_default_scope

    import mmdiode  # noqa: F401
    from mmdiode.apis import SynthesisJob
    torch.set_num_threads(1)
    register_all_modules()
    init_default_scope('mmdet')
    teacher = save_tiny_teacher(str(tmp_path / 'teacher.pth'))
    path = write_tiny_synthesis_config(
        str(tmp_path / 'synth.py'),
        teacher,
        num_images=4,
        batch_size=2,
        iterations=(6, 4))
    cfg = Config.fromfile(path)
    # Stage 0 (6 iterations) always done after 2; stage 1 runs its 4.
    cfg.synthesizer.early_exit = dict(
        enable=True,
        stages=[0],
        min_iterations=2,
        check_interval=1,
        bn_window=1,
        bn_tol=1e9,
        found_frac=0.0)
    job = SynthesisJob(cfg, str(tmp_path / 'out'), str(tmp_path / 'work'),
                       torch.device('cpu'))
    assert job.synthesizer.early_exit.applies_to(0)
    job.run()
    with open(tmp_path / 'work' / 'losses_rank0.jsonl') as f:
        entries = [json.loads(line) for line in f]
    assert [(e['batch'], e['iterations']) for e in entries] == [(0, 6),
                                                                (1, 6)]
