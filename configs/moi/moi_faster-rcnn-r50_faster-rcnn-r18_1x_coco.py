# Zero-shot distillation on COCO with Multi-Object Impressions, on the fly:
# mmdet's model-zoo Faster R-CNN R50-FPN 1x is inverted without any data
# statistic while a Faster R-CNN R18-FPN student (ImageNet-initialised
# ResNet-18) trains on the impressions; no COCO training image is read. For
# CUDA:
#   python tools/train.py \
#       configs/moi/moi_faster-rcnn-r50_faster-rcnn-r18_1x_coco.py     # 1 GPU
#   bash tools/dist_train.sh \
#       configs/moi/moi_faster-rcnn-r50_faster-rcnn-r18_1x_coco.py 8   # 8 GPUs
# Each rank synthesizes its own share of the layouts into the shared pool.
#
# Synthesis is the bottleneck: with 4000 iterations per image a GPU makes
# far fewer images than training consumes (configs/moi/README.md). Make most
# of the pool offline first (tools/synthesize.py with
# configs/moi/moi_faster-rcnn-r50_synth_coco.py, the same synthesizer, on
# many GPUs) and set warm_start to its output; the hook then adds fresh
# impressions during training. Without warm_start the pool starts from one
# batch per rank.

# The R18 student of
# configs/hgd/hgd_faster-rcnn-r101_faster-rcnn-r18_1x_coco.py, its schedule
# (mmdet's 1x) and COCO val2017 as the test; teacher, losses, data and
# validation replaced. The synthesizer:
# _base_/synthesis/moi_faster-rcnn-r50_coco.py; the teacher:
# _base_/models/coco_teachers.py (through the base config); its classes:
# _base_/datasets/coco_datafree.py (through coco_agreement_frcnn.py, the
# validation without real data); the synthesis schedule:
# _base_/synthesis/hook_coco.py.
_base_ = [
    '../_base_/synthesis/hook_coco.py',
    '../hgd/hgd_faster-rcnn-r101_faster-rcnn-r18_1x_coco.py',
    '../_base_/synthesis/moi_faster-rcnn-r50_coco.py',
    '../_base_/datasets/coco_agreement_frcnn.py'
]

img_size = 320

model = dict(
    teacher=_base_.coco_teachers.faster_rcnn_r50,
    # Output distillation of both stages at the losses' reference weights
    # (HGD of the base config dropped); the teacher's detections are the
    # student's targets (see
    # configs/diode/diode_yolov3-mv2_yolov3-mv2-x0.5_24e_digits.py for why
    # not the synthesis targets).
    distill_losses=dict(
        _delete_=True,
        rpn=dict(type='DenseHeadKDLoss', module='rpn_head', loss_weight=1.0),
        roi=dict(type='RoIHeadKDLoss', loss_weight=1.0)),
    pseudo_label=dict(score_thr=0.3, replace_gt=True),
    det_loss_weight=1.0)

# Multi-object layouts as the synthesis config's, synthesized into the pool
# in the work dir: _base_/datasets/coco_datafree.py.
train_dataloader = dict(
    _base_.coco_datafree_dataloader,
    batch_size=2,  # mmdet's 1x schedule: 8 GPUs x 2 images, lr 0.02
    num_workers=2)

# Validation without real data: the student's agreement with the teacher on
# a held-out set synthesized from the teacher alone, made on the first run
# (_base_/datasets/coco_agreement_frcnn.py, the set's size and score
# threshold in moi_faster-rcnn-r50_synth-agreement_coco.py).
# save_best='auto' keeps the checkpoint that agrees best.
val_cfg = _base_.agreement_val_cfg
val_dataloader = _base_.agreement_val_dataloader
val_evaluator = _base_.agreement_val_evaluator
default_hooks = dict(checkpoint=dict(save_best='auto'))

# Test: real COCO val2017 at a short side of 320 px, the scale the student
# was trained at (optional: tools/test.py reads data/coco/, training does
# not). To validate on it instead of the agreement set, in a config
# inheriting this one (docs/en/teacher_agreement.md):
#   val_cfg = dict(_delete_=True, type='ValLoop')
#   val_dataloader = dict(_base_.test_dataloader, _delete_=True)
#   val_evaluator = dict(_base_.test_evaluator, _delete_=True)
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(533, img_size), keep_ratio=True)
] + _base_.coco_val_packing
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))

custom_hooks = [
    dict(
        _base_.deep_inversion_hook,
        # An offline set (tools/synthesize.py) can seed the pool:
        # warm_start='data/moi_coco'.
        synthesizer=_base_.synthesizer,
        pool_size=120000)
    # Then the base config's TeacherEvalHook: the frozen teacher's score on
    # the agreement set (once) as teacher/agreement/...: near 1, a check of
    # the set.
] + _base_.custom_hooks
env_cfg = dict(dist_cfg=dict(backend='nccl'))
