"""The synthesizer's early exit: a stage ends once the teacher finds the
targets and the BN prior has stopped falling (tiny real teachers)."""
import os.path as osp

import pytest
import torch
from conftest import build_teacher, two_layouts
from kd_helpers import FP_SAMPLING_ONCE
from mmdet.registry import TASK_UTILS
from mmdet.structures import DetDataSample
from mmengine.config import Config
from mmengine.structures import InstanceData

from mmdiode.models.task_modules.inversion import (DeepInversion, EarlyExit,
                                                   MultiObjectImpressions)
from mmdiode.models.task_modules.inversion.early_exit import \
    EARLY_EXIT_DEFAULTS

ROOT = osp.dirname(
    osp.dirname(
        osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))))
NO_FP = dict(enable=False)
STAGES = (dict(size=32, iterations=8, lr=0.1, jitter=2),
          dict(size=64, iterations=6, lr=0.05, jitter=4))
# Checks after 3, 5 and 7 iterations of a stage; a 2-iteration BN window.
CHECKS = dict(min_iterations=3, check_interval=2, bn_window=1)
# Every check passes: nothing to find, any BN change is a plateau.
ALWAYS = dict(enable=True, found_frac=0.0, bn_tol=1e9, **CHECKS)
# No check passes: a score and an IoU of exactly 1 for every target.
NEVER = dict(
    enable=True, found_frac=1.0, score_thr=1.0, iou_thr=1.0, bn_tol=1e9,
    **CHECKS)


def _engine(teacher, stages=STAGES, **kwargs):
    return DeepInversion(
        teacher, stages=list(stages), **{
            'fp_sampling': NO_FP,
            **kwargs
        })


def _run(engine, seed=0):
    calls = []
    result = engine.synthesize(
        two_layouts(),
        torch.Generator().manual_seed(seed),
        callback=lambda it, stage, losses: calls.append((it, stage)))
    return result, calls


def _same(a, b):
    assert torch.equal(a.images, b.images)
    assert all(torch.equal(x, y) for x, y in zip(a.boxes, b.boxes))
    assert all(torch.equal(x, y) for x, y in zip(a.labels, b.labels))
    assert a.loss_history == b.loss_history
    assert a.iterations == b.iterations


@pytest.fixture
def predict_calls(teachers, monkeypatch):
    """Counts the tiny YOLOv3 teacher's ``predict()`` calls."""
    teacher = teachers['yolov3']
    calls = []
    original = teacher.predict

    def predict(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(teacher, 'predict', predict)
    return calls


def test_disabled_is_the_recipe_unchanged(teachers):
    """Absent and ``enable=False`` (whatever else is set) give the same
    images, targets (FP sampling on) and losses; every iteration runs."""
    teacher = teachers['yolov3']
    absent, absent_calls = _run(
        _engine(teacher, fp_sampling=FP_SAMPLING_ONCE))
    disabled, disabled_calls = _run(
        _engine(
            teacher,
            fp_sampling=FP_SAMPLING_ONCE,
            early_exit=dict(ALWAYS, enable=False)))
    _same(absent, disabled)
    assert absent.iterations == 14
    assert absent_calls == disabled_calls == [(i, int(i >= 8))
                                              for i in range(14)]
    assert not _engine(teacher).early_exit.enable


def test_an_always_done_batch_leaves_each_stage_at_min_iterations(
        teachers, predict_calls):
    result, calls = _run(_engine(teachers['yolov3'], early_exit=ALWAYS))
    # Three iterations per stage; stage 1 starts at its configured index.
    assert calls == [(0, 0), (1, 0), (2, 0), (8, 1), (9, 1), (10, 1)]
    assert result.iterations == 6
    assert len(predict_calls) == 2  # one check per stage
    assert result.images.shape == (2, 64, 64, 3)
    assert result.valid.all()
    for (boxes, _), out in zip(two_layouts(), result.boxes):
        torch.testing.assert_close(out, boxes)  # back at the final size


def test_only_the_listed_stages_exit_early(teachers):
    result, calls = _run(
        _engine(teachers['yolov3'], early_exit=dict(ALWAYS, stages=[1])))
    assert [it for it, _ in calls] == list(range(8)) + [8, 9, 10]
    assert result.iterations == 11


def test_an_impossible_condition_runs_every_iteration_unchanged(
        teachers, predict_calls):
    """The checks run (predict) but leave no trace: the images are those of
    the disabled option, bit for bit (no random draw, no BN recording)."""
    teacher = teachers['yolov3']
    checked, calls = _run(_engine(teacher, early_exit=NEVER), seed=3)
    assert len(predict_calls) == 3 + 2  # after 3, 5, 7 and 3, 5 iterations
    assert checked.iterations == 14 and len(calls) == 14
    plain, _ = _run(_engine(teacher), seed=3)
    _same(checked, plain)


def test_without_a_bn_prior_only_the_targets_count(teachers):
    """bn weight 0: no plateau to wait for, even with a window the stage
    never fills and no tolerance."""
    result, _ = _run(
        _engine(
            teachers['yolov3'],
            bn_prior=dict(weight=0.0),
            early_exit=dict(ALWAYS, bn_window=1000, bn_tol=0.0)))
    assert result.iterations == 6
    assert 'loss_bn' not in result.loss_history


def test_a_bn_prior_still_falling_keeps_the_stage(teachers, predict_calls):
    """bn_tol 0 with a window longer than the stage: never a plateau, and
    the teacher's predict() is not even run."""
    result, _ = _run(
        _engine(
            teachers['yolov3'],
            early_exit=dict(ALWAYS, bn_window=1000, bn_tol=0.0)))
    assert result.iterations == 14
    assert predict_calls == []


def test_seeded_runs_reproduce_with_the_early_exit():
    """Faster R-CNN (its RoI sampler draws from torch's global generator)
    with FP sampling: two runs with one seed are identical, and the global
    generator is restored."""
    teacher = build_teacher('faster_rcnn')
    engine = _engine(
        teacher,
        stages=[
            dict(size=32, iterations=6, lr=0.1, jitter=2),
            dict(size=64, iterations=6, lr=0.05, jitter=4)
        ],
        fp_sampling=dict(start=1, end=7, interval=3, score_thr=0.0),
        early_exit=dict(
            enable=True, min_iterations=2, check_interval=1, bn_window=1,
            bn_tol=0.5, found_frac=0.0))
    state = torch.get_rng_state()
    first, first_calls = _run(engine, seed=7)
    assert torch.equal(torch.get_rng_state(), state)
    second, second_calls = _run(engine, seed=7)
    _same(first, second)
    assert first_calls == second_calls
    assert first.iterations == len(first_calls) <= 12


def _sample(bboxes, labels, scores):
    sample = DetDataSample()
    sample.pred_instances = InstanceData(
        bboxes=torch.tensor(bboxes, dtype=torch.float32).reshape(-1, 4),
        labels=torch.tensor(labels, dtype=torch.int64),
        scores=torch.tensor(scores, dtype=torch.float32))
    return sample


class _StubTeacher:
    """Answers ``predict()`` with fixed detections."""

    def __init__(self, results):
        self.results = results
        self.calls = []

    def predict(self, images, data_samples, rescale=True):
        self.calls.append((tuple(images.shape), len(data_samples), rescale))
        return self.results


def test_targets_found_matches_label_iou_and_score():
    rule = EarlyExit(enable=True)
    boxes = [
        torch.tensor([[0., 0., 10., 10.], [20., 20., 40., 30.]]),
        torch.tensor([[5., 5., 15., 25.]])
    ]
    labels = [torch.tensor([0, 2]), torch.tensor([1])]
    x = torch.zeros(2, 3, 48, 48)
    samples = [DetDataSample() for _ in boxes]

    def found(results):
        teacher = _StubTeacher(results)
        fraction = rule.targets_found(teacher, x, samples, boxes, labels)
        assert teacher.calls == [((2, 3, 48, 48), 2, False)]
        return fraction

    same = [
        _sample(b.tolist(), lb.tolist(), [0.9] * len(b))
        for b, lb in zip(boxes, labels)
    ]
    assert found(same) == 1.0
    other_labels = [
        _sample(b.tolist(), (lb + 1).tolist(), [0.9] * len(b))
        for b, lb in zip(boxes, labels)
    ]
    assert found(other_labels) == 0.0
    low_scores = [
        _sample(b.tolist(), lb.tolist(), [0.29] * len(b))
        for b, lb in zip(boxes, labels)
    ]
    assert found(low_scores) == 0.0
    # Image 0: one box found, one shifted to IoU 1/3; image 1: no detection.
    partial = [
        _sample([[0., 0., 10., 10.], [30., 20., 50., 30.]], [0, 2],
                [0.3, 0.9]),
        _sample([], [], [])
    ]
    assert found(partial) == pytest.approx(1 / 3)
    # A batch without targets has nothing left to find.
    assert rule.found_fraction(same, [torch.zeros(0, 4)] * 2,
                               [torch.zeros(0, dtype=torch.int64)] * 2) == 1.0


def test_bn_plateau_and_check_schedule():
    rule = EarlyExit(bn_window=2, bn_tol=0.1)
    assert not rule.bn_plateaued([1.0, 1.0, 1.0])  # too short
    assert rule.bn_plateaued([1.0, 1.0, 0.95, 0.95])  # 5 % fall
    assert not rule.bn_plateaued([1.0, 1.0, 0.8, 0.8])  # 20 % fall
    assert rule.bn_plateaued([5.0, 0.8, 0.8, 0.9, 0.9])  # rising, last 4
    assert rule.bn_plateaued([torch.tensor(v) for v in (2., 2., 2., 2.)])
    assert not rule.bn_plateaued([1.0, float('nan'), 1.0, 1.0])
    rule = EarlyExit(enable=True, stages=[1], min_iterations=20,
                     check_interval=10)
    assert [s for s in range(60) if rule.is_due(s)] == [19, 29, 39, 49, 59]
    assert rule.applies_to(1) and not rule.applies_to(0)
    assert not EarlyExit(stages=[1]).applies_to(1)  # not enabled
    assert EarlyExit(enable=True).applies_to(5)  # None: every stage


@pytest.mark.parametrize('early_exit, match', [
    (dict(found_frac=1.01), r'found_frac must be a number in \[0, 1\]'),
    (dict(score_thr=-0.1), 'score_thr'),
    (dict(iou_thr=0.0), r'iou_thr must be a number in \(0, 1\]'),
    (dict(check_interval=0), 'check_interval must be an int >= 1'),
    (dict(min_iterations=2.5), 'min_iterations must be an int'),
    (dict(bn_window=0), 'bn_window'),
    (dict(bn_tol=-1), 'bn_tol must be a number >= 0'),
    (dict(enable='yes'), 'enable must be True or False'),
    (dict(stages=1), 'stages must be None'),
    (dict(stages=[2]), r'stages \[2\] do not exist; .* stages 0 to 1'),
    (dict(min_iters=5), r"early_exit: unknown keys \['min_iters'\]"),
])
def test_bad_configuration_names_the_key(teachers, early_exit, match):
    with pytest.raises(ValueError, match=match):
        _engine(teachers['yolov3'], early_exit=early_exit)


def test_built_from_configs_with_merged_defaults(teachers):
    """tools/synthesize.py and DeepInversionHook both pass the config dict
    to TASK_UTILS (with the teacher): the early exit arrives unfiltered."""
    from mmdiode.engine.hooks import DeepInversionHook
    cfg = dict(
        type='DeepInversion',
        stages=[dict(s) for s in STAGES],
        early_exit=dict(enable=True, stages=[1], found_frac=0.5))
    hook = DeepInversionHook(synthesizer=cfg)
    engine = TASK_UTILS.build(
        dict(hook.synthesizer_cfg, teacher=teachers['yolov3']))
    rule = engine.early_exit
    assert (rule.enable, rule.stages, rule.found_frac) == (True, (1, ), 0.5)
    assert rule.min_iterations == EARLY_EXIT_DEFAULTS['min_iterations']
    assert rule.bn_tol == EARLY_EXIT_DEFAULTS['bn_tol']
    moi = MultiObjectImpressions(
        teachers['faster_rcnn'], early_exit=dict(enable=True))
    assert moi.early_exit.enable and not moi.uses_bn_prior


def test_the_shipped_early_exit_config_builds(teachers):
    cfg = Config.fromfile(
        osp.join(ROOT, 'configs', 'diode',
                 'diode_yolov3-mv2_synth-kd-early-exit_digits.py'))
    base = Config.fromfile(
        osp.join(ROOT, 'configs', 'diode',
                 'diode_yolov3-mv2_synth-kd_digits.py'))
    synthesizer = cfg.to_dict()['synthesizer']
    assert synthesizer.pop('early_exit') == dict(enable=True, stages=[1])
    assert synthesizer == base.to_dict()['synthesizer']
    engine = TASK_UTILS.build(dict(cfg.synthesizer,
                                   teacher=teachers['yolov3']))
    assert engine.early_exit.applies_to(1)
    assert not engine.early_exit.applies_to(0)
    assert engine.stages[1]['size'] == (128, 128)
