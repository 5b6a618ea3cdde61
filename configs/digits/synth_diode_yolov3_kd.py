# The synthesizer of the data-free distillation diode_yolov3_kd.py, for
# offline sets (the data-free benchmark's kd_synth_offline and ablate_* rows):
# the DIODE recipe of synth_diode_yolov3.py with a 10x stronger BN prior.
#   python tools/synthesize.py configs/digits/synth_diode_yolov3_kd.py \
#       --out data/synth_yolov3 --num-images 500 --viz
# Why 1.0 instead of DIODE's 0.1 (measured, README "Data-free distillation"):
# the images match the teacher's BN statistics better (BN prior 3.1x below
# noise instead of 1.6x) and a student distilled on them does better on the
# real test split (160 images, quick profile: mAP@0.5 0.161 vs 0.142), while
# the teacher finds slightly fewer of the targets in them (mAP@0.5 0.80 vs
# 0.87): the student learns from the teacher's own detections, not from the
# targets.
_base_ = './synth_diode_yolov3.py'

synthesizer = dict(bn_prior=dict(weight=1.0))
