# The teacher-agreement validation set of the YOLOv3 data-free configs: 128
# images synthesized from the teacher alone with the data-free recipe
# (synth_diode_yolov3_kd.py), annotated with the teacher's own detections
# (teacher_annotations.json) for validation without real data
# (_base_/datafree_agreement_val.py). Made once per teacher:
#   python tools/synthesize.py configs/digits/synth_diode_yolov3_agreement.py \
#       --out data/digits_agreement_yolov3 --viz
_base_ = './synth_diode_yolov3_kd.py'

synthesis = dict(
    # 128 images: ~1000 teacher boxes, enough for mAP differences of 0.01
    # between checkpoints, a few seconds to validate on.
    num_images=128,
    # Disjoint from the training pools and offline sets (seed 0): neither
    # layouts nor initial noise of this set occur in training.
    seed=1000,
    # The distillation configs' pseudo-label threshold: the boxes the
    # student is trained to produce.
    teacher_labels=dict(score_thr=0.3))
