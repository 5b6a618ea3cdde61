# YOLOv3 student + DIODE's output distillation: MSE between the raw
# (pre-sigmoid) YOLOv3 head maps of student and teacher at all three scales,
# with the student's ground-truth loss.
_base_ = '../_base_/distill/yolov3-mv2_yolov3-mv2-x0.5_digits.py'

model = dict(
    distill_losses=dict(
        # DIODE weights the raw-map MSE 1 (x50, see the base config).
        out=dict(type='OutputMSELoss', module='bbox_head', loss_weight=50.0)))
