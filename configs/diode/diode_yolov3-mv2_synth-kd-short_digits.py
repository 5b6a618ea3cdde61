# diode_yolov3-mv2_synth-kd_digits.py on a shorter cold schedule: 40
# iterations at 64 px and 45 at 128 px (instead of 200 and 100), false-
# positive sampling at the same fractions of it (20 % to 70 %, every sixth).
# The DIODE counterpart of MOI's shorter schedules
# (configs/moi/moi_faster-rcnn-r18_synth-third_digits.py). On this teacher a
# 128 px iteration costs about 2.2x a 64 px one, so 40 + 45 iterations cost a
# third of 200 + 100. Of the splits of that budget, more of it at 128 px
# keeps the teacher's detections best: the 128 px stage is where they are
# settled, the 64 px one only lays the objects out. Fewer iterations leave
# the BN prior less far from noise; a stronger BN prior buys that back only
# with the teacher's detections. Not the default: with the same synthesis
# time, a student learns less from three times as many of these images
# than from the full recipe's (docs/en/benchmarks.md, "Cheaper synthesis").
#   python tools/synthesize.py \
#       configs/diode/diode_yolov3-mv2_synth-kd-short_digits.py \
#       --out data/synth_yolov3_short --num-images 600 --viz
_base_ = './diode_yolov3-mv2_synth-kd_digits.py'

# The recipe's stages (sizes, learning rates, jitter) with fewer iterations.
synthesizer = dict(
    stages=[
        dict(stage, iterations=iterations) for stage, iterations in zip(
            _base_.synthesizer.stages, (40, 45))
    ],
    fp_sampling=dict(start=17, end=60, interval=14))
