# Synthesis from the bundled Faster R-CNN R18-FPN teacher on 2 CPU cores: the
# teacher, the image size, the layouts and the batch shared by the digits
# synthesis configs of this teacher (configs/moi/moi_faster-rcnn-r18_synth*_
# digits.py, configs/diode/diode_faster-rcnn-r18_synth_digits.py), which add
# a synthesizer recipe, with the run settings of default_runtime.py.
_base_ = ['./default_runtime.py', '../datasets/digits_layouts.py']

teacher = dict(
    config='configs/detectors/faster-rcnn-r18_8e_digits.py',
    # The committed fp16 copy of `make faster-rcnn-teacher`'s checkpoint.
    checkpoint='checkpoints/digits_faster-rcnn_teacher_fp16.pth')

img_size = 128
# Layouts: 3x3 cells (9 digits per image) with boxes of 26-100 % of a
# 42.7 px cell, 11-43 px. A data-free choice: the low end is the short side
# of the teacher's smallest anchors (16 px at stride 4 with aspect ratios
# 0.5-2: 11x22 to 22x11 px, _base_/models/faster-rcnn_r18_fpn_digits.py), as
# for the YOLOv3 pair (configs/diode/diode_yolov3-mv2_synth-kd_digits.py).
# The earlier multi-box layouts (2-5 digits of 15-56 px) gave a student with
# little small-object mAP (configs/moi/README.md). One copy of these layouts,
# _base_/datasets/digits_layouts.py, serves the on-the-fly configs'
# BoxSamplerDataset too.
layout_sampler = dict(_base_.digits_layouts, img_size=img_size)

synthesis = dict(batch_size=8)  # the other run settings: default_runtime.py
