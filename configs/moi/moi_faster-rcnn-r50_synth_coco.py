# Multi-Object Impressions from mmdet's COCO Faster R-CNN R50-FPN model-zoo
# teacher (no data statistics), with the synthesizer of
# _base_/synthesis/moi_faster-rcnn-r50_coco.py. For CUDA; several GPUs with
#   bash tools/dist_synthesize.sh \
#       configs/moi/moi_faster-rcnn-r50_synth_coco.py 8 \
#       --out data/moi_coco --num-images 120000
_base_ = '../_base_/synthesis/moi_faster-rcnn-r50_coco.py'

custom_imports = dict(imports=['mmdiode'], allow_failed_imports=False)
default_scope = 'mmdet'

teacher = dict(
    config='mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py',
    checkpoint='https://download.openmmlab.com/mmdetection/v2.0/'
    'faster_rcnn/faster_rcnn_r50_fpn_1x_coco/'
    'faster_rcnn_r50_fpn_1x_coco_20200130-047c8118.pth')

layout_sampler = dict(
    type='BoxLayoutSampler', img_size=320, strategy='multi-box',
    min_boxes=2, max_boxes=6, max_iou=0.35, min_size=0.1, max_size=0.6)

synthesis = dict(num_images=120000, batch_size=32, seed=0, max_retries=2)
vis_backends = [dict(type='LocalVisBackend'),
                dict(type='TensorboardVisBackend')]
env_cfg = dict(dist_cfg=dict(backend='nccl'))
