# Multi-Object Impressions from the bundled Faster R-CNN teacher (no data
# statistics: no BatchNorm prior). Class choices per image follow the
# similarity of the teacher's classifier weights; pseudo-targets are
# refreshed from the teacher's own confident detections. The synthesizer is
# _base_/synthesis/moi_faster-rcnn-r18_digits.py, shared with the on-the-fly
# config moi_faster-rcnn-r18_faster-rcnn-r18-x0.5_8e_digits.py.
#   python tools/synthesize.py \
#       configs/moi/moi_faster-rcnn-r18_synth_digits.py \
#       --out data/synth_frcnn --num-images 1000 --viz
_base_ = [
    '../_base_/synthesis/moi_faster-rcnn-r18_digits.py',
    '../_base_/synthesis/default_runtime.py',
    '../_base_/datasets/digits_layouts.py'
]

teacher = dict(
    config='configs/detectors/faster-rcnn-r18_8e_digits.py',
    checkpoint='checkpoints/digits_faster-rcnn_teacher_fp16.pth')

img_size = 128
# Layouts: 3x3 cells (9 digits per image) with boxes of 26-100 % of a
# 42.7 px cell, 11-43 px. A data-free choice: the low end is the short side
# of the teacher's smallest anchors (16 px at stride 4 with aspect ratios
# 0.5-2: 11x22 to 22x11 px, _base_/models/faster-rcnn_r18_fpn_digits.py), as
# for the YOLOv3 pair (configs/diode/diode_yolov3-mv2_synth-kd_digits.py).
# The earlier multi-box layouts (2-5 digits of 15-56 px) gave a student with
# little small-object mAP (configs/moi/README.md). One copy of these layouts,
# _base_/datasets/digits_layouts.py, serves the on-the-fly config's
# BoxSamplerDataset too.
layout_sampler = dict(_base_.digits_layouts, img_size=img_size)

synthesis = dict(batch_size=8)  # the other run settings: default_runtime.py
