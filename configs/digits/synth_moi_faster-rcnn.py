# Multi-Object Impressions from the bundled Faster R-CNN teacher (no data
# statistics: no BatchNorm prior). Class choices per image follow the
# similarity of the teacher's classifier weights; pseudo-targets are
# refreshed from the teacher's own confident detections.
#   python tools/synthesize.py configs/digits/synth_moi_faster-rcnn.py \
#       --out data/synth_frcnn --num-images 1000 --viz
custom_imports = dict(imports=['mmdiode'], allow_failed_imports=False)
default_scope = 'mmdet'

teacher = dict(
    config='configs/digits/faster-rcnn_teacher.py',
    checkpoint='work_dirs/faster-rcnn_teacher/final.pth')

img_size = 128
layout_sampler = dict(
    type='BoxLayoutSampler',
    img_size=img_size,
    strategy='multi-box',     # MOI: several objects per image
    min_boxes=2,
    max_boxes=5,
    max_iou=0.0,              # digits never overlap
    min_size=0.12,            # 15-56 px of 128 px
    max_size=0.44)

synthesizer = dict(
    type='MultiObjectImpressions',
    classifier_weight='roi_head.bbox_head.fc_cls.weight',
    temperature=0.1,
    image_prior=dict(tv_l1=75.0, tv_l2=0.0, l2=0.0),
    task_loss=dict(weight=1.0),
    augment=dict(jitter_mode='roll', flip_prob=0.0, brightness=0.2,
                 contrast=0.1, erase_prob=0.5, erase_scale=(0.02, 0.2)),
    stages=[
        dict(size=64, iterations=200, lr=0.2, min_lr=0.01, jitter=4),
        dict(size=128, iterations=100, lr=0.05, min_lr=0.005, jitter=8),
    ],
    fp_sampling=dict(enable=True, start=60, end=210, interval=50,
                     score_thr=0.5, iou_thr=0.35, min_area=0.01,
                     max_area=0.85))

synthesis = dict(num_images=1000, batch_size=8, seed=0, max_retries=2)
vis_backends = [dict(type='LocalVisBackend'),
                dict(type='TensorboardVisBackend')]
env_cfg = dict(dist_cfg=dict(backend='gloo'))
