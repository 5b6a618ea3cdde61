# The layouts of the digits data-free distillation, the one copy of them: 3x3
# tiles (9 digits per image) with boxes of 26-100 % of a tile, 11-43 px at
# 128 px (the YOLOv3 teacher's anchor sizes), each class as often as the
# others. The on-the-fly source (box_sampler_dataset of digits.py) and the
# offline sets' synthesis configs
# (configs/diode/diode_yolov3-mv2_synth-kd_digits.py,
# configs/moi/moi_faster-rcnn-r18_synth_digits.py, which add img_size) use
# them, so the kd_synth_online and kd_synth_offline rows differ only in when
# the images are made.
digits_layouts = dict(
    type='BoxLayoutSampler', strategy='tiling', tiles_per_side=3,
    min_size=0.26, max_size=1.0, class_balanced=True)
