# The teacher-agreement validation set of the YOLOv3 data-free configs: 128
# images synthesized from the teacher alone with the data-free recipe
# (diode_yolov3-mv2_synth-kd_digits.py), annotated with the teacher's own
# detections (teacher_annotations.json) for validation without real data
# (_base_/datasets/digits_agreement.py). Made once per teacher:
#   python tools/synthesize.py \
#       configs/diode/diode_yolov3-mv2_synth-agreement_digits.py \
#       --out data/digits_agreement_yolov3 --viz
_base_ = './diode_yolov3-mv2_synth-kd_digits.py'

synthesis = dict(
    # 128 images: ~1000 teacher boxes, enough for mAP differences of 0.01
    # between checkpoints, a few seconds to validate on.
    num_images=128,
    # Disjoint from the training pools and offline sets (seed 0): neither
    # layouts nor initial noise of this set occur in training.
    seed=1000,
    # The distillation configs' pseudo-label threshold: the boxes the
    # student is trained to produce.
    teacher_labels=dict(score_thr=0.15))
