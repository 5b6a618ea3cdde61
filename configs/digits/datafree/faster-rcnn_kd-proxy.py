# Row `kd_proxy` of tools/benchmark_datafree.py: the data-free distillation of
# ../moi_faster-rcnn_kd.py on the out-of-distribution proxy set (3000 crops of
# photographs without digits, `make data`), labelled by the teacher's
# pseudo-labels only.
#   python tools/train.py configs/digits/datafree/faster-rcnn_kd-proxy.py
_base_ = '../moi_faster-rcnn_kd.py'

train_dataloader = dict(
    dataset=dict(
        dataset=dict(
            _delete_=True,
            type='CocoDataset',
            data_root='data/digits_proxy/',
            metainfo={{_base_.metainfo}},
            ann_file='annotations/proxy.json',
            data_prefix=dict(img=''),
            filter_cfg=dict(filter_empty_gt=False),
            # Loading only: the base's kd_pipeline (Mosaic, ...) follows.
            pipeline=[
                dict(type='LoadImageFromFile'),
                dict(type='LoadAnnotations', with_bbox=True)
            ])))

custom_hooks = [dict(type='TeacherEvalHook')]
