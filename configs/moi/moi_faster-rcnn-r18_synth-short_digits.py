# moi_faster-rcnn-r18_synth_digits.py on half the schedule: 100 iterations
# at 64 px and 50 at 128 px (instead of 200 and 100), false-positive
# sampling at the same fractions of it. A Faster R-CNN teacher's iteration
# costs about as much at 64 px as at 128 px (its RoI head's work does not
# shrink with the image), so the time per image follows the iteration
# count; without a BN prior to bring down, the teacher's own loss is the
# only thing the schedule has to satisfy (docs/en/benchmarks.md, "Cheaper
# synthesis").
#   python tools/synthesize.py \
#       configs/moi/moi_faster-rcnn-r18_synth-short_digits.py \
#       --out data/synth_frcnn_short --num-images 200 --viz
_base_ = './moi_faster-rcnn-r18_synth_digits.py'

synthesizer = dict(
    stages=[
        dict(size=64, iterations=100, lr=0.2, min_lr=0.01, jitter=4),
        dict(size=128, iterations=50, lr=0.05, min_lr=0.005, jitter=8),
    ],
    fp_sampling=dict(start=30, end=105, interval=25))
