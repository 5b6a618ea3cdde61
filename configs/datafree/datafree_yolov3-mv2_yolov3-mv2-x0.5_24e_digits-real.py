# Row `kd_real` of tools/benchmark_datafree.py: the data-free distillation
# of configs/diode/diode_yolov3-mv2_yolov3-mv2-x0.5_24e_digits.py
# (head-map MSE + the teacher's pseudo-labels) on the real training images
# instead of synthesized ones. The images' labels are not used: the
# teacher's detections replace them (pseudo_label replace_gt=True), so only
# the images differ between the kd_* rows.
_base_ = '../diode/diode_yolov3-mv2_yolov3-mv2-x0.5_24e_digits.py'

# The real train split as a loading-only COCO source
# (_base_/datasets/digits.py); the base's kd_pipeline (Mosaic, ...) follows.
train_dataloader = dict(dataset=dict(dataset=_base_.real_source))

custom_hooks = [dict(type='TeacherEvalHook')]
