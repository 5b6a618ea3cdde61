# COCO: Faster R-CNN R101-FPN 1x teaches Faster R-CNN R50-FPN 1x with
# output KD of the RPN maps and of the RoI head (on the student's RoIs) plus
# HGD over every backbone and FPN stage, on COCO train2017 with ground
# truth. The teacher weights come from mmdet's model zoo (downloaded once
# into the torch hub cache). 8 GPUs:
#   bash tools/dist_train.sh \
#       configs/hgd/hgd_faster-rcnn-r101_faster-rcnn-r50_1x_coco.py 8
_base_ = [
    'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py',
    '../_base_/distill/hgd.py', '../_base_/models/coco_teachers.py'
]

custom_imports = dict(imports=['mmdiode'], allow_failed_imports=False)

model = dict(
    _delete_=True,
    type='KDDetector',
    # The student exactly as mmdet's config defines it (ImageNet init).
    student={{_base_.model}},
    teacher=_base_.coco_teachers.faster_rcnn_r101,
    det_loss_weight=1.0,  # the student's own detection loss at full weight
    # Reference weights: mmdet's Faster R-CNN losses are normalised per
    # sample, as those values assume.
    distill_losses=dict(
        # RPN objectness KL and box L1 weighted by the teacher's objectness.
        rpn=dict(type='DenseHeadKDLoss', module='rpn_head', loss_weight=1.0),
        # The teacher's RoI head classifies the student's sampled RoIs.
        roi=dict(type='RoIHeadKDLoss', loss_weight=1.0),
        hgd=dict(
            _base_.hgd_loss,
            # ResNet stages (strides 4-32), then the FPN levels (strides
            # 4-64). R50 and R101 have the same widths.
            student_channels=[256, 512, 1024, 2048, 256, 256, 256, 256, 256],
            teacher_channels=[256, 512, 1024, 2048, 256, 256, 256, 256, 256],
            loss_weight=1.0)))

# Also logs the frozen teacher's val metrics (once) as teacher/coco/...
custom_hooks = [dict(type='TeacherEvalHook')]
