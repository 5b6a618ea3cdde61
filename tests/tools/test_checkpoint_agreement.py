"""tools/analysis_tools/checkpoint_agreement.py on tiny checkpoints: both
scores per checkpoint through the Runner's test loop, the rank correlation,
the pick and its gap, the json and the plot."""
import json
import os.path as osp
import subprocess
import sys

import pytest
import torch
from mmdet.registry import MODELS
from mmdet.utils import register_all_modules
from mmengine.config import Config, ConfigDict

from mmdiode.datasets import SyntheticCocoWriter
from mmdiode.evaluation import write_teacher_annotations
from mmdiode.models.task_modules import BoxLayoutSampler
from mmdiode.testing import tiny_yolov3

sys.path.insert(0, osp.join(osp.dirname(osp.dirname(__file__)), 'models'))
from kd_helpers import CLASSES, make_tiny_coco, runner_config  # noqa: E402

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOL = osp.join(ROOT, 'tools', 'analysis_tools', 'checkpoint_agreement.py')


def _model(seed):
    torch.manual_seed(seed)
    model = MODELS.build(ConfigDict(tiny_yolov3(num_classes=len(CLASSES))))
    model.dataset_meta = dict(classes=CLASSES)
    return model.eval()


def _agreement_set(root, teacher):
    sampler = BoxLayoutSampler(CLASSES, img_size=64, seed=5)
    writer = SyntheticCocoWriter(root, CLASSES, num_images=4, batch_size=4)
    layouts = [sampler.sample(i) for i in range(4)]
    images = torch.rand(4, 3, 64, 64,
                        generator=torch.Generator().manual_seed(1))
    writer.write_batch(0, images, layouts)
    writer.merge()
    from mmdiode.evaluation.fidelity import coco_test_loader
    scores = []
    with torch.no_grad():
        for data in coco_test_loader(root, 'annotations.json', 4, CLASSES):
            scores += [s.pred_instances.scores
                       for s in teacher.test_step(data)]
    write_teacher_annotations(
        teacher, root, score_thr=float(torch.quantile(torch.cat(scores), 0.9)))


def test_scores_every_checkpoint_and_picks_the_teacher(tmp_path):
    register_all_modules()
    teacher = _model(0)
    _agreement_set(str(tmp_path / 'agreement'), teacher)
    coco = make_tiny_coco(str(tmp_path / 'coco'), num_images=4)
    model = tiny_yolov3(num_classes=len(CLASSES))
    config = tmp_path / 'run.py'
    Config(runner_config(model, coco, str(tmp_path / 'work'))).dump(
        str(config))
    work = tmp_path / 'train'
    work.mkdir()
    # Epochs 1 and 2 are other random models; epoch 3 is the teacher, which
    # agrees with its own detections completely.
    for epoch, model in ((1, _model(1)), (2, _model(2)), (3, teacher)):
        torch.save(dict(state_dict=model.state_dict()),
                   work / f'epoch_{epoch}.pth')
    out = tmp_path / 'validation.json'
    r = subprocess.run(
        [sys.executable, TOOL, str(config), str(work), '--agreement',
         str(tmp_path / 'agreement'), '--pair', 'tiny', '--out', str(out),
         '--runner-dir', str(tmp_path / 'runner'), '--epoch-seconds', '10'],
        cwd=str(tmp_path), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    entry = json.loads(out.read_text())['pairs']['tiny']
    assert entry['checkpoints'] == 3
    assert [row['epoch'] for row in entry['rows']] == [1, 2, 3]
    assert entry['rows'][2]['agreement_map50'] == 1.0
    assert entry['picked_epoch'] == 3
    best = max(row['test_map50'] for row in entry['rows'])
    assert entry['best_gap_map50'] == round(
        best - entry['rows'][2]['test_map50'], 4)
    assert entry['val_cost_ratio'] == pytest.approx(
        entry['agreement_seconds_per_epoch'] / 10, abs=1e-3)
    assert (tmp_path / 'validation.png').read_bytes()[:4] == b'\x89PNG'
    assert r.stdout.strip().splitlines()[-2].startswith('spearman=')


def test_missing_agreement_set_is_one_error(tmp_path):
    r = subprocess.run(
        [sys.executable, TOOL, 'cfg.py', str(tmp_path), '--agreement',
         str(tmp_path / 'none'), '--pair', 'x'],
        cwd=str(tmp_path), capture_output=True, text=True, timeout=300)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1].startswith('error: ')
    assert 'teacher_annotations.json not found' in r.stderr


def _tool_module():
    import importlib.util
    spec = importlib.util.spec_from_file_location('checkpoint_agreement',
                                                  TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# Agreement at IoU 0.5 saturated from epoch 2 (as on the MOI sets); the
# stricter mAP still follows the real score.
SATURATED = [
    dict(epoch=1, test_map=0.1, test_map50=0.20, agreement_map=0.50,
         agreement_map50=0.80),
    dict(epoch=2, test_map=0.2, test_map50=0.40, agreement_map=0.70,
         agreement_map50=0.985),
    dict(epoch=3, test_map=0.3, test_map50=0.50, agreement_map=0.80,
         agreement_map50=0.984),
    dict(epoch=4, test_map=0.3, test_map50=0.55, agreement_map=0.85,
         agreement_map50=0.983),
]


def test_the_metric_ranks_and_picks():
    tool = _tool_module()
    strict = tool.summarize(SATURATED, 'map', 2.0, 100.0)
    assert strict['spearman'] == pytest.approx(1.0)
    assert (strict['picked_epoch'], strict['best_gap_map50']) == (4, 0.0)
    assert strict['metric'] == 'map' and strict['val_cost_ratio'] == 0.02
    loose = tool.summarize(SATURATED, 'map50', 2.0, None)
    assert loose['spearman'] == pytest.approx(0.2)  # ranks 1 4 3 2
    assert (loose['picked_epoch'], loose['best_gap_map50']) == (2, 0.15)
    assert loose['val_cost_ratio'] is None


def test_rows_from_an_earlier_run_score_nothing(tmp_path):
    earlier = tmp_path / 'earlier.json'
    earlier.write_text(json.dumps(dict(commit='x', pairs=dict(tiny=dict(
        rows=SATURATED, agreement_seconds_per_epoch=2.0,
        epoch_seconds=100.0)))))
    out = tmp_path / 'validation.json'
    # No config, work dir or agreement set exists: nothing is scored.
    r = subprocess.run(
        [sys.executable, TOOL, 'none.py', str(tmp_path / 'none'),
         '--agreement', str(tmp_path / 'none'), '--pair', 'tiny',
         '--rows-from', str(earlier), '--out', str(out)],
        cwd=str(tmp_path), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    entry = json.loads(out.read_text())['pairs']['tiny']
    assert entry['rows'] == SATURATED and entry['metric'] == 'map'
    assert (entry['picked_epoch'], entry['val_cost_ratio']) == (4, 0.02)
    missing = subprocess.run(
        [sys.executable, TOOL, 'none.py', 'none', '--agreement', 'none',
         '--pair', 'other', '--rows-from', str(earlier)],
        cwd=str(tmp_path), capture_output=True, text=True, timeout=300)
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines()[-1].startswith(
        "error: --rows-from")
