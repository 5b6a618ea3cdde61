# mmdet's YOLOv3-D53 at 320 px without the ImageNet-pretrained Darknet-53:
# DIODE trains its student from scratch.
_base_ = 'mmdet::yolo/yolov3_d53_8xb8-320-273e_coco.py'

model = dict(backbone=dict(init_cfg=None))
