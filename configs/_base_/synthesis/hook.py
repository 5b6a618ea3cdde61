# The DeepInversionHook settings every on-the-fly data-free config shares;
# each adds its synthesizer, pool size, schedule (interval, initial_batches)
# and batch size:
#   custom_hooks = [dict(_base_.deep_inversion_hook,
#                        synthesizer=_base_.synthesizer, ...)]
# One synthesis batch per round (more make rounds longer, not images
# better); no warm start (an offline set made with tools/synthesize.py and
# the config's synthesizer can seed the pool: warm_start='data/...'); seed 0,
# from which each batch's layouts and initial noise follow, disjoint from
# the teacher-agreement sets' seed 1000.
deep_inversion_hook = dict(
    type='DeepInversionHook', batches_per_round=1, warm_start=None, seed=0)
