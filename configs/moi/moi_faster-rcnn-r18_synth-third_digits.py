# moi_faster-rcnn-r18_synth_digits.py on a third of the schedule: 66
# iterations at 64 px and 34 at 128 px (instead of 200 and 100), false-
# positive sampling at the same fractions of it (20 % to 70 %, every 17th);
# the half schedule (moi_faster-rcnn-r18_synth-short_digits.py) cut further.
# Boxes come out a little looser than on the full schedule
# (docs/en/benchmarks.md, "Cheaper synthesis"). The synthesizer is
# `synthesizer_third` of _base_/synthesis/moi_faster-rcnn-r18_digits.py,
# shared with the on-the-fly config.
#   python tools/synthesize.py \
#       configs/moi/moi_faster-rcnn-r18_synth-third_digits.py \
#       --out data/synth_frcnn_third --num-images 200 --viz
_base_ = './moi_faster-rcnn-r18_synth_digits.py'

synthesizer = _base_.synthesizer_third
