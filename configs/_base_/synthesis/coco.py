# The COCO synthesis configs' settings, for CUDA (several GPUs with
# tools/dist_synthesize.sh): DIODE's data set size, 120000 images, in batches
# of 96, and nccl, otherwise the run settings of default_runtime.py; 320 px
# layouts of several objects, as COCO images hold several.
_base_ = './default_runtime.py'

layout_sampler = dict(
    type='BoxLayoutSampler', img_size=320, strategy='multi-box',
    min_boxes=2, max_boxes=6, max_iou=0.35, min_size=0.1, max_size=0.6)

synthesis = dict(num_images=120000, batch_size=96)
env_cfg = dict(dist_cfg=dict(backend='nccl'))
