# Row `kd_noise` of tools/benchmark_datafree.py: the data-free distillation
# of configs/diode/diode_yolov3-mv2_yolov3-mv2-x0.5_24e_digits.py
# on plain noise: the BoxSamplerDataset without a DeepInversionHook never
# fills its pool and serves its seeded uniform-noise placeholders (a fresh
# image per index).
_base_ = '../diode/diode_yolov3-mv2_yolov3-mv2-x0.5_24e_digits.py'

# No DeepInversionHook sets the pool folder here: its own, never filled,
# work_dirs/<this config's name>/pool (given another pool_dir, it serves that
# pool's images as they are: docs/en/datafree.md).
train_dataloader = dict(
    dataset=dict(
        dataset=dict(pool_dir='work_dirs/{{fileBasenameNoExtension}}/pool')))

custom_hooks = [dict(type='TeacherEvalHook')]
