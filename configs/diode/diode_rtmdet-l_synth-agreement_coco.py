# The teacher-agreement validation set of
# diode_rtmdet-l_rtmdet-tiny_300e_coco.py: images synthesized from mmdet's
# COCO RTMDet-l alone with the data-free recipe (DIODE's, on multi-object
# layouts: diode_rtmdet-l_synth_coco.py), annotated with the teacher's own
# detections (teacher_annotations.json) for validation without real data
# (_base_/datasets/coco_agreement_rtmdet.py). The first training run makes
# it on its own GPUs; to make it beforehand, e.g. on more of them:
#   bash tools/dist_synthesize.sh \
#       configs/diode/diode_rtmdet-l_synth-agreement_coco.py 8 \
#       --out data/coco_agreement_rtmdet --viz
_base_ = './diode_rtmdet-l_synth_coco.py'

synthesis = dict(
    # 768 images, 8 batches of 96, of 2 to 6 targets each: about 3000
    # targets, a few dozen of every one of the 80 classes, plus the further
    # objects false-positive sampling grows. No class's AP then rests on a
    # handful of boxes, and the mean over the 80 on a few thousand, so that
    # checkpoints a little apart are ranked by the student, not by the draw
    # of the set. It is made once per teacher, for under 1 % of the cost of
    # the 120000-image offline pool.
    num_images=768,
    # Disjoint from the training pool and offline sets (seed 0): neither
    # layouts nor initial noise of this set occur in training.
    seed=1000,
    # The distillation config's pseudo-label threshold: the boxes the
    # student is trained to produce.
    teacher_labels=dict(score_thr=0.3))
