# Teacher: Faster R-CNN ResNet-18 FPN (slim RoI head) trained from scratch on
# digits-on-photos:
#   python tools/train.py configs/digits/faster-rcnn_teacher.py
_base_ = './_base_/faster-rcnn_r18_fpn_digits.py'
