# The DeepInversionHook settings of the on-the-fly COCO configs (CUDA): those
# of hook.py, one synthesis batch of 32 images (beside the training batch in
# GPU memory) every 2000 training iterations, and one initial batch per rank
# (an offline set can seed the pool instead: warm_start). Each config adds
# its synthesizer and pool size.
_base_ = './hook.py'

deep_inversion_hook = dict(interval=2000, batch_size=32, initial_batches=1)
