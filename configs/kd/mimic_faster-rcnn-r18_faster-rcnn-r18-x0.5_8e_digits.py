# Faster R-CNN student + Mimic (Li et al., CVPR 2017): L2 between the
# 1x1-adapted student FPN levels and the teacher's inside ground-truth boxes,
# with the student's ground-truth loss.
_base_ = '../_base_/distill/faster-rcnn-r18_faster-rcnn-r18-x0.5_digits.py'

model = dict(
    distill_losses=dict(
        mimic=dict(
            type='MimicLoss',
            # FPN levels at strides 4-64: 64 student, 128 teacher channels.
            student_channels=[64, 64, 64, 64, 64],
            teacher_channels=[128, 128, 128, 128, 128],
            loss_weight=1.0)))
