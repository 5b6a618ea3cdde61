# diode_yolov3-mv2_synth-kd-recombine_digits.py with a wider object bank:
# warm batches from a bank of the first two batches' objects taught a
# student less than cold images of the same synthesis time, likely because
# their objects are variations of a few hundred crops. Here every batch,
# warm ones too, adds the objects the teacher finds in it to the bank
# (`refill`: the newest 64 per class are kept, so the crops move on from the
# first batches'), and each pasted crop gets a random order of its RGB
# channels (`recolour`: the digits of this benchmark come in any colour, so
# colour does not decide a class; switch it off for classes where it does).
# Not a default: its student did no better than the plain recombine one
# (docs/en/benchmarks.md, "A wider bank").
#   python tools/synthesize.py \
#       configs/diode/diode_yolov3-mv2_synth-kd-recombine-diverse_digits.py \
#       --out data/synth_yolov3_recombine_diverse --num-images 600 --viz
_base_ = './diode_yolov3-mv2_synth-kd-recombine_digits.py'

synthesizer = dict(recombine=dict(refill=True, recolour=True))
