# The offline sets of the digits YOLOv3 data-free distillation (the data-free
# benchmark's kd_synth_offline and ablate_* rows): the synthesizer of the
# on-the-fly config diode_yolov3-mv2_yolov3-mv2-x0.5_24e_digits.py (DIODE's
# recipe with a 10x stronger BN prior, one copy in
# _base_/synthesis/diode-kd_yolov3-mv2_digits.py) and denser layouts of
# smaller boxes than diode_yolov3-mv2_synth_digits.py.
#   python tools/synthesize.py \
#       configs/diode/diode_yolov3-mv2_synth-kd_digits.py \
#       --out data/synth_yolov3 --num-images 500 --viz
_base_ = [
    '../_base_/synthesis/teacher_yolov3-mv2_digits.py',
    '../_base_/synthesis/diode-kd_yolov3-mv2_digits.py',
    '../_base_/datasets/digits_layouts.py'
]

# Layouts: 3x3 cells (9 digits per image) with boxes of 26-100 % of a
# 42.7 px cell, 11-43 px, the size range of the teacher's own YOLO anchors
# (11x14 to 39x51 px, _base_/models/yolov3_mobilenetv2_digits.py): a
# data-free choice, the anchors are part of the model. The 2x2 cells with
# 22-54 px boxes of diode_yolov3-mv2_synth_digits.py leave out the small
# end, and a student distilled on them did poorly on small digits; with 9
# objects per image a synthesized image also carries more than a real one
# (3.5). The teacher finds fewer of the targets in these layouts; the
# student learns from its detections, not from the targets. The
# measurements are in configs/diode/README.md. One copy of these layouts,
# _base_/datasets/digits_layouts.py, serves the on-the-fly config's
# BoxSamplerDataset too.
layout_sampler = dict(_base_.digits_layouts, img_size={{_base_.img_size}})
