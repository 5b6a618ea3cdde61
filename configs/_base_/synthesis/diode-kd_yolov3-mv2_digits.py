# The synthesizer of the digits YOLOv3 data-free distillation, the one copy
# of it: the offline sets (configs/diode/diode_yolov3-mv2_synth-kd_digits.py,
# the data-free benchmark's kd_synth_offline and ablate_* rows) and the
# on-the-fly DeepInversionHook
# (configs/diode/diode_yolov3-mv2_yolov3-mv2-x0.5_24e_digits.py) both
# inherit it.
#
# DIODE's recipe with a 10x stronger BN prior. Why 1.0 instead of DIODE's
# 0.1: the images match the teacher's BN statistics better and a student
# distilled on them does better on the real test split, while the teacher
# finds slightly fewer of the synthesis targets in them; the student learns
# from the teacher's own detections, not from the targets. The measurements
# are in configs/diode/README.md.
_base_ = './diode_yolov3-mv2_digits.py'

synthesizer = dict(bn_prior=dict(weight=1.0))
