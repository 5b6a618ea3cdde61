# DIODE synthesis from mmdet's COCO RTMDet-l model-zoo teacher with the
# DIODE recipe (_base_/synthesis/diode_rtmdet-l_coco.py), on layouts of
# several objects (COCO images hold several). For CUDA; several GPUs with
#   bash tools/dist_synthesize.sh \
#       configs/diode/diode_rtmdet-l_synth_coco.py 8 \
#       --out data/diode_rtmdet_coco --num-images 120000
_base_ = [
    '../_base_/synthesis/diode_rtmdet-l_coco.py',
    '../_base_/synthesis/coco.py'
]

teacher = _base_.coco_teachers.rtmdet_l
