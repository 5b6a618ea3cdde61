# Shared base of the YOLOv3 distillation configs on digits-on-photos: the
# student of configs/detectors/yolov3-mv2-x0.5_24e_digits.py with its own
# data, pipeline and schedule (so "student alone" and "student + KD" differ
# only in the teacher), plus the frozen YOLOv3-MobileNetV2 teacher
# (configs/detectors/yolov3-mv2_24e_digits.py). Leaf configs add
# `distill_losses`.
# The teacher checkpoint is committed (checkpoints/, see below).
#
# Loss weights in the leaf configs are 50x their reference values (published
# or the losses' defaults, which assume mmdet's usual per-object-normalised
# detection losses): mmdet's YOLOv3 head sums its losses over the batch
# (reduction='sum'), about 16 images x 3 digits = ~50 objects per batch here.
_base_ = ['../../detectors/yolov3-mv2-x0.5_24e_digits.py']

model = dict(
    _delete_=True,
    type='KDDetector',
    # The student model exactly as its detector config defines it.
    student={{_base_.model}},
    teacher=dict(
        # Absolute (from this file's folder): loads from any working dir.
        config='{{fileDirname}}/../../detectors/yolov3-mv2_24e_digits.py',
        # The committed fp16 copy of `make yolov3-teacher`'s checkpoint
        # (same test mAP), relative to the working dir; a retrained one:
        # model.teacher.checkpoint=work_dirs/yolov3_teacher/final.pth
        checkpoint='checkpoints/digits_yolov3_teacher_fp16.pth'),
    # Checked against the teacher checkpoint's dataset_meta classes.
    classes={{_base_.metainfo.classes}},
    # Ground truth is available: the student's detection loss at full weight.
    det_loss_weight=1.0)

# Also logs the frozen teacher's val metrics (once) as teacher/coco/...
custom_hooks = [dict(type='TeacherEvalHook')]

# The neck levels at strides 32/16/8, 48 student and 96 teacher channels,
# that the feature-imitation configs pair (FitNet, FGFI, PKD):
#   fitnet=dict(_base_.neck_channels, type='FitNetLoss', ...)
neck_channels = dict(
    student_channels=[48, 48, 48], teacher_channels=[96, 96, 96])
