# diode_yolov3-mv2_synth-kd-amortised_digits.py with the cold start's noise
# added to the network's image: the network, fitted with an L1 loss, draws
# smooth images, and 50 iterations from a smooth start leave flat
# backgrounds a student never sees in a real image; a quarter of the cold
# start's noise keeps some clutter in the start, inside the targets and
# around them, little enough that the 50 iterations can still turn it into
# objects (docs/en/synthesis.md, "An amortised initialisation"; the weights
# tried are in docs/en/benchmarks.md).
#   python tools/synthesize.py \
#       configs/diode/diode_yolov3-mv2_synth-kd-amortised-noise_digits.py \
#       --out data/synth_yolov3_amortised_noise --num-images 500 --viz
_base_ = './diode_yolov3-mv2_synth-kd-amortised_digits.py'

synthesizer = dict(
    recombine=dict(amortised=dict(noise=0.25, object_noise=0.25)))
