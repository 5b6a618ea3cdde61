# DIODE synthesis from the bundled YOLOv3-MobileNetV2 teacher (CPU-sized).
#   python tools/synthesize.py configs/digits/synth_diode_yolov3.py \
#       --out data/synth_yolov3 --num-images 1000 --viz
# The DIODE recipe (its paper's YOLOv3 settings) scaled to 128 px digits on
# 2 CPU cores:
# two resolution stages (64 then 128 px instead of 160 then 320), a few
# hundred iterations instead of 4000, no flips (digits are not
# mirror-symmetric), tiled multi-object layouts.
custom_imports = dict(imports=['mmdiode'], allow_failed_imports=False)
default_scope = 'mmdet'

teacher = dict(
    config='configs/digits/yolov3_teacher.py',
    # The committed fp16 copy of `make yolov3-teacher`'s checkpoint (same
    # test mAP); --teacher-ckpt work_dirs/yolov3_teacher/final.pth for a
    # retrained one.
    checkpoint='checkpoints/digits_yolov3_teacher_fp16.pth')

img_size = 128
layout_sampler = dict(
    type='BoxLayoutSampler',
    img_size=img_size,
    strategy='tiling',        # 2x2 one-box layouts -> 4 digits per image
    tiles_per_side=2,
    min_size=0.35,            # of a 64 px cell: 22-54 px boxes (the teacher
    max_size=0.85,            # finds these best; synth_diode_yolov3_kd.py
                              # spans its anchors: 11-43 px, 3x3 cells)
    class_balanced=True)

synthesizer = dict(
    type='DeepInversion',
    bn_prior=dict(weight=0.1, p=2, first_bn_multiplier=2.0,
                  layer_pattern='.*'),
    image_prior=dict(tv_l1=75.0, tv_l2=0.0, l2=0.0),
    task_loss=dict(weight=1.0),
    augment=dict(jitter_mode='roll', flip_prob=0.0, brightness=0.2,
                 contrast=0.1, erase_prob=0.5, erase_scale=(0.02, 0.2)),
    stages=[
        dict(size=64, iterations=200, lr=0.2, min_lr=0.01, jitter=4),
        dict(size=128, iterations=100, lr=0.05, min_lr=0.005, jitter=8),
    ],
    optimizer=dict(betas=(0.0, 0.0), eps=1e-8),
    # DIODE samples false positives between 20% and 70% of the schedule.
    fp_sampling=dict(enable=True, start=60, end=210, interval=50,
                     score_thr=0.2, iou_thr=0.35, min_area=0.01,
                     max_area=0.85))

synthesis = dict(num_images=1000, batch_size=16, seed=0, max_retries=2)
vis_backends = [dict(type='LocalVisBackend'),
                dict(type='TensorboardVisBackend')]
env_cfg = dict(dist_cfg=dict(backend='gloo'))
