# DIODE's recipe (as _base_/synthesis/diode_yolov3-d53_coco.py) for mmdet's
# COCO RTMDet-l teacher. The one copy of the synthesizer of
# configs/diode/diode_rtmdet-l_synth_coco.py (offline) and
# configs/diode/diode_rtmdet-l_rtmdet-tiny_300e_coco.py (on the fly).
synthesizer = dict(
    type='DeepInversion',
    # RTMDet-l's backbone, neck and head all have BatchNorm layers with
    # running statistics; DIODE matches the backbone's.
    bn_prior=dict(weight=0.1, p=2, first_bn_multiplier=2.0,
                  layer_pattern=r'^backbone\.'),
    image_prior=dict(tv_l1=75.0, tv_l2=0.0, l2=0.0),
    task_loss=dict(weight=1.0, term_weights=None),
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
