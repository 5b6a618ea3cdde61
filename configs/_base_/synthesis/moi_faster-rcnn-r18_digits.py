# Multi-Object Impressions from the bundled Faster R-CNN R18-FPN teacher,
# scaled to 128 px digits on 2 CPU cores: the image prior, task loss,
# augmentations and stages of the digits DIODE recipe
# (diode_yolov3-mv2_digits.py), no BN prior. The one copy of the synthesizer
# of the offline sets (configs/moi/moi_faster-rcnn-r18_synth_digits.py) and,
# on a third of its schedule (`synthesizer_third` below), of the on-the-fly
# DeepInversionHook
# (configs/moi/moi_faster-rcnn-r18_faster-rcnn-r18-x0.5_8e_digits.py).
_base_ = './diode_yolov3-mv2_digits.py'

synthesizer = dict(
    _delete_=True,
    type='MultiObjectImpressions',
    classifier_weight='roi_head.bbox_head.fc_cls.weight',
    # Temperature 1.0 (not the class default 0.1): at 0.1 the most similar
    # class is the object's own, e^10 times likelier than an unrelated one,
    # and nearly every image had one class in all its boxes; at 1.0 the first
    # object's own class is still the likeliest, and images mix classes.
    temperature=1.0,
    image_prior=_base_.synthesizer.image_prior,
    task_loss=_base_.synthesizer.task_loss,
    augment=_base_.synthesizer.augment,
    stages=_base_.synthesizer.stages,
    # The recipe's sampling schedule, at score 0.5 instead of 0.2.
    fp_sampling=dict(_base_.synthesizer.fp_sampling, score_thr=0.5),
    amp=_base_.synthesizer.amp,
    channels_last=_base_.synthesizer.channels_last)

# The same recipe on a third of its schedule: 66 iterations at 64 px and 34
# at 128 px (instead of 200 and 100), false positives sampled at the same
# fractions of it (20 % to 70 %, every 17th). A Faster R-CNN teacher's
# iteration costs about as much at 64 px as at 128 px, so the time per image
# follows the iteration count, and without a BN prior the teacher's own loss
# is all the schedule has to satisfy: three times the images per hour at the
# same teacher fidelity, and a better student per synthesis hour
# (docs/en/benchmarks.md, "Cheaper synthesis"). The synthesizer of the
# on-the-fly config and of moi_faster-rcnn-r18_synth-third_digits.py.
synthesizer_third = dict(
    synthesizer,
    stages=[
        dict(stage, iterations=iterations)
        for stage, iterations in zip(synthesizer['stages'], (66, 34))
    ],
    fp_sampling=dict(
        synthesizer['fp_sampling'], start=20, end=70, interval=17))
# `_delete_` replaces the inherited DIODE synthesizer in `synthesizer`; the
# hook builds this copy as it stands, where the key would be an argument.
synthesizer_third.pop('_delete_')
