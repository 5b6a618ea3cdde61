# Multi-Object Impressions for mmdet's COCO Faster R-CNN R50-FPN teacher,
# with the stages of DIODE's published recipe (no BN prior). The one copy of
# the synthesizer of configs/moi/moi_faster-rcnn-r50_synth_coco.py (offline)
# and configs/moi/moi_faster-rcnn-r50_faster-rcnn-r18_1x_coco.py (on the
# fly).
synthesizer = dict(
    type='MultiObjectImpressions',
    temperature=0.1,
    image_prior=dict(tv_l1=75.0),
    augment=dict(flip_prob=0.5),
    stages=[
        dict(size=160, iterations=2500, lr=0.2, min_lr=0.0, jitter=20),
        dict(size=320, iterations=1500, lr=0.002, min_lr=0.0005, jitter=40),
    ],
    fp_sampling=dict(enable=True, start=800, end=2800, interval=100,
                     score_thr=0.5, iou_thr=0.35, min_area=0.01,
                     max_area=0.85),
    amp=True)
