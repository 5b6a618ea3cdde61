# Shared base of the Faster R-CNN distillation configs on digits-on-photos:
# the student of configs/detectors/faster-rcnn-r18-x0.5_8e_digits.py with
# its own data, pipeline and schedule (so "student alone" and "student + KD"
# differ only in the teacher), plus the frozen Faster R-CNN R18-FPN teacher
# (configs/detectors/faster-rcnn-r18_8e_digits.py). Leaf configs add
# `distill_losses`; their weights are the losses' reference values (mmdet's
# Faster R-CNN losses are normalised per sample, as those values assume).
# The teacher is the committed fp16 copy of `make faster-rcnn-teacher`'s
# checkpoint; pass model.teacher.checkpoint=... for a retrained one.
_base_ = ['../../detectors/faster-rcnn-r18-x0.5_8e_digits.py']

model = dict(
    _delete_=True,
    type='KDDetector',
    # The student model exactly as its detector config defines it.
    student={{_base_.model}},
    teacher=dict(
        # Absolute (from this file's folder): loads from any working dir.
        config='{{fileDirname}}/../../detectors/faster-rcnn-r18_8e_digits.py',
        # Relative to the working dir (the repository root), like work_dirs.
        checkpoint='checkpoints/digits_faster-rcnn_teacher_fp16.pth'),
    # Checked against the teacher checkpoint's dataset_meta classes.
    classes={{_base_.metainfo.classes}},
    # Ground truth is available: the student's detection loss at full weight.
    det_loss_weight=1.0)

# Also logs the frozen teacher's val metrics (once) as teacher/coco/...
custom_hooks = [dict(type='TeacherEvalHook')]

# The FPN levels at strides 4-64, 64 student and 128 teacher channels, that
# the feature-imitation configs pair (Mimic, PKD):
#   mimic=dict(_base_.neck_channels, type='MimicLoss', ...)
neck_channels = dict(
    student_channels=[64, 64, 64, 64, 64],
    teacher_channels=[128, 128, 128, 128, 128])
