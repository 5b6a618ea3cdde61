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

teacher = _base_.coco_teachers.yolov3_d53

# DIODE's layouts instead of those of _base_/synthesis/coco.py.
layout_sampler = dict(
    _delete_=True, type='BoxLayoutSampler', img_size=320, strategy='one-box',
    min_size=0.2, max_size=0.8)
