# The COCO synthesis configs' settings, for CUDA (several GPUs with
# tools/dist_synthesize.sh): DIODE's data set size, 120000 images, in batches
# of 96, and nccl, otherwise the run settings of default_runtime.py; 320 px
# layouts of several objects, as COCO images hold several (those of the
# data-free COCO training sets, _base_/datasets/coco_datafree.py); mmdet's
# model-zoo teachers (_base_/models/coco_teachers.py), one of which each
# config names as its `teacher`.
_base_ = [
    './default_runtime.py', '../datasets/coco_datafree.py',
    '../models/coco_teachers.py'
]

layout_sampler = dict(_base_.coco_layouts, img_size=320)

synthesis = dict(num_images=120000, batch_size=96)
env_cfg = dict(dist_cfg=dict(backend='nccl'))
