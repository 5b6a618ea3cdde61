# DIODE's recipe (its paper's YOLOv3 settings) scaled to 128 px digits on 2
# CPU cores: two resolution stages (64 then 128 px instead of 160 then 320),
# a few hundred iterations instead of 4000, no flips (digits are not
# mirror-symmetric). The synthesizer of
# configs/diode/diode_yolov3-mv2_synth_digits.py and, with a stronger BN
# prior, of the data-free recipe (diode-kd_yolov3-mv2_digits.py); the MOI
# recipe moi_faster-rcnn-r18_digits.py takes its priors, augmentations and
# stages.
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
                     max_area=0.85),
    # Mixed precision and channels-last memory are CUDA-only (ignored with a
    # warning on the CPU, where this recipe is meant to run); turn them on
    # for GPU runs with --cfg-options synthesizer.amp=True
    # synthesizer.channels_last=True.
    amp=False,
    channels_last=False)
