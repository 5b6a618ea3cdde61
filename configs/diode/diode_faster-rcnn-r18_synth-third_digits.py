# DIODE on the Faster R-CNN R18-FPN teacher: the MOI recipe on a third of
# its schedule (moi_faster-rcnn-r18_synth-third_digits.py) with the
# BatchNorm-statistics prior on. The teacher's BN layers train from scratch
# (_base_/models/faster-rcnn_r18_fpn_digits.py), so their running statistics
# are the training data's, which MOI leaves unused. Labels come from the
# layout sampler as in every DIODE recipe (not MOI's class co-occurrence).
#   python tools/synthesize.py \
#       configs/diode/diode_faster-rcnn-r18_synth-third_digits.py \
#       --out data/synth_frcnn_diode --num-images 200 --viz
_base_ = '../moi/moi_faster-rcnn-r18_synth-third_digits.py'

synthesizer = dict(
    _delete_=True,
    type='DeepInversion',
    # Weight 0.001, not the YOLOv3 recipe's 1.0: this teacher's BN prior is
    # ~9x YOLOv3's on noise, and at weights >= 0.01 a 100-iteration schedule
    # neither satisfies it nor leaves objects the teacher finds; 0.001 keeps
    # the teacher's fidelity near the YOLOv3 recipe's targets
    # (docs/en/benchmarks.md, "DIODE on the Faster R-CNN teacher").
    bn_prior=dict(weight=0.001, p=2, first_bn_multiplier=2.0,
                  layer_pattern='.*'),
    image_prior=_base_.synthesizer.image_prior,
    task_loss=_base_.synthesizer.task_loss,
    augment=_base_.synthesizer.augment,
    stages=_base_.synthesizer.stages,
    fp_sampling=_base_.synthesizer.fp_sampling,
    amp=_base_.synthesizer.amp,
    channels_last=_base_.synthesizer.channels_last)
