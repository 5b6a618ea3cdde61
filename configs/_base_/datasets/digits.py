# The data of the bundled digits-on-photos benchmark
# (tools/make_digits_dataset.py), the one copy of it: the real splits, the
# proxy set and the data-free sources, with their pipelines. Both detector
# bases (_base_/models/*_digits.py) inherit this file, so every digits config
# has these keys. They inherit whole mmdet configs too, which define
# data_root, the pipelines, loaders and evaluators themselves (two bases of
# one config may not define the same key), so most of it is named building
# blocks, used as `_base_.NAME` (configs/README.md):
#   digits_train_pipeline, digits_test_pipeline: the detectors' pipelines;
#   digits_dataset:       the settings of every split's CocoDataset;
#   kd_pipeline:          the distillation augmentation, run by the mix
#                         wrapper (MultiImageMixDataset) around every source
#                         of the data-free configs;
#   box_sampler_dataset:  the on-the-fly source (synthesized images);
#   datafree_train_dataset: the on-the-fly train set, Mosaic and all;
#   coco_loading_dataset: a COCO source that only loads (real, proxy or
#                         offline-synthesized images);
#   real_source, proxy_source: the real train split and the proxy set as
#                         such sources (the data-free benchmark's rows);
#   synth_source:         an offline-synthesized set as such a source,
#                         repeated.
# The data-free configs (configs/diode/diode_yolov3-mv2_yolov3-mv2-x0.5_24e_
# digits.py, configs/moi/moi_faster-rcnn-r18_faster-rcnn-r18-x0.5_8e_digits.py
# and the rows under configs/datafree/, derived from them) share them, so the
# rows of a pair differ only in where their images come from.
_base_ = './digits_layouts.py'

# The teacher's classes, in its label order.
metainfo = dict(classes=('0', '1', '2', '3', '4', '5', '6', '7', '8', '9'))
# The benchmark's image size: the students' input and the synthesized
# images' side.
img_scale = (128, 128)
img_size = 128

# No flips: digits are not mirror-symmetric (a flipped 2 is no 2). A mild
# translation/scale jitter generalises to the test split's unseen photos; the
# detectors' train pipeline and the distillation augmentation both use it.
# mmdet's RandomAffine keeps the canvas's top-left corner, not its centre, so
# its border option is not used.
digits_jitter = dict(
    type='RandomAffine',
    max_rotate_degree=0.0,
    max_shear_degree=0.0,
    max_translate_ratio=0.1,
    scaling_ratio_range=(0.8, 1.2),
    border_val=(114, 114, 114))
digits_train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    digits_jitter,
    dict(type='PackDetInputs')
]
digits_test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor'))
]
# The settings of every split's data set; each split adds its own.
digits_dataset = dict(
    data_root='data/digits/', metainfo=metainfo, data_prefix=dict(img=''))

# DIODE's distillation augmentation: mosaic + HSV. A replay pool holds a
# few hundred images: Mosaic recombines four of them into new layouts and
# backgrounds, and the student always learns what the teacher predicts on the
# very image it sees (head maps, RPN/RoI outputs and pseudo-labels), so no
# augmentation can make a label wrong. The 2x2 mosaic is not resized
# (center_ratio_range 1.0) and a random 128 px window of it kept, so objects
# keep their size; then the detectors' jitter and HSV.
kd_pipeline = [
    dict(type='Mosaic',
         img_scale=img_scale,
         center_ratio_range=(1.0, 1.0),
         pad_val=114.0),
    dict(type='RandomCrop', crop_size=img_scale, allow_negative_crop=True),
    digits_jitter,
    dict(type='YOLOXHSVRandomAug'),
    dict(type='PackDetInputs')
]

# Synthesized on the fly, on the layouts of the offline sets' synthesis
# configs (digits_layouts.py: 3x3 tiles, 9 digits/image, 11-43 px boxes),
# into the replay pool of the run's DeepInversionHook (<work_dir>/pool). A
# config using it adds its `metainfo`.
box_sampler_dataset = dict(
    type='BoxSamplerDataset',
    layout_sampler=_base_.digits_layouts,
    num_samples=3000,  # an epoch as long as the real train split's
    img_size=img_size,
    seed=0,
    # The data set does the loading; the mix pipeline the rest.
    pipeline=[])
# The on-the-fly train set of the data-free configs, replacing the KD
# config's: the source in the mix wrapper that runs kd_pipeline.
#   train_dataloader = dict(dataset=_base_.datafree_train_dataset)
datafree_train_dataset = dict(
    _delete_=True,
    type='MultiImageMixDataset',
    dataset=dict(box_sampler_dataset, metainfo=metainfo),
    pipeline=kd_pipeline)

# Images and boxes from a COCO json, loading only (kd_pipeline follows). A
# config using it adds `data_root`, `ann_file` and `metainfo`. Images
# without boxes stay: the teacher's pseudo-labels replace the json's boxes.
coco_loading_dataset = dict(
    type='CocoDataset',
    data_prefix=dict(img=''),
    filter_cfg=dict(filter_empty_gt=False),
    pipeline=[
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations', with_bbox=True)
    ])
# The real train split as such a source, replacing the on-the-fly one:
#   train_dataloader = dict(dataset=dict(dataset=_base_.real_source))
real_source = dict(
    coco_loading_dataset,
    _delete_=True,
    data_root=digits_dataset['data_root'],
    ann_file='annotations/train.json',
    metainfo=metainfo)
# The out-of-distribution proxy set (3000 crops of photographs without
# digits, `make data`), merged into real_source.
proxy_source = dict(
    data_root='data/digits_proxy/', ann_file='annotations/proxy.json')
# An offline set written by tools/synthesize.py as such a source, in the
# offline rows (configs/datafree/*-synth.py), repeated so that an epoch has
# as many images as the real train split (times x the set's size = 3000:
# 15 for the rows' 200-image sets). A config using it adds the `data_root`
# of its set to the inner source (the data-free benchmark overrides that
# key and `times` for other sets):
#   train_dataloader = dict(dataset=dict(dataset=dict(
#       _base_.synth_source,
#       dataset=dict(_base_.synth_source.dataset, data_root=DIR))))
synth_source = dict(
    _delete_=True,
    type='RepeatDataset',
    times=15,
    dataset=dict(
        coco_loading_dataset, ann_file='annotations.json', metainfo=metainfo))
