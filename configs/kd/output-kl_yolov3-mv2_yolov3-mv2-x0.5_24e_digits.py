# YOLOv3 student + soft-target output distillation: binary KL of objectness
# and class scores, box MSE weighted by the teacher's objectness, with the
# student's ground-truth loss.
_base_ = '../_base_/distill/yolov3-mv2_yolov3-mv2-x0.5_digits.py'

model = dict(
    distill_losses=dict(
        out=dict(
            type='YOLOv3OutputKDLoss',
            temperature=1.0,  # Hinton et al.'s tau; KL terms scaled by tau^2
            loss_weight=50.0)))  # reference weight 1
