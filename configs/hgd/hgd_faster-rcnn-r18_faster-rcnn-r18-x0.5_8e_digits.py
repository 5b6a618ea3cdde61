# Faster R-CNN R18 (half width) student + Hands-on Guidance Distillation from
# the R18-FPN teacher: output KD of the RPN maps and of the RoI head (on the
# student's RoIs) plus HGD over every backbone and FPN stage, with the
# student's ground-truth loss.
#   python tools/train.py \
#       configs/hgd/hgd_faster-rcnn-r18_faster-rcnn-r18-x0.5_8e_digits.py
_base_ = [
    '../_base_/distill/faster-rcnn-r18_faster-rcnn-r18-x0.5_digits.py',
    '../_base_/distill/hgd.py'
]

model = dict(
    distill_losses=dict(
        # RPN objectness KL and box L1 weighted by the teacher's objectness.
        rpn=dict(type='DenseHeadKDLoss', module='rpn_head', loss_weight=1.0),
        # The teacher's RoI head classifies the student's sampled RoIs. Box
        # term at half weight: at 1.0 it is 3x the student's own box loss.
        roi=dict(type='RoIHeadKDLoss', reg_weight=0.5, loss_weight=1.0),
        hgd=dict(
            _base_.hgd_loss,
            # ResNet stages (strides 4-32), then the FPN levels (strides
            # 4-64). Student: 32 base channels, 64-channel FPN; teacher: 64
            # base channels, 128-channel FPN.
            student_channels=[32, 64, 128, 256, 64, 64, 64, 64, 64],
            teacher_channels=[64, 128, 256, 512, 128, 128, 128, 128, 128],
            # The 9 adaptive stage weights sum to 9: at 1.0 HGD outweighed the
            # detection loss many times over and the student fell behind the
            # one trained alone (configs/hgd/README.md); 0.1 puts it on the
            # detection loss's scale.
            loss_weight=0.1)))
