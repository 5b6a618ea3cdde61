# mmdet's COCO model-zoo detectors that the COCO configs distil or invert,
# the one copy of each (config and checkpoint, downloaded once into the torch
# hub cache), used as `teacher=_base_.coco_teachers.NAME` by the
# distillation configs (configs/hgd/, configs/kd/, the on-the-fly configs of
# configs/diode/ and configs/moi/) and as `teacher` by the synthesis configs
# (through _base_/synthesis/coco.py).
coco_teachers = dict(
    # YOLOv3-DarkNet53, 608 px, multi-scale: 33.7 AP.
    yolov3_d53=dict(
        config='mmdet::yolo/yolov3_d53_8xb8-ms-608-273e_coco.py',
        checkpoint='https://download.openmmlab.com/mmdetection/v2.0/yolo/'
        'yolov3_d53_mstrain-608_273e_coco/'
        'yolov3_d53_mstrain-608_273e_coco_20210518_115020-a2c3acb8.pth'),
    # Faster R-CNN R50-FPN 1x: 37.4 AP.
    faster_rcnn_r50=dict(
        config='mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py',
        checkpoint='https://download.openmmlab.com/mmdetection/v2.0/'
        'faster_rcnn/faster_rcnn_r50_fpn_1x_coco/'
        'faster_rcnn_r50_fpn_1x_coco_20200130-047c8118.pth'),
    # Faster R-CNN R101-FPN 1x: 39.4 AP.
    faster_rcnn_r101=dict(
        config='mmdet::faster_rcnn/faster-rcnn_r101_fpn_1x_coco.py',
        checkpoint='https://download.openmmlab.com/mmdetection/v2.0/'
        'faster_rcnn/faster_rcnn_r101_fpn_1x_coco/'
        'faster_rcnn_r101_fpn_1x_coco_20200130-f513f705.pth'),
    # RTMDet-l: 51.3 AP.
    rtmdet_l=dict(
        config='mmdet::rtmdet/rtmdet_l_8xb32-300e_coco.py',
        checkpoint='https://download.openmmlab.com/mmdetection/v3.0/rtmdet/'
        'rtmdet_l_8xb32-300e_coco/'
        'rtmdet_l_8xb32-300e_coco_20220719_112030-5a0be7c4.pth'))
