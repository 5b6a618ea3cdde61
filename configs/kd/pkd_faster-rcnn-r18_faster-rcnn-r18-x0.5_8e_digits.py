# Faster R-CNN student + PKD: Pearson-correlation imitation of the FPN levels
# (features standardised per channel), with the student's ground-truth loss.
_base_ = '../_base_/distill/faster-rcnn-r18_faster-rcnn-r18-x0.5_digits.py'

model = dict(
    distill_losses=dict(
        pkd=dict(
            # FPN levels (strides 4-64): the base's neck_channels.
            _base_.neck_channels,
            type='PKDLoss',
            loss_weight=6.0)))  # the published weight
