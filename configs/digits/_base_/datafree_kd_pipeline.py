# The distillation augmentation of every data-free KD config on the digits
# benchmark (diode_yolov3_kd.py, moi_faster-rcnn_kd.py and the data-free
# benchmark's rows derived from them): DIODE's mosaic + HSV (REFERENCE.md
# §4), so the rows of a pair differ only in their images.
#
# A replay pool holds a few hundred images: Mosaic recombines four of them
# into new layouts and backgrounds, and the student always learns what the
# teacher predicts on the very image it sees (head maps, RPN/RoI outputs and
# pseudo-labels), so no augmentation can make a label wrong. The 2x2 mosaic
# is not resized (center_ratio_range 1.0) and a random 128 px window of it
# kept, so objects keep their size; RandomAffine's border option is not used
# because mmdet's RandomAffine keeps the canvas's top-left corner, not its
# centre. 128 px is the benchmark's image size (img_scale of the students).
# A data set using it loads images and boxes only (the mix wrapper,
# MultiImageMixDataset, runs this pipeline).
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
