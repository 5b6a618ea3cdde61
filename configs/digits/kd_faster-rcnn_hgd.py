# Faster R-CNN R18 (half width) student + Hands-on Guidance Distillation from
# the R18-FPN teacher: output KD of the RPN maps and of the RoI head (on the
# student's RoIs) plus HGD over every backbone and FPN stage, with the
# student's ground-truth loss.
#   python tools/train.py configs/digits/kd_faster-rcnn_hgd.py
_base_ = './_base_/kd_faster-rcnn.py'

model = dict(
    distill_losses=dict(
        # RPN objectness KL and box L1 weighted by the teacher's objectness.
        rpn=dict(type='DenseHeadKDLoss', module='rpn_head', loss_weight=1.0),
        # The teacher's RoI head classifies the student's sampled RoIs.
        roi=dict(type='RoIHeadKDLoss', loss_weight=1.0),
        hgd=dict(
            type='HGDLoss',
            # ResNet stages (strides 4-32), then the FPN levels (strides
            # 4-64); paired by order. Student: 32 base channels, 64-channel
            # FPN; teacher: 64 base channels, 128-channel FPN.
            student_modules=['backbone', 'neck'],
            teacher_modules=['backbone', 'neck'],
            student_channels=[32, 64, 128, 256, 64, 64, 64, 64, 64],
            teacher_channels=[64, 128, 256, 512, 128, 128, 128, 128, 128],
            # GT-box weights where an image has boxes, teacher attention
            # where it has none.
            micro_weighting='auto',
            # Every stage contributes about equally (inverse running loss).
            stage_weights='adaptive',
            loss_weight=1.0)))
