# DIODE synthesis from mmdet's COCO YOLOv3-D53 (608, multi-scale) model-zoo
# teacher with the published DIODE recipe
# (_base_/synthesis/diode_yolov3-d53_coco.py), on DIODE's one-box layouts.
# For CUDA; several GPUs with
#   bash tools/dist_synthesize.sh \
#       configs/diode/diode_yolov3-d53_synth_coco.py 8 \
#       --out data/diode_coco --num-images 120000
_base_ = [
    '../_base_/synthesis/diode_yolov3-d53_coco.py',
    '../_base_/synthesis/coco.py'
]

teacher = dict(
    config='mmdet::yolo/yolov3_d53_8xb8-ms-608-273e_coco.py',
    checkpoint='https://download.openmmlab.com/mmdetection/v2.0/yolo/'
    'yolov3_d53_mstrain-608_273e_coco/'
    'yolov3_d53_mstrain-608_273e_coco_20210518_115020-a2c3acb8.pth')

# DIODE's layouts instead of those of _base_/synthesis/coco.py.
layout_sampler = dict(
    _delete_=True, type='BoxLayoutSampler', img_size=320, strategy='one-box',
    min_size=0.2, max_size=0.8)
