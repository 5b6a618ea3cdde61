# Faster R-CNN student + Mimic (Li et al., CVPR 2017): L2 between the
# 1x1-adapted student FPN levels and the teacher's inside ground-truth boxes,
# with the student's ground-truth loss.
_base_ = '../_base_/distill/faster-rcnn-r18_faster-rcnn-r18-x0.5_digits.py'

model = dict(
    distill_losses=dict(
        mimic=dict(
            # FPN levels (strides 4-64): the base's neck_channels.
            _base_.neck_channels,
            type='MimicLoss',
            loss_weight=1.0)))
