# moi_faster-rcnn-r18_synth_digits.py with the synthesizer's early exit in
# both stages: a batch leaves a stage once the teacher finds at least 90 % of
# its targets (score >= 0.3, IoU >= 0.5). MOI weighs no BN prior, so that is
# the only condition (DeepInversion's early_exit, docs/en/synthesis.md,
# "Early exit").
#   python tools/synthesize.py \
#       configs/moi/moi_faster-rcnn-r18_synth-early-exit_digits.py \
#       --out data/synth_frcnn_early_exit --num-images 200 --viz
_base_ = './moi_faster-rcnn-r18_synth_digits.py'

# Every stage may end early (stages=None): without the BN prior nothing but
# the teacher's own detections says that an image is done, and a Faster
# R-CNN teacher is asked for whole objects from the 64 px stage on.
synthesizer = dict(early_exit=dict(enable=True, stages=None))
