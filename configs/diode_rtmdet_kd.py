# Data-free distillation on COCO of mmdet 3's real-time family, on the fly:
# mmdet's model-zoo RTMDet-l (51.3 AP) is inverted with DeepInversion while
# an RTMDet-tiny student (ImageNet-initialised CSPNeXt-tiny backbone, as
# mmdet's config has it) trains on the synthesized images; no COCO training
# image is read. For CUDA:
#   python tools/train.py configs/diode_rtmdet_kd.py          # 1 GPU
#   bash tools/dist_train.sh configs/diode_rtmdet_kd.py 8     # 8 GPUs
# Each rank synthesizes its own share of the layouts into the shared pool.
#
# Synthesis is the bottleneck (DIODE made ~89 images per GPU-hour with this
# recipe): make most of the pool offline first (tools/synthesize.py with
# configs/synth/diode_rtmdet_l_coco.py) and set the hook's warm_start to its
# output; the hook then adds fresh images during training.

# The student, teacher and output KD of configs/kd/rtmdet_l_to_tiny_coco.py,
# its optimizer and schedule (mmdet's RTMDet-tiny recipe) and COCO val2017;
# data, targets and hooks replaced.
_base_ = './kd/rtmdet_l_to_tiny_coco.py'

# The teacher's classes (mmdet's CocoDataset order); the data-free train set
# has no annotation file to read them from.
coco_classes = (
    'person', 'bicycle', 'car', 'motorcycle', 'airplane', 'bus', 'train',
    'truck', 'boat', 'traffic light', 'fire hydrant', 'stop sign',
    'parking meter', 'bench', 'bird', 'cat', 'dog', 'horse', 'sheep', 'cow',
    'elephant', 'bear', 'zebra', 'giraffe', 'backpack', 'umbrella',
    'handbag', 'tie', 'suitcase', 'frisbee', 'skis', 'snowboard',
    'sports ball', 'kite', 'baseball bat', 'baseball glove', 'skateboard',
    'surfboard', 'tennis racket', 'bottle', 'wine glass', 'cup', 'fork',
    'knife', 'spoon', 'bowl', 'banana', 'apple', 'sandwich', 'orange',
    'broccoli', 'carrot', 'hot dog', 'pizza', 'donut', 'cake', 'chair',
    'couch', 'potted plant', 'bed', 'dining table', 'toilet', 'tv', 'laptop',
    'mouse', 'remote', 'keyboard', 'cell phone', 'microwave', 'oven',
    'toaster', 'sink', 'refrigerator', 'book', 'clock', 'vase', 'scissors',
    'teddy bear', 'hair drier', 'toothbrush')
img_size = 320

model = dict(
    # The synthesized images carry only their layouts, which the teacher
    # need not detect as laid out: its confident detections are the
    # student's targets, next to the output distillation of the base config.
    pseudo_label=dict(score_thr=0.3, replace_gt=True),
    gt_loss_weight=1.0,
    classes=coco_classes)

train_dataloader = dict(
    _delete_=True,
    batch_size=32,  # mmdet's RTMDet-tiny recipe: 8 GPUs x 32 images
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type='BoxSamplerDataset',
        pool_dir='work_dirs/diode_rtmdet_kd/pool',
        metainfo=dict(classes=coco_classes),
        # The layouts of configs/synth/diode_rtmdet_l_coco.py: several
        # objects per image, as in COCO.
        layout_sampler=dict(
            type='BoxLayoutSampler',
            strategy='multi-box',
            min_boxes=2,
            max_boxes=6,
            max_iou=0.35,
            min_size=0.1,
            max_size=0.6),
        num_samples=120000,  # DIODE's data set size per epoch
        img_size=img_size,
        seed=0,
        pipeline=[
            # The student trains near the synthesized resolution.
            dict(
                type='RandomResize',
                scale=[(img_size, img_size), (480, 480)],
                keep_ratio=True),
            dict(type='RandomFlip', prob=0.5),
            dict(type='PackDetInputs')
        ]))

# Real COCO val2017 (optional): tested at 320 px, the scale the student was
# trained at. Without it, set val_cfg, val_dataloader and val_evaluator to
# None.
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(img_size, img_size), keep_ratio=True),
    dict(
        type='Pad',
        size=(img_size, img_size),
        pad_val=dict(img=(114, 114, 114))),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor'))
]
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

synthesizer = dict(
    # Exactly the synthesizer of configs/synth/diode_rtmdet_l_coco.py
    # (DIODE's recipe).
    type='DeepInversion',
    # RTMDet-l has BatchNorm (SyncBN) layers with running statistics in its
    # backbone, neck and head; DIODE matches the backbone's.
    bn_prior=dict(weight=0.1, p=2, first_bn_multiplier=2.0,
                  layer_pattern=r'^backbone\.'),
    image_prior=dict(tv_l1=75.0, tv_l2=0.0, l2=0.0),
    task_loss=dict(weight=1.0, term_weights=None),
    augment=dict(jitter_mode='roll', flip_prob=0.5, brightness=0.2,
                 contrast=0.1, erase_prob=0.5, erase_scale=(0.02, 0.2)),
    stages=[
        dict(size=160, iterations=2500, lr=0.2, min_lr=0.0, jitter=20),
        dict(size=img_size, iterations=1500, lr=0.002, min_lr=0.0005,
             jitter=40),
    ],
    optimizer=dict(betas=(0.0, 0.0), eps=1e-8),
    fp_sampling=dict(enable=True, start=800, end=2800, interval=100,
                     score_thr=0.2, iou_thr=0.35, min_area=0.01,
                     max_area=0.85),
    amp=True,
    channels_last=True)

custom_hooks = [
    dict(
        type='DeepInversionHook',
        synthesizer=synthesizer,
        pool_size=20000,
        interval=2000,
        batches_per_round=1,
        batch_size=32,  # beside the training batch in GPU memory
        initial_batches=1,
        warm_start=None,  # e.g. 'data/diode_rtmdet_coco' (tools/synthesize)
        seed=0),
    # mmdet's RTMDet weight EMA; its pipeline switch (to COCO images
    # without mosaic) has no place here.
    dict(
        type='EMAHook',
        ema_type='ExpMomentumEMA',
        momentum=0.0002,
        update_buffers=True,
        priority=49),
    # Also logs the frozen teacher's val metrics (once) as teacher/coco/...
    dict(type='TeacherEvalHook'),
]
env_cfg = dict(dist_cfg=dict(backend='nccl'))
