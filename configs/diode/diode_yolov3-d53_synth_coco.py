# DIODE synthesis from mmdet's COCO YOLOv3-D53 (608, multi-scale) model-zoo
# teacher with the published DIODE recipe
# (_base_/synthesis/diode_yolov3-d53_coco.py), on DIODE's one-box layouts.
# For CUDA; several GPUs with
#   bash tools/dist_synthesize.sh \
#       configs/diode/diode_yolov3-d53_synth_coco.py 8 \
#       --out data/diode_coco --num-images 120000
_base_ = '../_base_/synthesis/diode_yolov3-d53_coco.py'

custom_imports = dict(imports=['mmdiode'], allow_failed_imports=False)
default_scope = 'mmdet'

teacher = dict(
    config='mmdet::yolo/yolov3_d53_8xb8-ms-608-273e_coco.py',
    checkpoint='https://download.openmmlab.com/mmdetection/v2.0/yolo/'
    'yolov3_d53_mstrain-608_273e_coco/'
    'yolov3_d53_mstrain-608_273e_coco_20210518_115020-a2c3acb8.pth')

layout_sampler = dict(
    type='BoxLayoutSampler', img_size=320, strategy='one-box', min_size=0.2,
    max_size=0.8)

synthesis = dict(num_images=120000, batch_size=96, seed=0, max_retries=2)
vis_backends = [dict(type='LocalVisBackend'),
                dict(type='TensorboardVisBackend')]
env_cfg = dict(dist_cfg=dict(backend='nccl'))
