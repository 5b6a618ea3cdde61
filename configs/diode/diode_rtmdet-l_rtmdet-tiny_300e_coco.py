# Data-free distillation on COCO of mmdet 3's real-time family, on the fly:
# mmdet's model-zoo RTMDet-l is inverted with DeepInversion while an
# RTMDet-tiny student (ImageNet-initialised CSPNeXt-tiny backbone, as mmdet's
# config has it) trains on the synthesized images; no COCO training image is
# read. For CUDA:
#   python tools/train.py \
#       configs/diode/diode_rtmdet-l_rtmdet-tiny_300e_coco.py      # 1 GPU
#   bash tools/dist_train.sh \
#       configs/diode/diode_rtmdet-l_rtmdet-tiny_300e_coco.py 8    # 8 GPUs
# Each rank synthesizes its own share of the layouts into the shared pool.
#
# Synthesis is the bottleneck (configs/diode/README.md): make most of the
# pool offline first (tools/synthesize.py with
# configs/diode/diode_rtmdet-l_synth_coco.py, the same synthesizer) and set
# the hook's warm_start to its output; the hook then adds fresh images during
# training.

# The student, teacher and output KD of
# configs/kd/output-kl_rtmdet-l_rtmdet-tiny_300e_coco.py, its optimizer and
# schedule (mmdet's RTMDet-tiny recipe) and COCO val2017 as the test; data,
# targets, validation and hooks replaced. The synthesizer:
# _base_/synthesis/diode_rtmdet-l_coco.py; the teacher's classes:
# _base_/datasets/coco_datafree.py (through coco_agreement_rtmdet.py, the
# validation without real data); the synthesis schedule:
# _base_/synthesis/hook_coco.py.
_base_ = [
    '../_base_/synthesis/hook_coco.py',
    '../kd/output-kl_rtmdet-l_rtmdet-tiny_300e_coco.py',
    '../_base_/synthesis/diode_rtmdet-l_coco.py',
    '../_base_/datasets/coco_agreement_rtmdet.py'
]

img_size = 320

model = dict(
    # The synthesized images carry only their layouts, which the teacher
    # need not detect as laid out: its confident detections are the
    # student's targets, next to the output distillation of the base config.
    pseudo_label=dict(score_thr=0.3, replace_gt=True),
    det_loss_weight=1.0,
    classes=_base_.coco_classes)

# Multi-object layouts as the synthesis config's, synthesized into the pool
# in the work dir: _base_/datasets/coco_datafree.py.
train_dataloader = dict(
    _base_.coco_datafree_dataloader,
    batch_size=32,  # mmdet's RTMDet-tiny recipe: 8 GPUs x 32 images
    num_workers=4)

# Validation without real data: the student's agreement with the teacher on
# a held-out set synthesized from the teacher alone, made on the first run
# (_base_/datasets/coco_agreement_rtmdet.py, the set's size and score
# threshold in diode_rtmdet-l_synth-agreement_coco.py). save_best='auto'
# keeps the checkpoint that agrees best.
val_cfg = _base_.agreement_val_cfg
val_dataloader = _base_.agreement_val_dataloader
val_evaluator = _base_.agreement_val_evaluator
default_hooks = dict(checkpoint=dict(save_best='auto'))

# Test: real COCO val2017 at 320 px, the scale the student was trained at
# (optional: tools/test.py reads data/coco/, training does not). To
# validate on it instead of the agreement set, in a config inheriting this
# one (docs/en/teacher_agreement.md):
#   val_cfg = dict(_delete_=True, type='ValLoop')
#   val_dataloader = dict(_base_.test_dataloader, _delete_=True)
#   val_evaluator = dict(_base_.test_evaluator, _delete_=True)
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(img_size, img_size), keep_ratio=True),
    dict(
        type='Pad',
        size=(img_size, img_size),
        pad_val=dict(img=(114, 114, 114)))
] + _base_.coco_val_packing
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))

# The synthesis hook, then the base config's hooks: mmdet's RTMDet weight
# EMA and TeacherEvalHook (the frozen teacher's score on the agreement set,
# once, as teacher/agreement/...: near 1, a check of the set); mmdet's
# pipeline switch (to COCO images without mosaic) has no place here.
custom_hooks = [
    dict(
        _base_.deep_inversion_hook,
        # An offline set (tools/synthesize.py) can seed the pool:
        # warm_start='data/diode_rtmdet_coco'.
        synthesizer=_base_.synthesizer,
        pool_size=20000)
] + [hook for hook in _base_.custom_hooks
     if hook.type != 'PipelineSwitchHook']
env_cfg = dict(dist_cfg=dict(backend='nccl'))
