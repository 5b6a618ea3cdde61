# DIODE's published recipe for mmdet's COCO YOLOv3-D53 teacher: 2500
# iterations at 160 px (lr 0.2, jitter 20), then 1500 at 320 px (lr 0.002 ->
# 0.0005, jitter 40), BN prior 0.1 (p=2, first BN x2) on the backbone, TV-L1
# 75, flips, false-positive sampling between iterations 800 and 2800. The one
# copy of the synthesizer of configs/diode/diode_yolov3-d53_synth_coco.py
# (offline) and configs/diode/diode_yolov3-d53_yolov3-d53_273e_coco.py (on
# the fly); diode_rtmdet-l_coco.py applies it to RTMDet-l,
# diode_yolov3-mv2_digits.py scales it to the digits benchmark and
# moi_faster-rcnn-r50_coco.py takes its stages and sampling schedule.
synthesizer = dict(
    type='DeepInversion',
    bn_prior=dict(weight=0.1, p=2, first_bn_multiplier=2.0,
                  layer_pattern=r'^backbone\.'),  # DIODE: backbone BN only
    image_prior=dict(tv_l1=75.0),
    task_loss=dict(weight=1.0),
    augment=dict(jitter_mode='roll', flip_prob=0.5, brightness=0.2,
                 contrast=0.1, erase_prob=0.5, erase_scale=(0.02, 0.2)),
    stages=[
        dict(size=160, iterations=2500, lr=0.2, min_lr=0.0, jitter=20),
        dict(size=320, iterations=1500, lr=0.002, min_lr=0.0005, jitter=40),
    ],
    optimizer=dict(betas=(0.0, 0.0), eps=1e-8),
    fp_sampling=dict(enable=True, start=800, end=2800, interval=100,
                     score_thr=0.2, iou_thr=0.35, min_area=0.01,
                     max_area=0.85),
    amp=True,
    channels_last=True)
