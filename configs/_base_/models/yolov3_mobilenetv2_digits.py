# YOLOv3 with a MobileNetV2 backbone on the bundled digits-on-photos benchmark
# (tools/make_digits_dataset.py). Trained from scratch: nothing is
# downloaded. The teacher and student configs (configs/detectors/) inherit
# from this file. It holds the model, the digits loaders and the schedule:
# it inherits a whole mmdet config, which defines them, and mmengine does not
# let sibling bases define the same keys, so only the data's building blocks
# (pipelines, data sets) come from a separate base (configs/README.md).
_base_ = [
    'mmdet::yolo/yolov3_mobilenetv2_8xb24-320-300e_coco.py',
    '../datasets/digits.py'
]

custom_imports = dict(imports=['mmdiode'], allow_failed_imports=False)

data_root = _base_.digits_dataset.data_root

model = dict(
    backbone=dict(init_cfg=None),  # from scratch: no ImageNet weights here
    bbox_head=dict(
        num_classes=10,
        # k-means (IoU distance) over the train split's boxes; digits are
        # 12-56 px tall and narrower than tall.
        anchor_generator=dict(base_sizes=[[(28, 36), (32, 43), (39, 51)],
                                          [(19, 26), (22, 29), (24, 32)],
                                          [(11, 14), (14, 19), (17, 22)]])))

train_pipeline = _base_.digits_train_pipeline
test_pipeline = _base_.digits_test_pipeline
# The splits' settings with the data set type: the loaders below replace
# mmdet's (_delete_), which sets it.
digits_dataset = dict(_base_.digits_dataset, type='CocoDataset')
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
