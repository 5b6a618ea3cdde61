# Student: Faster R-CNN ResNet-18 with half the base channels (32 instead of
# 64, so stages of 32/64/128/256), a 64-channel FPN and a 128-d RoI head.
_base_ = '../_base_/models/faster-rcnn_r18_fpn_digits.py'

model = dict(
    backbone=dict(base_channels=32),
    neck=dict(in_channels=[32, 64, 128, 256], out_channels=64),
    rpn_head=dict(in_channels=64, feat_channels=64),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=64),
        bbox_head=dict(in_channels=64, fc_out_channels=128)))
