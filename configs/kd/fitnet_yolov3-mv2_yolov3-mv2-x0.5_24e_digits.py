# YOLOv3 student + FitNets hints: L2 between the 1x1-adapted student neck
# levels and the teacher's (the neck is what the detection head reads), with
# the student's ground-truth loss.
_base_ = '../_base_/distill/yolov3-mv2_yolov3-mv2-x0.5_digits.py'

model = dict(
    distill_losses=dict(
        fitnet=dict(
            # Neck levels (strides 32/16/8): the base's neck_channels.
            _base_.neck_channels,
            type='FitNetLoss',
            mask='none',  # every location, as in FitNets
            loss_weight=50.0)))  # reference weight 1
