# DIODE's recipe (_base_/synthesis/diode_yolov3-d53_coco.py) for mmdet's
# COCO RTMDet-l teacher. The one copy of the synthesizer of
# configs/diode/diode_rtmdet-l_synth_coco.py (offline) and
# configs/diode/diode_rtmdet-l_rtmdet-tiny_300e_coco.py (on the fly).
# RTMDet-l's backbone, neck and head all have BatchNorm layers with running
# statistics; DIODE matches the backbone's (the recipe's layer_pattern).
_base_ = './diode_yolov3-d53_coco.py'

# The recipe's other priors and its task loss's term weights at their
# defaults (none), spelled out.
synthesizer = dict(
    image_prior=dict(tv_l2=0.0, l2=0.0), task_loss=dict(term_weights=None))
