# diode_yolov3-mv2_synth-kd-recombine_digits.py with an amortised
# initialisation instead of the object bank: the first two batches run the
# full recipe and teach a small layout-to-image generator; every later batch
# starts from the generator's image of its own layouts and runs the same
# short 128 px stage, and its refined images teach the generator further
# (DeepInversion's recombine option with source='amortised',
# docs/en/synthesis.md, "An amortised initialisation").
#   python tools/synthesize.py \
#       configs/diode/diode_yolov3-mv2_synth-kd-amortised_digits.py \
#       --out data/synth_yolov3_amortised --num-images 500 --viz
_base_ = './diode_yolov3-mv2_synth-kd-recombine_digits.py'

synthesizer = dict(
    recombine=dict(
        source='amortised',
        # The warm schedule, the cold batches and the false-positive
        # setting stay the bank's, so that the two sources compare on the
        # start image alone.
        # Every batch teaches the generator: it learns what the short
        # schedule makes of its own output (the meta-update).
        refill=True,
        amortised=dict(
            # Half the final size: four times cheaper to train than at
            # 128 px; the short stage adds the detail of the final size.
            size=64,
            channels=32,
            embed_dim=8,
            # Labels 0 to 255: any detector with up to 256 classes.
            max_classes=256,
            # 20 steps of 16 images per batch offered: a few seconds on
            # 2 cores, a fraction of a warm batch's teacher passes.
            steps=20,
            batch_size=16,
            lr=1e-3,
            # The last 16 batches' images.
            buffer_size=256,
            seed=0,
            # The network's image alone: a smooth start (the weights of the
            # cold start's noise added to it outside and inside the
            # targets).
            noise=0.0,
            object_noise=0.0)))
