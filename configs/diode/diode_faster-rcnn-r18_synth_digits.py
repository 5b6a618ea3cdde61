# DIODE from the bundled Faster R-CNN teacher: Multi-Object Impressions'
# third schedule with the BatchNorm-statistics prior (the synthesizer of
# _base_/synthesis/diode_faster-rcnn-r18_digits.py, shared with the
# on-the-fly config diode_faster-rcnn-r18_faster-rcnn-r18-x0.5_8e_digits.py);
# the teacher, layouts and batch of the MOI sets
# (_base_/synthesis/teacher_faster-rcnn-r18_digits.py).
#   python tools/synthesize.py \
#       configs/diode/diode_faster-rcnn-r18_synth_digits.py \
#       --out data/synth_frcnn_diode --num-images 200 --viz
_base_ = [
    '../_base_/synthesis/diode_faster-rcnn-r18_digits.py',
    '../_base_/synthesis/teacher_faster-rcnn-r18_digits.py'
]
