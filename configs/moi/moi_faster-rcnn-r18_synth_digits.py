# Multi-Object Impressions from the bundled Faster R-CNN teacher (no data
# statistics: no BatchNorm prior). Class choices per image follow the
# similarity of the teacher's classifier weights; pseudo-targets are
# refreshed from the teacher's own confident detections. The synthesizer is
# _base_/synthesis/moi_faster-rcnn-r18_digits.py, shared with the on-the-fly
# config moi_faster-rcnn-r18_faster-rcnn-r18-x0.5_8e_digits.py; the teacher,
# layouts and batch are _base_/synthesis/teacher_faster-rcnn-r18_digits.py.
#   python tools/synthesize.py \
#       configs/moi/moi_faster-rcnn-r18_synth_digits.py \
#       --out data/synth_frcnn --num-images 1000 --viz
_base_ = [
    '../_base_/synthesis/moi_faster-rcnn-r18_digits.py',
    '../_base_/synthesis/teacher_faster-rcnn-r18_digits.py'
]
