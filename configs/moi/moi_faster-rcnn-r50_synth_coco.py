# Multi-Object Impressions from mmdet's COCO Faster R-CNN R50-FPN model-zoo
# teacher (no data statistics), with the synthesizer of
# _base_/synthesis/moi_faster-rcnn-r50_coco.py. For CUDA; several GPUs with
#   bash tools/dist_synthesize.sh \
#       configs/moi/moi_faster-rcnn-r50_synth_coco.py 8 \
#       --out data/moi_coco --num-images 120000
_base_ = [
    '../_base_/synthesis/moi_faster-rcnn-r50_coco.py',
    '../_base_/synthesis/coco.py'
]

teacher = _base_.coco_teachers.faster_rcnn_r50

synthesis = dict(batch_size=32)  # the other settings: coco.py
