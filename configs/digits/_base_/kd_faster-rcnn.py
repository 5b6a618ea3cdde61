# Shared base of the Faster R-CNN distillation configs on digits-on-photos:
# the student of faster-rcnn_student.py with its own data, pipeline and
# schedule (so "student alone" and "student + KD" differ only in the
# teacher), plus the frozen Faster R-CNN R18-FPN teacher. Leaf configs add
# `distill_losses`; their weights are the losses' reference values (mmdet's
# Faster R-CNN losses are normalised per sample, as those values assume).
# Train the teacher first: make faster-rcnn-teacher.
_base_ = ['../faster-rcnn_student.py']

model = dict(
    _delete_=True,
    type='KDDetector',
    # The student model exactly as faster-rcnn_student.py defines it.
    student={{_base_.model}},
    teacher=dict(
        # Absolute (from this file's folder): loads from any working dir.
        config='{{fileDirname}}/../faster-rcnn_teacher.py',
        # Written by `make faster-rcnn-teacher`; relative to the working dir,
        # like work_dirs.
        checkpoint='work_dirs/faster-rcnn_teacher/final.pth'),
    # Checked against the teacher checkpoint's dataset_meta classes.
    classes={{_base_.metainfo.classes}},
    # Ground truth is available: the student's detection loss at full weight.
    gt_loss_weight=1.0)

# Also logs the frozen teacher's val metrics (once) as teacher/coco/...
custom_hooks = [dict(type='TeacherEvalHook')]
