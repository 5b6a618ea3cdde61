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
# Layouts: 3x3 cells (9 digits per image) with boxes of 26-100 % of a
# 42.7 px cell, 11-43 px. A data-free choice: the low end is the short side
# of the teacher's smallest anchors (16 px at stride 4 with aspect ratios
# 0.5-2: 11x22 to 22x11 px, faster-rcnn_r18_fpn_digits.py), as for the
# YOLOv3 pair (synth_diode_yolov3_kd.py). Measured (docs/en/benchmarks.md):
# the earlier multi-box layouts (2-5 digits of 15-56 px)
# gave a student with little small-object mAP (0.070 against 0.393 for the
# real-image student); an offline set of 60 images with these layouts gave
# mAP@0.5 0.244 against 0.189 for 136 images with the old ones.
layout_sampler = dict(
    type='BoxLayoutSampler',
    img_size=img_size,
    strategy='tiling',
    tiles_per_side=3,
    min_size=0.26,
    max_size=1.0,
    class_balanced=True)

synthesizer = dict(
    type='MultiObjectImpressions',
    classifier_weight='roi_head.bbox_head.fc_cls.weight',
    # Temperature 1.0 (not the class default 0.1): at 0.1 the most similar
    # class is the object's own, e^10 times likelier than an unrelated one,
    # and 59 of 60 images had one class in all their boxes; at 1.0 the first
    # object's own class is still the likeliest, and images mix classes.
    temperature=1.0,
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
