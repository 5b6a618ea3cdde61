# diode_yolov3-mv2_synth-kd_digits.py with warm starts: the first two
# batches run the full recipe and fill an object bank with the objects the
# teacher finds in them; every later batch starts from crops of those
# objects pasted at its own targets on fresh noise, and runs only a short
# 128 px stage (DeepInversion's recombine option, docs/en/synthesis.md,
# "Warm starts from recombined objects"). The teacher finds the objects in
# these images about as well as in cold ones, but their objects are
# variations of the few hundred crops in the bank: a student learns less
# from them than from cold images of the same synthesis time (measured in
# docs/en/benchmarks.md), so this recipe is not the offline sets' default.
#   python tools/synthesize.py \
#       configs/diode/diode_yolov3-mv2_synth-kd-recombine_digits.py \
#       --out data/synth_yolov3_recombine --num-images 500 --viz
_base_ = './diode_yolov3-mv2_synth-kd_digits.py'

synthesizer = dict(
    recombine=dict(
        enable=True,
        # Two batches of 16 images, 9 targets each: about 200 objects the
        # teacher finds, some of every class.
        cold_batches=2,
        # The pasted objects are already detectable: no 64 px stage, which
        # exists to grow objects out of noise; 50 iterations at the final
        # size blend them into their background. The BN prior weighs twice
        # the recipe's: the pasted crops and the new noise between them start
        # farther from the teacher's BN statistics than an image that grew
        # as a whole, and a heavier prior brings them back within the short
        # stage, at the cost of slightly fewer targets found (the trade-off
        # of 1.5 against 2.0 is in docs/en/benchmarks.md).
        stages=[
            dict(size=128, iterations=50, lr=0.05, min_lr=0.005, jitter=8,
                 bn_weight=2.0)
        ],
        # Few false positives appear in 50 iterations from pasted objects.
        fp_sampling=dict(enable=False),
        max_per_class=64,
        score_thr=0.3,
        iou_thr=0.5,
        # The bank's diversity options, off here; the -diverse and -feather
        # configs switch them on.
        refill=False,
        recolour=False,
        feather=0.0))
