# Faster R-CNN student + output distillation of both stages: the RPN maps
# and the RoI head, whose teacher branch classifies the student's sampled
# RoIs; with the student's ground-truth loss. (The HGD config
# configs/hgd/hgd_faster-rcnn-r18_faster-rcnn-r18-x0.5_8e_digits.py adds HGD
# to this and halves the RoI box term.)
_base_ = '../_base_/distill/faster-rcnn-r18_faster-rcnn-r18-x0.5_digits.py'

model = dict(
    distill_losses=dict(
        # RPN objectness KL and box L1 weighted by the teacher's objectness.
        rpn=dict(type='DenseHeadKDLoss', module='rpn_head', loss_weight=1.0),
        # RoI class KL (softmax, tau 1) and box L1 of the teacher's best
        # class, weighted by its confidence.
        roi=dict(type='RoIHeadKDLoss', temperature=1.0, loss_weight=1.0)))
