# Row `kd_noise` of tools/benchmark_datafree.py: the data-free distillation
# of configs/moi/moi_faster-rcnn-r18_faster-rcnn-r18-x0.5_8e_digits.py
# on plain noise: the BoxSamplerDataset without a DeepInversionHook never
# fills its pool and serves its seeded uniform-noise placeholders (a fresh
# image per index).
_base_ = '../moi/moi_faster-rcnn-r18_faster-rcnn-r18-x0.5_8e_digits.py'

# No DeepInversionHook sets the pool folder here: its own, never filled,
# work_dirs/<this config's name>/pool (given another pool_dir, it serves that
# pool's images as they are: docs/en/datafree.md).
train_dataloader = dict(
    dataset=dict(
        dataset=dict(pool_dir='work_dirs/{{fileBasenameNoExtension}}/pool')))

custom_hooks = [dict(type='TeacherEvalHook')]
