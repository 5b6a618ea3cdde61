# Row `kd_noise` of tools/benchmark_datafree.py: the data-free distillation of
# ../diode_yolov3_kd.py on plain noise: the BoxSamplerDataset without a
# DeepInversionHook never fills its pool and serves its seeded uniform-noise
# placeholders (a fresh image per index).
#   python tools/train.py configs/digits/datafree/yolov3_kd-noise.py
_base_ = '../diode_yolov3_kd.py'

train_dataloader = dict(
    dataset=dict(dataset=dict(pool_dir='work_dirs/yolov3_kd-noise/pool')))

custom_hooks = [dict(type='TeacherEvalHook')]
