# The classes of the data-free COCO configs' teachers (mmdet's CocoDataset
# order), used as `_base_.coco_classes` by
# configs/diode/diode_yolov3-d53_yolov3-d53_273e_coco.py,
# configs/diode/diode_rtmdet-l_rtmdet-tiny_300e_coco.py and
# configs/moi/moi_faster-rcnn-r50_faster-rcnn-r18_1x_coco.py: their
# synthesized train sets have no annotation file to read them from.
coco_classes = (
    'person', 'bicycle', 'car', 'motorcycle', 'airplane', 'bus', 'train',
    'truck', 'boat', 'traffic light', 'fire hydrant', 'stop sign',
    'parking meter', 'bench', 'bird', 'cat', 'dog', 'horse', 'sheep', 'cow',
    'elephant', 'bear', 'zebra', 'giraffe', 'backpack', 'umbrella',
    'handbag', 'tie', 'suitcase', 'frisbee', 'skis', 'snowboard',
    'sports ball', 'kite', 'baseball bat', 'baseball glove', 'skateboard',
    'surfboard', 'tennis racket', 'bottle', 'wine glass', 'cup', 'fork',
    'knife', 'spoon', 'bowl', 'banana', 'apple', 'sandwich', 'orange',
    'broccoli', 'carrot', 'hot dog', 'pizza', 'donut', 'cake', 'chair',
    'couch', 'potted plant', 'bed', 'dining table', 'toilet', 'tv', 'laptop',
    'mouse', 'remote', 'keyboard', 'cell phone', 'microwave', 'oven',
    'toaster', 'sink', 'refrigerator', 'book', 'clock', 'vase', 'scissors',
    'teddy bear', 'hair drier', 'toothbrush')

# Layouts of several objects per image, as COCO images hold several: those of
# the COCO synthesis configs (_base_/synthesis/coco.py) and of the on-the-fly
# training sets below.
coco_layouts = dict(
    type='BoxLayoutSampler', strategy='multi-box', min_boxes=2, max_boxes=6,
    max_iou=0.35, min_size=0.1, max_size=0.6)

# The on-the-fly training set of the multi-object data-free COCO configs
# (configs/diode/diode_rtmdet-l_rtmdet-tiny_300e_coco.py,
# configs/moi/moi_faster-rcnn-r50_faster-rcnn-r18_1x_coco.py): 320 px
# layouts, synthesized into the run's pool (<work_dir>/pool); DIODE's
# data set size per epoch; the student trains near the synthesized
# resolution.
coco_datafree_dataset = dict(
    type='BoxSamplerDataset',
    metainfo=dict(classes=coco_classes),
    layout_sampler=coco_layouts,
    num_samples=120000,
    img_size=320,
    seed=0,
    pipeline=[
        dict(type='RandomResize', scale=[(320, 320), (480, 480)],
             keep_ratio=True),
        dict(type='RandomFlip', prob=0.5),
        dict(type='PackDetInputs')
    ])

# The train loader of the on-the-fly COCO configs, replacing the whole of
# mmdet's that they inherit; each adds its batch size and workers, and
# configs/diode/diode_yolov3-d53_yolov3-d53_273e_coco.py its own training
# set (DIODE's one-box layouts):
#   train_dataloader = dict(_base_.coco_datafree_dataloader, batch_size=...,
#                           num_workers=...)
coco_datafree_dataloader = dict(
    _delete_=True,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=coco_datafree_dataset)

# The end of the test pipeline on real COCO val2017 (optional) of the
# multi-object configs above: the boxes for the metric, then mmdet's packing
# with its test meta keys. Each puts its own loading and resizing in front
# (to the scale its student trained at):
#   test_pipeline = [dict(type='LoadImageFromFile'), ...
#                    ] + _base_.coco_val_packing
coco_val_packing = [
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor'))
]
