# YOLOv3 with a MobileNetV2 backbone on the bundled digits-on-photos benchmark
# (tools/make_digits_dataset.py). Trained from scratch: nothing is
# downloaded. The teacher and student configs (configs/detectors/) inherit
# from this file. It holds the model, the digits data and the schedule
# together: it inherits a whole mmdet config, and mmengine does not let
# sibling bases define the same keys, so the data cannot come from a
# separate base (configs/README.md).
_base_ = 'mmdet::yolo/yolov3_mobilenetv2_8xb24-320-300e_coco.py'

custom_imports = dict(imports=['mmdiode'], allow_failed_imports=False)

data_root = 'data/digits/'
metainfo = dict(classes=('0', '1', '2', '3', '4', '5', '6', '7', '8', '9'))
img_scale = (128, 128)

model = dict(
    backbone=dict(init_cfg=None),  # from scratch: no ImageNet weights here
    bbox_head=dict(
        num_classes=10,
        # k-means (IoU distance) over the train split's boxes; digits are
        # 12-56 px tall and narrower than tall.
        anchor_generator=dict(base_sizes=[[(28, 36), (32, 43), (39, 51)],
                                          [(19, 26), (22, 29), (24, 32)],
                                          [(11, 14), (14, 19), (17, 22)]])))

# No flips: digits are not mirror-symmetric (a flipped 2 is no 2). A mild
# translation/scale jitter generalises to the test split's unseen photos.
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        type='RandomAffine',
        max_rotate_degree=0.0,
        max_shear_degree=0.0,
        max_translate_ratio=0.1,
        scaling_ratio_range=(0.8, 1.2),
        border_val=(114, 114, 114)),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor'))
]
# The settings of every split's data set; each split adds its own.
digits_dataset = dict(
    type='CocoDataset',
    data_root=data_root,
    metainfo=metainfo,
    data_prefix=dict(img=''))
train_dataloader = dict(
    _delete_=True,
    batch_size=16,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        digits_dataset,
        ann_file='annotations/train.json',
        filter_cfg=dict(filter_empty_gt=True, min_size=1),
        pipeline=train_pipeline))
val_dataloader = dict(
    _delete_=True,
    batch_size=16,
    num_workers=1,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        digits_dataset,
        ann_file='annotations/val.json',
        test_mode=True,
        pipeline=test_pipeline))
# The test split, loaded exactly as the val split.
test_dataloader = dict(
    val_dataloader,
    dataset=dict(val_dataloader['dataset'], ann_file='annotations/test.json'))
val_evaluator = dict(ann_file=data_root + 'annotations/val.json')
test_evaluator = dict(ann_file=data_root + 'annotations/test.json')

# Schedule: Adam with cosine decay after a short linear warm-up (tuned on
# this benchmark; mmdet's SGD recipe assumes an ImageNet-pretrained backbone).
max_epochs = 24
train_cfg = dict(max_epochs=max_epochs, val_interval=4)
optim_wrapper = dict(
    optimizer=dict(_delete_=True, type='Adam', lr=2e-3, weight_decay=5e-4),
    clip_grad=dict(max_norm=35, norm_type=2))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0,
         end=300),
    dict(type='CosineAnnealingLR', T_max=max_epochs, eta_min=2e-5,
         by_epoch=True, begin=0, end=max_epochs, convert_to_iter_based=True)
]
auto_scale_lr = dict(base_batch_size=16)
default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(interval=4, max_keep_ckpts=2, save_best='auto'))
# gloo runs on CPUs; the CUDA configs use nccl.
env_cfg = dict(dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0)
