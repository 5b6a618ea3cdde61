# YOLOv3 student + fine-grained feature imitation (FGFI): neck features
# imitated only at the locations whose anchors are near a ground-truth box,
# with the student's ground-truth loss.
_base_ = '../_base_/distill/yolov3-mv2_yolov3-mv2-x0.5_digits.py'

model = dict(
    distill_losses=dict(
        fgfi=dict(
            # Neck levels (strides 32/16/8): the base's neck_channels.
            _base_.neck_channels,
            type='FGFILoss',
            # The YOLOv3 head's anchors, whose levels follow the neck's order
            # (strides 32/16/8); student and teacher share them.
            anchor_generator=(
                {{_base_.model.student.bbox_head.anchor_generator}}),
            psi=0.5,  # the paper's near-anchor threshold
            # The loss sums squared errors over ~100 channels; 0.01 makes it
            # a per-channel mean like FitNet's (x50, see the base config).
            loss_weight=0.5)))
