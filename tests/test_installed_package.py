"""The installed package alone is the plugin: no checkout needed.

``pip install`` (not editable) puts mmdiode into a folder of its own; a
fresh interpreter, run from a project folder outside the repository with
that folder first on its path, imports it from there and, from configs
written in the project folder, synthesizes a small COCO set with
``SynthesisJob`` and trains a ``KDDetector`` with ``DeepInversionHook``
through mmengine's ``Runner``. Nothing of the checkout (``tools/``,
``configs/``, ``checkpoints/``, ``benchmarks/``) is on the path or in the
working directory.
"""
import json
import math
import os
import os.path as osp
import shutil
import subprocess
import sys
import textwrap

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))

SCRIPT = textwrap.dedent('''
    import json
    import os.path as osp
    import sys

    import torch
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmengine.runner import Runner

    import mmdiode
    from mmdiode.apis import SynthesisJob
    from mmdiode.apis.synthesis import SYNTHESIS_DEFAULTS
    from mmdiode.testing import (save_tiny_teacher,
                                 write_tiny_datafree_config,
                                 write_tiny_synthesis_config)

    torch.set_num_threads(1)
    ckpt = save_tiny_teacher('teacher.pth')

    cfg = Config.fromfile(write_tiny_synthesis_config(
        'synth.py', ckpt, num_images=2, batch_size=2, iterations=(2, 1)))
    cfg.synthesis = {**SYNTHESIS_DEFAULTS, **cfg.synthesis}
    init_default_scope('mmdet')
    SynthesisJob(cfg, 'synth_out', 'work_synth', torch.device('cpu')).run()

    cfg = Config.fromfile(write_tiny_datafree_config(
        'datafree.py', '.', ckpt, max_iters=2, checkpoint_interval=2))
    cfg.work_dir = 'work_kd'
    runner = Runner.from_cfg(cfg)
    runner.train()
    # The last iteration's loss terms, as the Runner logged them.
    losses = {k[len('train/'):]: float(v.current())
              for k, v in runner.message_hub.log_scalars.items()
              if k == 'train/loss' or k.startswith('train/out.')}
    print('result=' + json.dumps(dict(
        mmdiode=mmdiode.__file__,
        model=type(runner.model).__name__,
        iters=runner.iter,
        losses=losses)))
''')


def test_installed_package_synthesizes_and_distils_outside_the_repo(
        tmp_path):
    # A copy of what setup.py reads: the build writes build/ and
    # *.egg-info beside its sources, which stay out of the checkout.
    src = tmp_path / 'src'
    shutil.copytree(osp.join(ROOT, 'mmdiode'),
                    src / 'mmdiode',
                    ignore=shutil.ignore_patterns('__pycache__'))
    for name in ('setup.py', 'README.md', 'LICENSE'):
        shutil.copy(osp.join(ROOT, name), src / name)
    site = tmp_path / 'site'
    install = subprocess.run([
        sys.executable, '-m', 'pip', 'install', '--quiet', '--no-deps',
        '--no-build-isolation', '--no-index', '--target',
        str(site),
        str(src)
    ],
                             capture_output=True,
                             text=True,
                             timeout=600)
    assert install.returncode == 0, install.stderr[-3000:]
    project = tmp_path / 'project'
    project.mkdir()
    env = dict(os.environ, PYTHONPATH=str(site), OMP_NUM_THREADS='1')
    run = subprocess.run([sys.executable, '-c', SCRIPT],
                         cwd=project,
                         env=env,
                         capture_output=True,
                         text=True,
                         timeout=600)
    assert run.returncode == 0, (run.stdout + run.stderr)[-4000:]
    line, = [x for x in run.stdout.splitlines() if x.startswith('result=')]
    result = json.loads(line[len('result='):])
    # The installed copy, not the editable checkout.
    assert result['mmdiode'].startswith(str(site)), result['mmdiode']
    assert result['model'] == 'KDDetector' and result['iters'] == 2
    # The total and the distillation terms (OutputMSELoss, named 'out').
    losses = result['losses']
    assert 'loss' in losses and any(k.startswith('out.') for k in losses)
    assert all(math.isfinite(v) for v in losses.values()), losses
    with open(project / 'synth_out' / 'annotations.json') as f:
        coco = json.load(f)
    assert len(coco['images']) == 2 and coco['annotations']
    for image in coco['images']:
        assert osp.isfile(project / 'synth_out' / image['file_name'])
    # The hook wrote its pool and the Runner its checkpoint.
    assert osp.isfile(project / 'work_kd' / 'iter_2.pth')
    assert os.listdir(project / 'pool')
