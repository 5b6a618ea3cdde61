# Multi-Object Impressions for mmdet's COCO Faster R-CNN R50-FPN teacher,
# with the stages and false-positive sampling schedule of DIODE's published
# recipe (diode_yolov3-d53_coco.py) and its TV-L1 prior (no BN prior). The
# one copy of the synthesizer of configs/moi/moi_faster-rcnn-r50_synth_coco.py
# (offline) and configs/moi/moi_faster-rcnn-r50_faster-rcnn-r18_1x_coco.py
# (on the fly).
_base_ = './diode_yolov3-d53_coco.py'

synthesizer = dict(
    _delete_=True,
    type='MultiObjectImpressions',
    temperature=0.1,
    image_prior=_base_.synthesizer.image_prior,
    augment=dict(flip_prob=0.5),
    stages=_base_.synthesizer.stages,
    # The recipe's sampling schedule, at score 0.5 instead of 0.2.
    fp_sampling=dict(_base_.synthesizer.fp_sampling, score_thr=0.5),
    amp=_base_.synthesizer.amp)
