# On-the-fly data-free distillation on digits-on-photos (DIODE, CPU-sized):
# the bundled YOLOv3-MobileNetV2 teacher is inverted while the student of
# yolov3_student.py trains on the synthesized images; no training image is
# read. The committed teacher checkpoint is used (see below):
#   python tools/train.py configs/digits/diode_yolov3_kd.py
#   python tools/train.py configs/digits/diode_yolov3_kd.py --resume
# The replay pool lives in `pool_dir` (relative to the working dir, like
# work_dirs); with --work-dir elsewhere, move it too:
#   --cfg-options train_dataloader.dataset.dataset.pool_dir=DIR/pool
#
# Targets: the synthesized images carry their synthesis targets (the sampled
# layout plus false positives the teacher added), but whether the teacher
# really detects them varies from image to image. The student learns from
# the teacher's own detections instead (pseudo-labels replace the targets),
# which always agree with the distilled head maps, also on the noise
# placeholders served while the pool is empty.
# Training data (layouts, Mosaic + HSV) shared with every row of the data-free
# benchmark: _base_/datafree_kd_data.py.
_base_ = ['./yolov3_student.py', './_base_/datafree_kd_data.py']

img_size = 128

model = dict(
    _delete_=True,
    type='KDDetector',
    # The student model exactly as yolov3_student.py defines it.
    student=_base_.model,
    teacher=dict(
        config='{{fileDirname}}/yolov3_teacher.py',
        # The committed fp16 copy of `make yolov3-teacher`'s checkpoint
        # (same test mAP), relative to the working dir; a retrained one:
        # model.teacher.checkpoint=work_dirs/yolov3_teacher/final.pth
        checkpoint='checkpoints/digits_yolov3_teacher_fp16.pth'),
    classes=_base_.metainfo.classes,
    distill_losses=dict(
        # DIODE's loss: MSE between raw head maps, weight 1 x 50 since
        # mmdet's YOLOv3 losses are sums over the batch (see
        # _base_/kd_yolov3.py).
        out=dict(type='OutputMSELoss', module='bbox_head', loss_weight=50.0)),
    pseudo_label=dict(score_thr=0.3, replace_gt=True),
    gt_loss_weight=1.0)

train_dataloader = dict(
    _delete_=True,
    batch_size=16,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type='MultiImageMixDataset',
        # 3x3 tiled layouts synthesized on the fly (see the base file).
        dataset=dict(
            _base_.box_sampler_dataset,
            pool_dir='work_dirs/diode_yolov3_kd/pool',
            metainfo=_base_.metainfo),
        pipeline=_base_.kd_pipeline))

# Cost on 2 CPU cores (estimated; measured rows in docs/en/benchmarks.md):
# one synthesized batch of 16 with the recipe below takes about 1.5 min (200
# iterations at 64 px, 100 at 128 px), a training iteration about 0.5 s. The
# student's 24 epochs are 4500 iterations
# (~40 min); a batch every 100 iterations adds 45 batches (~70 min) to the
# 8 initial ones (~13 min): ~2 h for ~850 synthesized images, which the
# student sees about 85 times each. interval=50 doubles the images for ~70
# more minutes; fewer synthesis iterations make cheaper but worse images.
# A data set made offline (tools/synthesize.py with synth_diode_yolov3_kd.py)
# can seed the pool instead of the initial batches: warm_start='data/...'.
synthesizer = dict(
    # Exactly the synthesizer of synth_diode_yolov3_kd.py: DIODE's recipe
    # (synth_diode_yolov3.py) with a 10x stronger BN prior, which gives
    # images closer to the teacher's BN statistics and a better student
    # (see synth_diode_yolov3_kd.py for the measurements).
    type='DeepInversion',
    bn_prior=dict(weight=1.0, p=2, first_bn_multiplier=2.0,
                  layer_pattern='.*'),
    image_prior=dict(tv_l1=75.0, tv_l2=0.0, l2=0.0),
    task_loss=dict(weight=1.0),
    augment=dict(jitter_mode='roll', flip_prob=0.0, brightness=0.2,
                 contrast=0.1, erase_prob=0.5, erase_scale=(0.02, 0.2)),
    stages=[
        dict(size=64, iterations=200, lr=0.2, min_lr=0.01, jitter=4),
        dict(size=img_size, iterations=100, lr=0.05, min_lr=0.005, jitter=8),
    ],
    optimizer=dict(betas=(0.0, 0.0), eps=1e-8),
    fp_sampling=dict(enable=True, start=60, end=210, interval=50,
                     score_thr=0.2, iou_thr=0.35, min_area=0.01,
                     max_area=0.85))

custom_hooks = [
    dict(
        type='DeepInversionHook',
        synthesizer=synthesizer,
        pool_size=2048,
        interval=100,
        batches_per_round=1,
        batch_size=16,
        initial_batches=8,
        warm_start=None,
        seed=0),
    # Also logs the frozen teacher's val metrics (once) as teacher/coco/...
    dict(type='TeacherEvalHook'),
]

# Validation and test use the real val/test splits of the base config; a
# user without any real data drops them (and TeacherEvalHook) with
#   --cfg-options val_cfg=None val_dataloader=None val_evaluator=None
# (and no test_* settings).
