# Data-free distillation on COCO, the design's entry point:
#   python tools/train.py \
#       configs/diode/diode_yolov3-d53_yolov3-d53_273e_coco.py      # 1 GPU
#   bash tools/dist_train.sh \
#       configs/diode/diode_yolov3-d53_yolov3-d53_273e_coco.py 8    # 8 GPUs
#
# Synthesis is the bottleneck (configs/diode/README.md): make most of the
# pool offline first (tools/synthesize.py with
# configs/diode/diode_yolov3-d53_synth_coco.py, the same synthesizer) and set
# the hook's warm_start to its output; the hook then adds fresh images
# during training. Each rank synthesizes its own share of the layouts.
#
# Teacher: mmdet's COCO YOLOv3-D53 (608, multi-scale) from the model zoo.
# Student: YOLOv3-D53 at 320 px trained from scratch, as in DIODE, on images
# synthesized from the teacher alone (no COCO image is read), with DIODE's
# distillation loss (MSE between raw head maps) and no labels. The teacher:
# _base_/models/coco_teachers.py; its classes:
# _base_/datasets/coco_datafree.py (through coco_agreement.py, the
# validation without real data); the synthesis schedule:
# _base_/synthesis/hook_coco.py.
_base_ = [
    '../_base_/synthesis/hook_coco.py',
    '../_base_/models/yolov3_d53_320_scratch.py',
    '../_base_/synthesis/diode_yolov3-d53_coco.py',
    '../_base_/datasets/coco_agreement.py',
    '../_base_/models/coco_teachers.py'
]

custom_imports = dict(imports=['mmdiode'], allow_failed_imports=False)

teacher = _base_.coco_teachers.yolov3_d53

model = dict(
    _delete_=True,
    type='KDDetector',
    student={{_base_.model}},
    teacher=teacher,
    distill_losses=dict(
        out=dict(type='OutputMSELoss', module='bbox_head', loss_weight=1.0)),
    det_loss_weight=0.0)  # data-free: the images carry no labels


# Layouts sampled as in DIODE (one box per image, 0.2-0.8 of the side, class
# uniform); images are synthesized on the fly into the replay pool in the
# work dir (<work_dir>/pool). The loader: _base_/datasets/coco_datafree.py.
train_dataloader = dict(
    _base_.coco_datafree_dataloader,
    batch_size=64,
    num_workers=4,
    # DIODE's distillation augmentation (mosaic + HSV + flip) on the pool's
    # images; as in the kd_pipeline of _base_/datasets/digits.py the 2x2
    # mosaic is not resized and a random 320 px window of it is kept.
    dataset=dict(
        type='MultiImageMixDataset',
        dataset=dict(
            type='BoxSamplerDataset',
            metainfo=dict(classes=_base_.coco_classes),
            num_samples=120000,
            img_size=320,
            seed=0,
            layout_sampler=dict(
                type='BoxLayoutSampler', strategy='one-box', min_size=0.2,
                max_size=0.8),
            pipeline=[]),
        pipeline=[
            dict(type='Mosaic', img_scale=(320, 320),
                 center_ratio_range=(1.0, 1.0), pad_val=114.0),
            dict(type='RandomCrop', crop_size=(320, 320),
                 allow_negative_crop=True),
            dict(type='RandomFlip', prob=0.5),
            dict(type='YOLOXHSVRandomAug'),
            dict(type='PackDetInputs')
        ]))

custom_hooks = [
    dict(
        _base_.deep_inversion_hook,
        # An offline set (tools/synthesize.py) can seed the pool:
        # warm_start='data/diode_coco'.
        # DIODE's recipe, as the offline synthesis config's.
        synthesizer=_base_.synthesizer,
        pool_size=20000),
    dict(type='TeacherEvalHook'),
]

# Validation without real data: the student's agreement with the teacher on
# a held-out set synthesized from the teacher alone, made on the first run
# (_base_/datasets/coco_agreement.py, the set's size and score threshold in
# diode_yolov3-d53_synth-agreement_coco.py). save_best='auto' keeps the
# checkpoint that agrees best; TeacherEvalHook logs the teacher's own score
# on the set (teacher/agreement/..., near 1: a check of the set).
val_cfg = _base_.agreement_val_cfg
val_dataloader = _base_.agreement_val_dataloader
val_evaluator = _base_.agreement_val_evaluator
default_hooks = dict(checkpoint=dict(save_best='auto'))

# Test: real COCO val2017 at 320 px, the base config's test settings
# (optional: tools/test.py reads data/coco/, training does not). To
# validate on it instead of the agreement set, in a config inheriting this
# one (docs/en/teacher_agreement.md):
#   val_cfg = dict(_delete_=True, type='ValLoop')
#   val_dataloader = dict(_base_.test_dataloader, _delete_=True)
#   val_evaluator = dict(_base_.test_evaluator, _delete_=True)
env_cfg = dict(dist_cfg=dict(backend='nccl'))
