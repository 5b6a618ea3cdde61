# The teacher-agreement validation set of
# moi_faster-rcnn-r50_faster-rcnn-r18_1x_coco.py: impressions synthesized
# from mmdet's COCO Faster R-CNN R50-FPN alone with its Multi-Object
# Impressions recipe (moi_faster-rcnn-r50_synth_coco.py), annotated with
# the teacher's own detections (teacher_annotations.json) for validation
# without real data (_base_/datasets/coco_agreement_frcnn.py). The first
# training run makes it on its own GPUs; to make it beforehand, e.g. on
# more of them:
#   bash tools/dist_synthesize.sh \
#       configs/moi/moi_faster-rcnn-r50_synth-agreement_coco.py 8 \
#       --out data/coco_agreement_frcnn --viz
_base_ = './moi_faster-rcnn-r50_synth_coco.py'

synthesis = dict(
    # 1536 images, 48 batches of 32, of 2 to 6 targets each. MOI draws an
    # image's classes itself: the first uniformly, the others mostly the
    # same or a similar class, so a class comes in whole images and its
    # count varies far more than the layouts' classes would. Twice the
    # images of the RTMDet-l set keep the rarest classes in ten or so
    # images, a few dozen boxes each class, and the mean over the 80 on
    # several thousand, so that checkpoints a little apart are ranked by
    # the student, not by the draw of the set. It is made once per teacher,
    # for about 1 % of the cost of the 120000-image offline pool.
    num_images=1536,
    # Disjoint from the training pool and offline sets (seed 0): neither
    # layouts nor initial noise of this set occur in training.
    seed=1000,
    # The MOI distillation config's pseudo-label threshold: the boxes the
    # student is trained to produce.
    teacher_labels=dict(score_thr=0.3))
