# On-the-fly data-free distillation of Faster R-CNN on digits-on-photos with
# DIODE: the MOI config (configs/moi/moi_faster-rcnn-r18_faster-rcnn-r18-x0.5_
# 8e_digits.py: student, teacher, output distillation of both stages,
# pseudo-labels, synthesis schedule, teacher-agreement validation) whose
# synthesizer also matches the teacher's BatchNorm statistics
# (_base_/synthesis/diode_faster-rcnn-r18_digits.py). For a teacher whose BN
# layers learnt the training data's statistics, as the bundled one's did;
# train it first (make faster-rcnn-teacher), then
#   python tools/train.py \
#       configs/diode/diode_faster-rcnn-r18_faster-rcnn-r18-x0.5_8e_digits.py
_base_ = [
    '../_base_/synthesis/hook.py',
    '../kd/output-kl_faster-rcnn-r18_faster-rcnn-r18-x0.5_8e_digits.py',
    '../_base_/synthesis/diode_faster-rcnn-r18_digits.py',
    '../_base_/datasets/digits_agreement_frcnn.py'
]

# As the MOI config: pseudo-labels at 0.3 replace the layouts' boxes, the
# data-free source with Mosaic + HSV, a batch of 8 every 33 iterations after
# 12 initial ones (~800 images over the 8 epochs), validation on the MOI
# teacher-agreement set (the teacher's, whatever the recipe of the
# student's images).
model = dict(pseudo_label=dict(score_thr=0.3, replace_gt=True))
train_dataloader = dict(dataset=_base_.datafree_train_dataset)
custom_hooks = [
    dict(
        _base_.deep_inversion_hook,
        synthesizer=_base_.synthesizer,
        pool_size=1024,
        interval=33,
        batch_size=8,
        initial_batches=12)
    # Then the KD config's TeacherEvalHook.
] + _base_.custom_hooks
val_cfg = _base_.agreement_val_cfg
val_dataloader = _base_.agreement_val_dataloader
val_evaluator = _base_.agreement_val_evaluator
