"""Importing mmdiode through a config's custom_imports registers everything.

Runs in a fresh interpreter so nothing has imported mmdiode before the
config does, with the config file outside the repository (as in a user's
own mmdet project).
"""
import subprocess
import sys
import textwrap

# (registry, name) pairs a user refers to by bare type names.
EXPECTED = [
    ('MODELS', 'KDDetector'),
    ('MODELS', 'OutputMSELoss'),
    ('MODELS', 'YOLOv3OutputKDLoss'),
    ('MODELS', 'DenseHeadKDLoss'),
    ('MODELS', 'RoIHeadKDLoss'),
    ('MODELS', 'FitNetLoss'),
    ('MODELS', 'MimicLoss'),
    ('MODELS', 'FGFILoss'),
    ('MODELS', 'PKDLoss'),
    ('MODELS', 'HGDLoss'),
    ('HOOKS', 'TeacherEvalHook'),
    ('HOOKS', 'DeepInversionHook'),
    ('DATASETS', 'BoxSamplerDataset'),
    ('TASK_UTILS', 'DeepInversion'),
    ('TASK_UTILS', 'MultiObjectImpressions'),
    ('TASK_UTILS', 'ClassCoOccurrence'),
    ('TASK_UTILS', 'BoxLayoutSampler'),
]

SCRIPT = textwrap.dedent('''
    import sys
    from mmengine.config import Config
    from mmengine.registry import DefaultScope, init_default_scope
    assert 'mmdiode' not in sys.modules
    cfg = Config.fromfile(sys.argv[1])
    assert 'mmdiode' in sys.modules
    init_default_scope(cfg.default_scope)
    import mmdet.registry as reg
    for registry, name in {expected!r}:
        assert getattr(reg, registry).get(name) is not None, (registry, name)
    # Built by bare type name from the config, in mmdet's scope.
    sampler = reg.TASK_UTILS.build(cfg.sampler)
    layout = sampler.sample(0)
    assert layout.bboxes.shape == (1, 4)
    print('ok')
''')


def test_custom_imports_registers_components(tmp_path):
    cfg = tmp_path / 'user_config.py'
    cfg.write_text(
        "custom_imports = dict(imports=['mmdiode'], "
        "allow_failed_imports=False)\n"
        "default_scope = 'mmdet'\n"
        "sampler = dict(type='BoxLayoutSampler', classes=('a', 'b'), "
        "img_size=64, strategy='one-box')\n")
    script = tmp_path / 'check.py'
    script.write_text(SCRIPT.format(expected=EXPECTED))
    r = subprocess.run([sys.executable, str(script), str(cfg)],
                       cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip().endswith('ok')
