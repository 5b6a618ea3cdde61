# YOLOv3 student + PKD: Pearson-correlation imitation of the neck levels
# (features standardised per channel), with the student's ground-truth loss.
_base_ = '../_base_/distill/yolov3-mv2_yolov3-mv2-x0.5_digits.py'

model = dict(
    distill_losses=dict(
        pkd=dict(
            # Neck levels (strides 32/16/8): the base's neck_channels.
            _base_.neck_channels,
            type='PKDLoss',
            loss_weight=300.0)))  # the published 6 (x50, see the base config)
