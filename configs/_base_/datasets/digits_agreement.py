# Validation without real data ("teacher agreement"), the default of the
# data-free digits configs: the student's detections on a held-out synthetic
# set scored by mmdet's CocoMetric against the teacher's own detections
# (mmdiode.evaluation.teacher_agreement). TeacherAgreementValLoop synthesizes
# the set into `agreement_root` with the training teacher on the first run
# (the recipe: the *_synth-agreement_* config of `synthesis_config`) and
# every later run reuses it. The settings are building blocks, because the
# real-data validation of the detector configs comes through another base:
#   val_cfg = _base_.agreement_val_cfg
#   val_dataloader = _base_.agreement_val_dataloader
#   val_evaluator = _base_.agreement_val_evaluator
# Metrics are logged as agreement/bbox_mAP, agreement/bbox_mAP_50, ...;
# save_best='auto' keeps the checkpoint that agrees best (the first metric).
# This file is the YOLOv3 teacher's set; digits_agreement_frcnn.py the
# Faster R-CNN teacher's.
agreement_root = 'data/digits_agreement_yolov3/'
# The teacher's classes, in its label order (CocoMetric maps labels to the
# json's categories by these names).
agreement_metainfo = dict(
    classes=('0', '1', '2', '3', '4', '5', '6', '7', '8', '9'))

agreement_val_cfg = dict(
    _delete_=True,
    type='TeacherAgreementValLoop',
    synthesis_config='configs/diode/'
    'diode_yolov3-mv2_synth-agreement_digits.py')
agreement_val_dataloader = dict(
    _delete_=True,
    batch_size=16,
    num_workers=0,  # a few seconds of work: no worker process to start
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='CocoDataset',
        data_root=agreement_root,
        ann_file='teacher_annotations.json',
        metainfo=agreement_metainfo,
        data_prefix=dict(img=''),
        test_mode=True,
        # The images are at the students' input size already: no resize
        # (Resize(scale_factor=1.0) records the scale factor mmdet needs).
        pipeline=[
            dict(type='LoadImageFromFile'),
            dict(type='Resize', scale_factor=1.0, keep_ratio=True),
            dict(type='LoadAnnotations', with_bbox=True),
            dict(type='PackDetInputs',
                 meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                            'scale_factor'))
        ]))
agreement_val_evaluator = dict(
    _delete_=True,
    type='CocoMetric',
    ann_file=agreement_root + 'teacher_annotations.json',
    metric='bbox',
    prefix='agreement')
