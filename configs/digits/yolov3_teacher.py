# Teacher: YOLOv3-MobileNetV2 (full width) trained from scratch on
# digits-on-photos.  python tools/train.py configs/digits/yolov3_teacher.py
_base_ = './_base_/yolov3_mobilenetv2_digits.py'
