"""The KD configs and KD training through mmengine's Runner: every digits KD
config builds and trains a step, the COCO KD configs load, the teacher stays
bit-identical through training, a resumed run continues exactly, and
torchrun + gloo trains with the teacher outside DDP."""
import glob
import os.path as osp

import pytest
import torch
from kd_helpers import CLASSES, batch, make_tiny_coco, runner_config, tiny_pair
from mmdet.registry import MODELS
from mmengine.config import Config
from mmengine.runner import Runner

from mmdiode.models.utils import load_teacher_model_config
from mmdiode.testing import run_dist_tool

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
# KD with ground truth: configs/kd/ (baselines) and configs/hgd/.
KD_CONFIGS = [
    p for folder in ('kd', 'hgd')
    for p in glob.glob(osp.join(ROOT, 'configs', folder, '*.py'))
]
DIGITS_KD = sorted(p for p in KD_CONFIGS if p.endswith('_digits.py'))
COCO_KD = sorted(p for p in KD_CONFIGS if p.endswith('_coco.py'))


def _total(losses):
    return sum(
        sum(v) if isinstance(v, list) else v for k, v in losses.items()
        if 'loss' in k)


def test_all_kd_configs_are_found():
    names = {osp.basename(p) for p in DIGITS_KD + COCO_KD}
    yolov3 = 'yolov3-mv2_yolov3-mv2-x0.5_24e_digits.py'
    frcnn = 'faster-rcnn-r18_faster-rcnn-r18-x0.5_8e_digits.py'
    assert {
        f'hgd_{yolov3}', f'hgd_{frcnn}', f'output-mse_{yolov3}',
        f'output-kl_{yolov3}', f'fitnet_{yolov3}', f'fgfi_{yolov3}',
        f'pkd_{yolov3}', f'pkd_{frcnn}', f'mimic_{frcnn}',
        f'output-kl_{frcnn}', 'hgd_yolov3-d53_yolov3-mv2_300e_coco.py',
        'hgd_faster-rcnn-r101_faster-rcnn-r50_1x_coco.py',
        'hgd_faster-rcnn-r101_faster-rcnn-r18_1x_coco.py',
        'output-kl_rtmdet-l_rtmdet-tiny_300e_coco.py'
    } <= names
    assert len(names) == len(KD_CONFIGS)  # every one is digits or COCO


@pytest.mark.parametrize('path',
                         DIGITS_KD,
                         ids=[osp.basename(p) for p in DIGITS_KD])
def test_digits_kd_config_builds_and_trains_a_step(path):
    cfg = Config.fromfile(path)
    student_cfg = Config.fromfile(
        osp.join(
            ROOT, 'configs', 'detectors', 'yolov3-mv2-x0.5_24e_digits.py'
            if 'yolov3' in path else 'faster-rcnn-r18-x0.5_8e_digits.py'))
    # The student is exactly the student config's, trained the same way.
    assert cfg.model.student.to_dict() == student_cfg.model.to_dict()
    for key in ('train_dataloader', 'optim_wrapper', 'param_scheduler',
                'train_cfg'):
        assert cfg[key] == student_cfg[key], key
    assert cfg.model.det_loss_weight == 1.0
    assert dict(type='TeacherEvalHook') in cfg.custom_hooks
    # The committed teachers.
    assert cfg.model.teacher.checkpoint in (
        'checkpoints/digits_yolov3_teacher_fp16.pth',
        'checkpoints/digits_faster-rcnn_teacher_fp16.pth')

    cfg.model.teacher.checkpoint = None
    model = MODELS.build(cfg.model).train()
    inputs, samples = batch(num_boxes=(1, 2), size=128)
    losses = model.loss(inputs, samples)
    distilled = {k.split('.')[0] for k in losses if '.' in k}
    assert distilled == set(cfg.model.distill_losses)
    total = _total(losses)
    assert torch.isfinite(total)
    total.backward()
    assert all(p.grad is None for p in model.teacher.parameters())
    for name, loss in model.distill_losses.items():
        for param_name, param in loss.named_parameters():
            assert param.grad is not None, f'{name}.{param_name}'


@pytest.mark.parametrize('path',
                         COCO_KD,
                         ids=[osp.basename(p) for p in COCO_KD])
def test_coco_kd_config_loads(path):
    # Neither model is built: the teacher's weights come by URL and both
    # configs initialise from ImageNet checkpoints.
    cfg = Config.fromfile(path)
    model = cfg.model
    assert model.type == 'KDDetector'
    assert model.teacher.checkpoint.startswith(
        ('https://download.openmmlab.com/mmdetection/v2.0/',
         'https://download.openmmlab.com/mmdetection/v3.0/'))
    assert model.teacher.config.startswith('mmdet::')
    teacher_cfg, _ = load_teacher_model_config(model.teacher.config)
    head = 'roi_head' if 'roi_head' in teacher_cfg else 'bbox_head'
    assert teacher_cfg['type'] == model.student.type
    if head == 'roi_head':
        assert teacher_cfg[head]['bbox_head']['num_classes'] == \
            model.student.roi_head.bbox_head.num_classes == 80
    else:
        assert teacher_cfg[head]['num_classes'] == \
            model.student.bbox_head.num_classes == 80
    assert cfg.env_cfg.dist_cfg.backend == 'nccl'
    for loss in model.distill_losses.values():
        assert loss.type in MODELS.module_dict


# --- Runner: frozen teacher and resume -------------------------------------


def _kd_model(teacher_ckpt):
    student, teacher = tiny_pair('yolov3')
    return dict(
        type='KDDetector',
        student=student,
        teacher=dict(config=teacher, checkpoint=teacher_ckpt),
        distill_losses=dict(
            out=dict(type='YOLOv3OutputKDLoss'),
            # Owns trainable correspondence layers and a running buffer
            # (the adaptive stage weights) that a resume must restore.
            hgd=dict(type='HGDLoss',
                     student_channels=[8, 24, 80, 24, 24, 24],
                     teacher_channels=[16, 48, 160, 48, 48, 48])),
        classes=CLASSES)


def _save_calibrated_teacher(teacher_cfg, path):
    """Saves a teacher whose BN statistics are measured on random images.

    With PyTorch's initial weights and unit running variances, an untrained
    teacher's eval-mode features shrink by orders of magnitude per stage,
    which no trained teacher does (and which HGD's variance normalisation
    turns into huge losses).

    Returns:
        dict: The saved state dict.
    """
    teacher = MODELS.build(teacher_cfg)
    for module in teacher.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()
            module.momentum = None  # cumulative average over the batches
    teacher.train()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for _ in range(3):
            teacher.extract_feat(torch.randn(4, 3, 64, 64, generator=g))
    state = {k: v.clone() for k, v in teacher.state_dict().items()}
    torch.save(
        dict(meta=dict(dataset_meta=dict(classes=list(CLASSES))),
             state_dict=state), path)
    return state


def _train_config(root, name, max_iters):
    """A deterministic, validation-free Runner config; checkpoints every 2
    iterations."""
    cfg = runner_config(_kd_model(str(root / 'teacher.pth')),
                        dict(ann_file=str(root / 'ann.json'),
                             img_dir=str(root / 'images')),
                        str(root / 'work'),
                        max_iters=max_iters)
    cfg.update(val_dataloader=None,
               val_cfg=None,
               val_evaluator=None,
               experiment_name=name,
               randomness=dict(seed=0, deterministic=True))
    cfg['default_hooks']['checkpoint']['interval'] = 2
    return Config(cfg)


@pytest.fixture
def deterministic_algorithms():
    """Restores torch's global deterministic flag that the Runner sets."""
    before = torch.are_deterministic_algorithms_enabled()
    yield
    torch.use_deterministic_algorithms(before)


def test_teacher_frozen_and_resume_continues_exactly(tmp_path,
                                                     deterministic_algorithms):
    make_tiny_coco(str(tmp_path))
    _, teacher = tiny_pair('yolov3')
    saved_teacher = _save_calibrated_teacher(teacher,
                                             str(tmp_path / 'teacher.pth'))

    # Uninterrupted: 4 iterations.
    runner = Runner.from_cfg(_train_config(tmp_path, 'kd_full', 4))
    runner.train()
    full_losses = runner.message_hub.get_scalar('train/loss').data[0]
    assert len(full_losses) == 4
    for k, v in runner.model.teacher.state_dict().items():
        assert torch.equal(v, saved_teacher[k]), k  # weights and BN stats
    hgd_ema = runner.model.distill_losses.hgd.stage_loss_ema.clone()
    assert torch.isfinite(hgd_ema).all()

    # Interrupted after 2 iterations, resumed to 4.
    resumed_cfg = _train_config(tmp_path, 'kd_resumed', 4)
    # As tools/train.py --resume CKPT sets them.
    resumed_cfg.update(work_dir=str(tmp_path / 'resumed'),
                       resume=True,
                       load_from=str(tmp_path / 'work' / 'iter_2.pth'))
    runner = Runner.from_cfg(resumed_cfg)
    runner.train()
    resumed_losses = runner.message_hub.get_scalar('train/loss').data[0]
    assert len(resumed_losses) == 4  # 2 restored from the checkpoint + 2
    torch.testing.assert_close(torch.as_tensor(resumed_losses[2:]),
                               torch.as_tensor(full_losses[2:]),
                               rtol=1e-6,
                               atol=0)
    torch.testing.assert_close(runner.model.distill_losses.hgd.stage_loss_ema,
                               hgd_ema)


# --- torchrun + gloo ---------------------------------------------------------


def test_dist_train_on_cpu_keeps_the_teacher_out_of_ddp(tmp_path):
    make_tiny_coco(str(tmp_path))
    _, teacher = tiny_pair('yolov3')
    _save_calibrated_teacher(teacher, str(tmp_path / 'teacher.pth'))
    cfg = _train_config(tmp_path, 'kd_ddp', 2)
    cfg.custom_imports = dict(imports=['mmdiode'], allow_failed_imports=False)
    # MobileNetV2 computes its last conv even when no output reads it (mmdet's
    # YOLOv3-MobileNetV2 configs, and so the digits ones, set this too).
    cfg.find_unused_parameters = True
    config_file = str(tmp_path / 'kd_tiny.py')
    cfg.dump(config_file)
    work = str(tmp_path / 'ddp')
    r = run_dist_tool(osp.join(ROOT, 'tools', 'dist_train.sh'),
                      [config_file, 2, '--work-dir', work],
                      cwd=ROOT)
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    ckpt = torch.load(osp.join(work, 'iter_2.pth'),
                      map_location='cpu',
                      weights_only=False)
    keys = set(ckpt['state_dict'])
    # The saved model is the unwrapped KDDetector: student and distillation
    # layers, no 'module.' prefix and no teacher.
    assert keys and all(
        k.startswith(('student.', 'distill_losses.')) for k in keys)
    assert any(
        k.startswith('distill_losses.hgd.correspondences') for k in keys)
