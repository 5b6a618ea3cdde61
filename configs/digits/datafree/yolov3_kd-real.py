# Row `kd_real` of tools/benchmark_datafree.py: the data-free distillation of
# ../diode_yolov3_kd.py (head-map MSE + the teacher's pseudo-labels) on the
# real training images instead of synthesized ones. The images' labels are
# not used: the teacher's detections replace them (pseudo_label
# replace_gt=True), so only the images differ between the kd_* rows.
#   python tools/train.py configs/digits/datafree/yolov3_kd-real.py
_base_ = '../diode_yolov3_kd.py'

# A loading-only COCO source (_base_/datafree_kd_data.py); the base's
# kd_pipeline (Mosaic, ...) follows.
train_dataloader = dict(
    dataset=dict(
        dataset=dict(
            _base_.coco_loading_dataset,
            _delete_=True,
            data_root=_base_.data_root,
            ann_file='annotations/train.json',
            metainfo=_base_.metainfo)))

custom_hooks = [dict(type='TeacherEvalHook')]
