# Student: YOLOv3 with a half-width MobileNetV2 (widen_factor 0.5) and a
# half-width neck and head (48 instead of 96 channels).
_base_ = '../_base_/models/yolov3_mobilenetv2_digits.py'

model = dict(
    backbone=dict(widen_factor=0.5),
    neck=dict(in_channels=[160, 48, 16], out_channels=[48, 48, 48]),
    bbox_head=dict(in_channels=[48, 48, 48], out_channels=[48, 48, 48]))
