# COCO: YOLOv3-DarkNet53 (608, multi-scale) teaches YOLOv3-MobileNetV2
# (416, multi-scale) with output KD of the head maps plus HGD over every
# backbone and neck stage, on COCO train2017 with ground truth. The teacher
# weights come from mmdet's model zoo (downloaded once into the torch hub
# cache). 8 GPUs:
#   bash tools/dist_train.sh \
#       configs/hgd/hgd_yolov3-d53_yolov3-mv2_300e_coco.py 8
#
# The 416 student shares the teacher's anchors, so both heads' maps mean the
# same per anchor slot (the 320 student's own anchors would not). The teacher
# sees the student's 320-416 px batches (re-normalised to its mean 0 /
# std 255), not its 608 px training size.
_base_ = [
    'mmdet::yolo/yolov3_mobilenetv2_8xb24-ms-416-300e_coco.py',
    '../_base_/distill/hgd.py', '../_base_/models/coco_teachers.py'
]

custom_imports = dict(imports=['mmdiode'], allow_failed_imports=False)

model = dict(
    _delete_=True,
    type='KDDetector',
    # The student exactly as mmdet's config defines it (ImageNet init).
    student={{_base_.model}},
    teacher=_base_.coco_teachers.yolov3_d53,
    det_loss_weight=1.0,  # the student's own detection loss at full weight
    # Weights are 175x their reference values: mmdet's YOLOv3 head sums its
    # losses over the batch (reduction='sum'), ~24 images x 7.3 objects.
    distill_losses=dict(
        # Soft targets of the head maps: objectness/class binary KL and box
        # MSE weighted by the teacher's objectness (reference weight 1).
        out=dict(type='YOLOv3OutputKDLoss', temperature=1.0,
                 loss_weight=175.0),
        hgd=dict(
            _base_.hgd_loss,
            # Backbone stages (strides 8/16/32), then the neck levels
            # (strides 32/16/8).
            student_channels=[32, 96, 320, 96, 96, 96],
            teacher_channels=[256, 512, 1024, 512, 256, 128],
            loss_weight=175.0)))  # reference weight 1

# Also logs the frozen teacher's val metrics (once) as teacher/coco/...
custom_hooks = [dict(type='TeacherEvalHook')]
