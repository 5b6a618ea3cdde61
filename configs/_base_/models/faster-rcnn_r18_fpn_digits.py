# Faster R-CNN with a ResNet-18 FPN and a slim RoI head on the bundled
# digits-on-photos benchmark. Trained from scratch (BN layers train, no frozen
# stages). The teacher and student configs (configs/detectors/) inherit
# from this file; like yolov3_mobilenetv2_digits.py it holds the digits
# loaders and schedule too, with the data's building blocks from
# _base_/datasets/digits.py.
_base_ = [
    'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py',
    '../datasets/digits.py'
]

custom_imports = dict(imports=['mmdiode'], allow_failed_imports=False)

data_root = _base_.digits_dataset.data_root

model = dict(
    backbone=dict(
        depth=18,
        frozen_stages=-1,
        norm_eval=False,
        init_cfg=None),
    neck=dict(in_channels=[64, 128, 256, 512], out_channels=128),
    rpn_head=dict(
        in_channels=128,
        feat_channels=128,
        # Objects are 12-56 px: base anchors of 16 px at stride 4 up to
        # 256 px at stride 64 (mmdet's scale 8 starts at 32 px).
        anchor_generator=dict(scales=[4])),
    roi_head=dict(
        # A fixed 2x2 sampling grid per bin: mmcv's adaptive grid (0) makes
        # RoIAlign's CPU backward the slowest op of the step.
        bbox_roi_extractor=dict(
            out_channels=128, roi_layer=dict(sampling_ratio=2)),
        bbox_head=dict(in_channels=128, fc_out_channels=256, num_classes=10)),
    # Slim: 64 sampled RoIs per image (mmdet: 512; at most 6 digits per
    # image), fewer proposals.
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=1000, max_per_img=300),
        rcnn=dict(sampler=dict(num=64))),
    test_cfg=dict(rpn=dict(nms_pre=600, max_per_img=300)))

train_pipeline = _base_.digits_train_pipeline
test_pipeline = _base_.digits_test_pipeline
train_dataloader = dict(
    batch_size=8,
    num_workers=1,
    batch_sampler=None,
    dataset=dict(
        _base_.digits_dataset,
        ann_file='annotations/train.json',
        filter_cfg=dict(filter_empty_gt=True, min_size=1),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=16,
    num_workers=1,
    dataset=dict(
        _base_.digits_dataset,
        ann_file='annotations/val.json',
        pipeline=test_pipeline))
# The test split, loaded exactly as the val split.
test_dataloader = dict(
    val_dataloader,
    dataset=dict(
        val_dataloader['dataset'],
        ann_file='annotations/test.json',
        test_mode=True))
val_evaluator = dict(ann_file=data_root + 'annotations/val.json')
test_evaluator = dict(ann_file=data_root + 'annotations/test.json')

max_epochs = 8
train_cfg = dict(max_epochs=max_epochs, val_interval=2)
optim_wrapper = dict(
    optimizer=dict(_delete_=True, type='AdamW', lr=1.5e-3, weight_decay=0.05),
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0),
    clip_grad=dict(max_norm=35, norm_type=2))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0,
         end=300),
    dict(type='CosineAnnealingLR', T_max=max_epochs, eta_min=1e-5,
         by_epoch=True, begin=0, end=max_epochs, convert_to_iter_based=True)
]
auto_scale_lr = dict(base_batch_size=8)
default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(interval=2, max_keep_ckpts=2, save_best='auto'))
env_cfg = dict(dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0)
