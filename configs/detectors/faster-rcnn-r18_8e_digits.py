# Teacher: Faster R-CNN ResNet-18 FPN (slim RoI head) trained from scratch on
# digits-on-photos (make faster-rcnn-teacher):
#   python tools/train.py configs/detectors/faster-rcnn-r18_8e_digits.py
_base_ = '../_base_/models/faster-rcnn_r18_fpn_digits.py'
