# diode_yolov3-mv2_synth_digits.py plus a third, "polish" stage that brings
# the images' BatchNorm statistics close to the teacher's running
# statistics:
#   python tools/synthesize.py \
#       configs/diode/diode_yolov3-mv2_synth-polish_digits.py \
#       --out data/synth_yolov3_polish --num-images 1000 --viz
# The first two stages (DIODE's recipe) make the digits detectable; their
# augmentations and jitter, which the task loss needs, keep the BN prior from
# falling far (docs/en/synthesis.md, "Fidelity"). The polish stage switches
# both off and weighs the BN prior 30x heavier than DIODE's 0.1, with the
# task loss 3x heavier so the digits stay detectable. It costs 3.7x the
# iterations of diode_yolov3-mv2_synth_digits.py.
_base_ = './diode_yolov3-mv2_synth_digits.py'

synthesizer = dict(stages=[
    # Restated from the base config (mmengine replaces lists, it does not
    # extend them); a test keeps them equal.
    dict(size=64, iterations=200, lr=0.2, min_lr=0.01, jitter=4),
    dict(size=128, iterations=100, lr=0.05, min_lr=0.005, jitter=8),
    # The polish stage.
    dict(size=128, iterations=800, lr=0.05, min_lr=0.001, jitter=0,
         augment=False, bn_weight=3.0, task_weight=3.0),
])
