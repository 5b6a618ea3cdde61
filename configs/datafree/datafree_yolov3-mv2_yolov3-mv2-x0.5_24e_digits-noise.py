# Row `kd_noise` of tools/benchmark_datafree.py: the data-free distillation
# of configs/diode/diode_yolov3-mv2_yolov3-mv2-x0.5_24e_digits.py
# on plain noise: the BoxSamplerDataset without a DeepInversionHook never
# fills its pool and serves its seeded uniform-noise placeholders (a fresh
# image per index).
_base_ = '../diode/diode_yolov3-mv2_yolov3-mv2-x0.5_24e_digits.py'

# Its own (never filled) pool: work_dirs/<this config's name>/pool.
train_dataloader = dict(
    dataset=dict(
        dataset=dict(pool_dir='work_dirs/{{fileBasenameNoExtension}}/pool')))

custom_hooks = [dict(type='TeacherEvalHook')]
