# moi_faster-rcnn-r18_synth_digits.py on a third of the schedule: 66
# iterations at 64 px and 34 at 128 px (instead of 200 and 100), false-
# positive sampling at the same fractions of it (20 % to 70 %, every sixth);
# the half schedule (moi_faster-rcnn-r18_synth-short_digits.py) cut further.
# As for the half schedule, the time per image follows the iteration count on
# a Faster R-CNN teacher, and without a BN prior the teacher's own loss is all
# the schedule has to satisfy; boxes come out a little looser than on the
# full schedule (docs/en/benchmarks.md, "Cheaper synthesis").
#   python tools/synthesize.py \
#       configs/moi/moi_faster-rcnn-r18_synth-third_digits.py \
#       --out data/synth_frcnn_third --num-images 200 --viz
_base_ = './moi_faster-rcnn-r18_synth-short_digits.py'

# The half schedule's stages (the recipe's sizes, learning rates and jitter)
# with two thirds of their iterations.
synthesizer = dict(
    stages=[
        dict(stage, iterations=iterations) for stage, iterations in zip(
            _base_.synthesizer.stages, (66, 34))
    ],
    fp_sampling=dict(start=20, end=70, interval=17))
