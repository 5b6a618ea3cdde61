# DIODE synthesis from mmdet's COCO RTMDet-l model-zoo teacher with the
# DIODE recipe (_base_/synthesis/diode_rtmdet-l_coco.py), on layouts of
# several objects (COCO images hold several). For CUDA; several GPUs with
#   bash tools/dist_synthesize.sh \
#       configs/diode/diode_rtmdet-l_synth_coco.py 8 \
#       --out data/diode_rtmdet_coco --num-images 120000
_base_ = '../_base_/synthesis/diode_rtmdet-l_coco.py'

custom_imports = dict(imports=['mmdiode'], allow_failed_imports=False)
default_scope = 'mmdet'

teacher = dict(
    config='mmdet::rtmdet/rtmdet_l_8xb32-300e_coco.py',
    checkpoint='https://download.openmmlab.com/mmdetection/v3.0/rtmdet/'
    'rtmdet_l_8xb32-300e_coco/'
    'rtmdet_l_8xb32-300e_coco_20220719_112030-5a0be7c4.pth')

layout_sampler = dict(
    type='BoxLayoutSampler', img_size=320, strategy='multi-box',
    min_boxes=2, max_boxes=6, max_iou=0.35, min_size=0.1, max_size=0.6)

synthesis = dict(num_images=120000, batch_size=96, seed=0, max_retries=2)
vis_backends = [dict(type='LocalVisBackend'),
                dict(type='TensorboardVisBackend')]
env_cfg = dict(dist_cfg=dict(backend='nccl'))
