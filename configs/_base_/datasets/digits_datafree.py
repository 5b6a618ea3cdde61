# The training data of every data-free KD config on the digits benchmark
# (configs/diode/diode_yolov3-mv2_yolov3-mv2-x0.5_24e_digits.py,
# configs/moi/moi_faster-rcnn-r18_faster-rcnn-r18-x0.5_8e_digits.py and the
# data-free benchmark's rows under configs/datafree/, derived from them), so
# the rows of a pair differ only in where their images come from. Three
# building blocks, used as
# `_base_.NAME` by those configs (and digits_layouts of digits_layouts.py):
#   kd_pipeline:          the distillation augmentation, run by the mix
#                         wrapper (MultiImageMixDataset) around every source;
#   box_sampler_dataset:  the on-the-fly source (synthesized images);
#   coco_loading_dataset: a COCO source that only loads (real, proxy or
#                         offline-synthesized images).
_base_ = './digits_layouts.py'

# DIODE's distillation augmentation: mosaic + HSV. A replay pool holds a
# few hundred images: Mosaic recombines four of them into new layouts and
# backgrounds, and the student always learns what the teacher predicts on the
# very image it sees (head maps, RPN/RoI outputs and pseudo-labels), so no
# augmentation can make a label wrong. The 2x2 mosaic is not resized
# (center_ratio_range 1.0) and a random 128 px window of it kept, so objects
# keep their size;
# RandomAffine's border option is not used because mmdet's RandomAffine keeps
# the canvas's top-left corner, not its centre. 128 px is the benchmark's
# image size (img_scale of the students).
kd_pipeline = [
    dict(type='Mosaic',
         img_scale=(128, 128),
         center_ratio_range=(1.0, 1.0),
         pad_val=114.0),
    dict(type='RandomCrop', crop_size=(128, 128), allow_negative_crop=True),
    dict(
        type='RandomAffine',
        max_rotate_degree=0.0,
        max_shear_degree=0.0,
        max_translate_ratio=0.1,
        scaling_ratio_range=(0.8, 1.2),
        border_val=(114, 114, 114)),
    dict(type='YOLOXHSVRandomAug'),
    dict(type='PackDetInputs')
]

# The benchmark's image size, that of the images synthesized on the fly.
img_size = 128

# Synthesized on the fly, on the layouts of the offline sets' synthesis
# configs (digits_layouts.py: 3x3 tiles, 9 digits/image, 11-43 px boxes). A
# config using it adds its `pool_dir` and `metainfo`.
box_sampler_dataset = dict(
    type='BoxSamplerDataset',
    layout_sampler=_base_.digits_layouts,
    num_samples=3000,  # an epoch as long as the real train split's
    img_size=img_size,
    seed=0,
    # The data set does the loading; the mix pipeline the rest.
    pipeline=[])

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
