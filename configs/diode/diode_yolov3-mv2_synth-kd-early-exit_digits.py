# diode_yolov3-mv2_synth-kd_digits.py with the synthesizer's early exit: a
# batch leaves the 128 px stage once the teacher finds at least 90 % of its
# targets (score >= 0.3, IoU >= 0.5) and the BN prior has stopped falling
# (the defaults of DeepInversion's early_exit, docs/en/synthesis.md,
# "Early exit").
#   python tools/synthesize.py \
#       configs/diode/diode_yolov3-mv2_synth-kd-early-exit_digits.py \
#       --out data/synth_yolov3_early_exit --num-images 500 --viz
_base_ = './diode_yolov3-mv2_synth-kd_digits.py'

# Only the last stage (index 1) may end early: its 100 iterations at 128 px,
# on 4x the pixels of the 64 px stage's 200, are about half of a batch's
# cost, and the half where the teacher's detections settle, so that is where
# leaving early saves. A check runs the teacher's
# predict() once, about the cost of one iteration's forward pass, every
# check_interval (10) iterations after the first min_iterations (20) of the
# stage.
synthesizer = dict(early_exit=dict(enable=True, stages=[1]))
