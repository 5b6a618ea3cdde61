# YOLOv3-MobileNetV2 x0.5 student + Hands-on Guidance Distillation from the
# full-width teacher: output KD of the YOLOv3 head maps plus HGD over every
# backbone and neck stage, with the student's ground-truth loss.
#   python tools/train.py \
#       configs/hgd/hgd_yolov3-mv2_yolov3-mv2-x0.5_24e_digits.py
_base_ = [
    '../_base_/distill/yolov3-mv2_yolov3-mv2-x0.5_digits.py',
    '../_base_/distill/hgd.py'
]

model = dict(
    distill_losses=dict(
        # Soft targets of the head maps: objectness/class binary KL and box
        # MSE weighted by the teacher's objectness (reference weight 1).
        out=dict(type='YOLOv3OutputKDLoss', temperature=1.0,
                 loss_weight=50.0),
        hgd=dict(
            _base_.hgd_loss,
            # Backbone stages (strides 8/16/32), then the neck levels
            # (strides 32/16/8). Student: MobileNetV2 x0.5 and a 48-channel
            # neck; teacher: x1.0 and a 96-channel neck.
            student_channels=[16, 48, 160, 48, 48, 48],
            teacher_channels=[32, 96, 320, 96, 96, 96],
            loss_weight=50.0)))  # reference weight 1
