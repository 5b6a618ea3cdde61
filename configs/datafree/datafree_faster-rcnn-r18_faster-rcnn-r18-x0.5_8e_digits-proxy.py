# Row `kd_proxy` of tools/benchmark_datafree.py: the data-free distillation
# of configs/moi/moi_faster-rcnn-r18_faster-rcnn-r18-x0.5_8e_digits.py
# on the out-of-distribution proxy set (3000 crops of photographs without
# digits, `make data`), labelled by the teacher's pseudo-labels only.
_base_ = '../moi/moi_faster-rcnn-r18_faster-rcnn-r18-x0.5_8e_digits.py'

# A loading-only COCO source (_base_/datasets/digits_datafree.py); the base's
# kd_pipeline (Mosaic, ...) follows.
train_dataloader = dict(
    dataset=dict(
        dataset=dict(
            _base_.coco_loading_dataset,
            _delete_=True,
            data_root='data/digits_proxy/',
            ann_file='annotations/proxy.json',
            metainfo=_base_.metainfo)))

custom_hooks = [dict(type='TeacherEvalHook')]
