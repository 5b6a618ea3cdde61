# The teacher-agreement validation set of
# diode_yolov3-d53_yolov3-d53_273e_coco.py: images synthesized from mmdet's
# COCO YOLOv3-D53 alone with the data-free recipe (DIODE's, on its one-box
# layouts: diode_yolov3-d53_synth_coco.py), annotated with the teacher's own
# detections (teacher_annotations.json) for validation without real data
# (_base_/datasets/coco_agreement.py). The first training run makes it on
# its own GPUs; to make it beforehand, e.g. on more of them:
#   bash tools/dist_synthesize.sh \
#       configs/diode/diode_yolov3-d53_synth-agreement_coco.py 8 \
#       --out data/coco_agreement_yolov3 --viz
_base_ = './diode_yolov3-d53_synth_coco.py'

synthesis = dict(
    # 1536 images, 16 batches of 96. A one-box layout holds one target, so
    # this set takes twice the images of the multi-object COCO sets: 19 or
    # 20 targets of every one of the 80 classes (class-balanced below), plus
    # the further objects false-positive sampling grows. No class's AP then
    # rests on a handful of boxes, and the mean over the 80 on a few
    # thousand, so that checkpoints a little apart are ranked by the
    # student, not by the draw of the set. It is made once per teacher, for
    # about 1 % of the cost of the 120000-image offline pool.
    num_images=1536,
    # Disjoint from the training pool and offline sets (seed 0): neither
    # layouts nor initial noise of this set occur in training.
    seed=1000,
    # The distillation config has no pseudo-labels whose threshold the set
    # could take: its student learns the teacher's raw head maps (MSE). 0.2
    # is the score from which the recipe itself takes a teacher detection
    # for an object (the synthesizer's fp_sampling.score_thr), lower than
    # the 0.3 of the COCO pseudo-label configs because a teacher is less
    # confident on synthesized images than on photos.
    teacher_labels=dict(score_thr=0.2))

# Classes drawn in a balanced cycle instead of independently (the same
# frequency per class as the training layouts): with one target per image,
# independent draws would leave some classes with half of their share.
layout_sampler = dict(class_balanced=True)
