# diode_yolov3-mv2_synth-kd-recombine_digits.py with feathered pastes: a
# banked crop is a rectangle of its earlier image, border and background
# included, and the 50 warm iterations do not dissolve that border, so a
# student may learn "a patch" rather than a digit. Here each crop's weight
# falls to 0 over the outer fifth of each side (a raised-cosine ramp) and the
# fresh noise under it shows through there: the object's middle is pasted,
# its rectangle's edge is not. Not a default: its student did no better than
# the hard pastes' (docs/en/benchmarks.md, "Feathered pastes").
#   python tools/synthesize.py \
#       configs/diode/diode_yolov3-mv2_synth-kd-recombine-feather_digits.py \
#       --out data/synth_yolov3_recombine_feather --num-images 600 --viz
_base_ = './diode_yolov3-mv2_synth-kd-recombine_digits.py'

# A fifth of each side: the digits fill most of their boxes, so a wider ramp
# would fade their strokes too.
synthesizer = dict(recombine=dict(feather=0.2))
