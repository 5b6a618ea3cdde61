# Row `kd_noise` of tools/benchmark_datafree.py: the data-free distillation of
# ../moi_faster-rcnn_kd.py on plain noise: the BoxSamplerDataset without a
# DeepInversionHook never fills its pool and serves its seeded uniform-noise
# placeholders (a fresh image per index).
#   python tools/train.py configs/digits/datafree/faster-rcnn_kd-noise.py
_base_ = '../moi_faster-rcnn_kd.py'

train_dataloader = dict(
    dataset=dict(
        dataset=dict(pool_dir='work_dirs/faster-rcnn_kd-noise/pool')))

custom_hooks = [dict(type='TeacherEvalHook')]
