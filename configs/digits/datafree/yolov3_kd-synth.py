# Rows `kd_synth_offline` and `ablate_*` of tools/benchmark_datafree.py: the
# data-free distillation of ../diode_yolov3_kd.py on a data set written
# beforehand by tools/synthesize.py (no synthesis during training):
#   python tools/synthesize.py configs/digits/synth_diode_yolov3_kd.py \
#       --out data/synth_yolov3 --num-images 200
#   python tools/train.py configs/digits/datafree/yolov3_kd-synth.py
# The set is repeated so that an epoch has as many images as the real train
# split (3000): every kd_* row trains for the same number of iterations.
# Another set: --cfg-options
# train_dataloader.dataset.dataset.dataset.data_root=DIR
# train_dataloader.dataset.dataset.times=T (T x its size = 3000).
_base_ = '../diode_yolov3_kd.py'

train_dataloader = dict(
    dataset=dict(
        dataset=dict(
            _delete_=True,
            type='RepeatDataset',
            times=15,
            dataset=dict(
                type='CocoDataset',
                data_root='data/synth_yolov3/',
                metainfo={{_base_.metainfo}},
                ann_file='annotations.json',
                data_prefix=dict(img=''),
                filter_cfg=dict(filter_empty_gt=False),
                # Loading only: the base's kd_pipeline (Mosaic, ...)
                # follows.
                pipeline=[
                    dict(type='LoadImageFromFile'),
                    dict(type='LoadAnnotations', with_bbox=True)
                ]))))

custom_hooks = [dict(type='TeacherEvalHook')]
