# Teacher: YOLOv3-MobileNetV2 (full width) trained from scratch on
# digits-on-photos (make yolov3-teacher).
#   python tools/train.py configs/detectors/yolov3-mv2_24e_digits.py
_base_ = '../_base_/models/yolov3_mobilenetv2_digits.py'
