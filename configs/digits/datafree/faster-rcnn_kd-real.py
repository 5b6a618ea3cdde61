# Row `kd_real` of tools/benchmark_datafree.py: the data-free distillation of
# ../moi_faster-rcnn_kd.py (RPN and RoI output KD + the teacher's
# pseudo-labels) on the real training images instead of synthesized ones.
# The images' labels are not used: the teacher's detections replace them
# (pseudo_label replace_gt=True), so only the images differ between the kd_* rows.
#   python tools/train.py configs/digits/datafree/faster-rcnn_kd-real.py
_base_ = '../moi_faster-rcnn_kd.py'

train_dataloader = dict(
    dataset=dict(
        dataset=dict(
            _delete_=True,
            type='CocoDataset',
            data_root={{_base_.data_root}},
            metainfo={{_base_.metainfo}},
            ann_file='annotations/train.json',
            data_prefix=dict(img=''),
            filter_cfg=dict(filter_empty_gt=False),
            # Loading only: the base's kd_pipeline (Mosaic, ...) follows.
            pipeline=[
                dict(type='LoadImageFromFile'),
                dict(type='LoadAnnotations', with_bbox=True)
            ])))

# No synthesis: only the teacher's val metrics hook stays.
custom_hooks = [dict(type='TeacherEvalHook')]
