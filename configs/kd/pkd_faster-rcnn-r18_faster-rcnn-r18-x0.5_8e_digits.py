# Faster R-CNN student + PKD: Pearson-correlation imitation of the FPN levels
# (features standardised per channel), with the student's ground-truth loss.
_base_ = '../_base_/distill/faster-rcnn-r18_faster-rcnn-r18-x0.5_digits.py'

model = dict(
    distill_losses=dict(
        pkd=dict(
            type='PKDLoss',
            # FPN levels at strides 4-64: 64 student, 128 teacher channels.
            student_channels=[64, 64, 64, 64, 64],
            teacher_channels=[128, 128, 128, 128, 128],
            loss_weight=6.0)))  # the published weight
