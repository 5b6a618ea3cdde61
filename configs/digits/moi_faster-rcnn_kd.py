# On-the-fly zero-shot distillation of Faster R-CNN on digits-on-photos
# (Multi-Object Impressions, CPU-sized): the bundled Faster R-CNN R18-FPN
# teacher is inverted without any data statistic while the student of
# faster-rcnn_student.py trains on the impressions; no training image is
# read. Train the teacher first (make faster-rcnn-teacher), then
#   python tools/train.py configs/digits/moi_faster-rcnn_kd.py
# The replay pool lives in `pool_dir` (relative to the working dir); see
# diode_yolov3_kd.py for moving it, for the choice of pseudo-labels over
# the synthesis targets and for running without real validation data.
# Training data (layouts, Mosaic + HSV) shared with every row of the data-free
# benchmark: _base_/datafree_kd_data.py.
_base_ = ['./faster-rcnn_student.py', './_base_/datafree_kd_data.py']

img_size = 128

model = dict(
    _delete_=True,
    type='KDDetector',
    # The student model exactly as faster-rcnn_student.py defines it.
    student=_base_.model,
    teacher=dict(
        config='{{fileDirname}}/faster-rcnn_teacher.py',
        # Written by `make faster-rcnn-teacher`, relative to the working dir.
        checkpoint='work_dirs/faster-rcnn_teacher/final.pth'),
    classes=_base_.metainfo.classes,
    # Output distillation of both stages (as kd_faster-rcnn_roi.py), at the
    # losses' reference weights (mmdet's Faster R-CNN losses are normalised
    # per sample).
    distill_losses=dict(
        rpn=dict(type='DenseHeadKDLoss', module='rpn_head', loss_weight=1.0),
        roi=dict(type='RoIHeadKDLoss', temperature=1.0, loss_weight=1.0)),
    pseudo_label=dict(score_thr=0.3, replace_gt=True),
    gt_loss_weight=1.0)

train_dataloader = dict(
    _delete_=True,
    batch_size=8,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type='MultiImageMixDataset',
        # 3x3 tiled layouts synthesized on the fly (see the base file).
        dataset=dict(
            _base_.box_sampler_dataset,
            pool_dir='work_dirs/moi_faster-rcnn_kd/pool',
            metainfo=_base_.metainfo),
        pipeline=_base_.kd_pipeline))

# Cost on 2 CPU cores: a Faster R-CNN teacher's loss and backward cost
# several times YOLOv3's (two stages, RoI sampling); one batch of 8 with
# the recipe below took 183-270 s on one core beside another job (measured; a
# YOLOv3 batch of 16 takes ~70 s), far more than the ~375 training iterations
# of an
# epoch need. The benchmark's quick row (3 epochs, a batch every 100
# iterations, 136 images) took 75 min in all. The student's 8 epochs are 3000
# iterations; a batch every 100 iterations gives 30 batches plus 4 initial
# ones, ~270 images, which the student sees about 90 times each. Seeding the
# pool with an offline data set (tools/synthesize.py with
# synth_moi_faster-rcnn.py; warm_start='data/...') gives more variety at no
# training-time cost; a shorter schedule gives more images per hour but
# weaker impressions.
synthesizer = dict(
    # Exactly the synthesizer of synth_moi_faster-rcnn.py.
    type='MultiObjectImpressions',
    classifier_weight='roi_head.bbox_head.fc_cls.weight',
    temperature=1.0,
    image_prior=dict(tv_l1=75.0, tv_l2=0.0, l2=0.0),
    task_loss=dict(weight=1.0),
    augment=dict(jitter_mode='roll', flip_prob=0.0, brightness=0.2,
                 contrast=0.1, erase_prob=0.5, erase_scale=(0.02, 0.2)),
    stages=[
        dict(size=64, iterations=200, lr=0.2, min_lr=0.01, jitter=4),
        dict(size=img_size, iterations=100, lr=0.05, min_lr=0.005, jitter=8),
    ],
    fp_sampling=dict(enable=True, start=60, end=210, interval=50,
                     score_thr=0.5, iou_thr=0.35, min_area=0.01,
                     max_area=0.85))

custom_hooks = [
    dict(
        type='DeepInversionHook',
        synthesizer=synthesizer,
        pool_size=1024,
        interval=100,
        batches_per_round=1,
        batch_size=8,
        initial_batches=4,
        warm_start=None,
        seed=0),
    # Also logs the frozen teacher's val metrics (once) as teacher/coco/...
    dict(type='TeacherEvalHook'),
]
