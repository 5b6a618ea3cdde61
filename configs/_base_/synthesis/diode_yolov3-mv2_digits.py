# DIODE's recipe (its paper's YOLOv3 settings, _base_/synthesis/
# diode_yolov3-d53_coco.py) scaled to 128 px digits on 2 CPU cores: two
# resolution stages (64 then 128 px instead of 160 then 320), a few hundred
# iterations instead of 4000, no flips (digits are not mirror-symmetric). The
# synthesizer of configs/diode/diode_yolov3-mv2_synth_digits.py and, with a
# stronger BN prior, of the data-free recipe (diode-kd_yolov3-mv2_digits.py);
# the MOI recipe moi_faster-rcnn-r18_digits.py takes its priors,
# augmentations and stages. Unchanged from DIODE's: the BN prior's weight
# (0.1, p=2, first BN x2), TV-L1 75, the task loss, the other augmentations,
# the optimizer and the false-positive sampling's thresholds.
_base_ = './diode_yolov3-d53_coco.py'

synthesizer = dict(
    # Every BN layer (DIODE's recipe: the backbone's only).
    bn_prior=dict(layer_pattern='.*'),
    # The other priors at their defaults (none), spelled out.
    image_prior=dict(tv_l2=0.0, l2=0.0),
    augment=dict(flip_prob=0.0),
    stages=[
        dict(size=64, iterations=200, lr=0.2, min_lr=0.01, jitter=4),
        dict(size=128, iterations=100, lr=0.05, min_lr=0.005, jitter=8),
    ],
    # DIODE samples false positives between 20% and 70% of the schedule.
    fp_sampling=dict(start=60, end=210, interval=50),
    # Mixed precision and channels-last memory are CUDA-only (ignored with a
    # warning on the CPU, where this recipe is meant to run); turn them on
    # for GPU runs with --cfg-options synthesizer.amp=True
    # synthesizer.channels_last=True.
    amp=False,
    channels_last=False)
