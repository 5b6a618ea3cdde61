# The teacher-agreement validation set of the Faster R-CNN data-free config
# (moi_faster-rcnn-r18_faster-rcnn-r18-x0.5_8e_digits.py): images
# synthesized from the teacher alone with its Multi-Object Impressions
# recipe (moi_faster-rcnn-r18_synth_digits.py), annotated with the teacher's
# own detections (teacher_annotations.json) for validation without real
# data (_base_/datasets/digits_agreement.py with
# agreement_root='data/digits_agreement_frcnn/'). Made once per teacher:
#   python tools/synthesize.py \
#       configs/moi/moi_faster-rcnn-r18_synth-agreement_digits.py \
#       --out data/digits_agreement_frcnn --viz
_base_ = './moi_faster-rcnn-r18_synth_digits.py'

synthesis = dict(
    # 64 images, half the YOLOv3 set: an MOI batch of 8 costs minutes on a
    # CPU (a two-stage teacher's loss and backward), and 64 images of 9
    # targets still give about 500 teacher boxes, enough to rank checkpoints
    # a few hundredths of mAP apart.
    num_images=64,
    # Disjoint from the training pools and offline sets (seed 0): neither
    # layouts nor initial noise of this set occur in training.
    seed=1000,
    # The MOI distillation config's pseudo-label threshold: the boxes the
    # student is trained to produce.
    teacher_labels=dict(score_thr=0.3))
