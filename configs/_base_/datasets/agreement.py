# Validation without real data ("teacher agreement"), the default of the
# data-free configs: the student's detections on a held-out synthetic set
# scored by mmdet's CocoMetric against the teacher's own detections
# (mmdiode.evaluation.teacher_agreement). TeacherAgreementValLoop synthesizes
# the set into the val dataset's data_root with the training teacher on the
# first run (the recipe: the *_synth-agreement_* config of
# `synthesis_config`) and every later run reuses it.
#
# The blocks here are what every teacher's set shares. One file per data set
# and teacher completes them with the set's folder, the teacher's classes
# and its recipe (digits_agreement.py, digits_agreement_frcnn.py,
# coco_agreement.py, coco_agreement_rtmdet.py, coco_agreement_frcnn.py):
#   agreement_val_cfg = dict(synthesis_config='configs/...agreement...py')
#   agreement_val_dataloader = dict(
#       dataset=dict(data_root=ROOT, metainfo=dict(classes=...)))
#   agreement_val_evaluator = dict(ann_file=ROOT + 'teacher_annotations.json')
# The blocks are building blocks, because the real-data validation of the
# detector configs comes through another base; a data-free config replaces
# it with them:
#   val_cfg = _base_.agreement_val_cfg
#   val_dataloader = _base_.agreement_val_dataloader
#   val_evaluator = _base_.agreement_val_evaluator
# Metrics are logged as agreement/bbox_mAP, agreement/bbox_mAP_50, ...;
# save_best='auto' keeps the checkpoint that agrees best (the first metric).
agreement_val_cfg = dict(_delete_=True, type='TeacherAgreementValLoop')
agreement_val_dataloader = dict(
    _delete_=True,
    batch_size=16,
    num_workers=0,  # a few seconds of work: no worker process to start
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='CocoDataset',
        ann_file='teacher_annotations.json',
        data_prefix=dict(img=''),
        test_mode=True,
        # The images are synthesized at the size their students are tested
        # at already: no resize (Resize(scale_factor=1.0) records the scale
        # factor mmdet needs).
        pipeline=[
            dict(type='LoadImageFromFile'),
            dict(type='Resize', scale_factor=1.0, keep_ratio=True),
            dict(type='LoadAnnotations', with_bbox=True),
            dict(type='PackDetInputs',
                 meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                            'scale_factor'))
        ]))
agreement_val_evaluator = dict(
    _delete_=True, type='CocoMetric', metric='bbox', prefix='agreement')
