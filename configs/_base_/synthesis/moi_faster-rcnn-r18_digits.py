# Multi-Object Impressions from the bundled Faster R-CNN R18-FPN teacher,
# scaled to 128 px digits on 2 CPU cores (the stages of the digits DIODE
# recipe, no BN prior). The one copy of the synthesizer of the offline sets
# (configs/moi/moi_faster-rcnn-r18_synth_digits.py) and of the on-the-fly
# DeepInversionHook
# (configs/moi/moi_faster-rcnn-r18_faster-rcnn-r18-x0.5_8e_digits.py).
synthesizer = dict(
    type='MultiObjectImpressions',
    classifier_weight='roi_head.bbox_head.fc_cls.weight',
    # Temperature 1.0 (not the class default 0.1): at 0.1 the most similar
    # class is the object's own, e^10 times likelier than an unrelated one,
    # and nearly every image had one class in all its boxes; at 1.0 the first
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
