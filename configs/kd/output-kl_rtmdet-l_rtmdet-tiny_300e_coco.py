# COCO: RTMDet-l teaches RTMDet-tiny with output KD of the head on COCO
# train2017 with ground truth. The teacher weights come from mmdet's model
# zoo (downloaded once into the torch hub cache). 8 GPUs:
#   bash tools/dist_train.sh \
#       configs/kd/output-kl_rtmdet-l_rtmdet-tiny_300e_coco.py 8
#
# Both heads are RTMDetSepBNHead with 80 sigmoid classes, one point per
# location at strides 8/16/32 and box distances in pixels (RTMDet-l
# exponentiates them, the tiny model clamps them; both mean the same), so
# their maps compare location by location. The teacher sees the student's
# batches re-normalised for it (both use mmdet's RTMDet preprocessor).
_base_ = [
    'mmdet::rtmdet/rtmdet_tiny_8xb32-300e_coco.py',
    '../_base_/models/coco_teachers.py'
]

custom_imports = dict(imports=['mmdiode'], allow_failed_imports=False)

model = dict(
    _delete_=True,
    type='KDDetector',
    # The student exactly as mmdet's config defines it (ImageNet-initialised
    # CSPNeXt-tiny backbone).
    student={{_base_.model}},
    teacher=_base_.coco_teachers.rtmdet_l,
    det_loss_weight=1.0,  # the student's own detection loss at full weight
    distill_losses=dict(
        # Class-score binary KL everywhere, box-distance L1 weighted by the
        # teacher's best class score; the loss's reference weights (RTMDet's
        # losses are normalised per positive, as those values assume).
        out=dict(
            type='DenseHeadKDLoss',
            module='bbox_head',
            cls_weight=1.0,
            reg_weight=1.0,
            temperature=1.0,
            reg_loss='l1',
            loss_weight=1.0)))

# mmdet's RTMDet hooks (weight EMA, the last epochs without mosaic), plus
# the frozen teacher's val metrics (once) as teacher/coco/...
custom_hooks = [
    dict(
        type='EMAHook',
        ema_type='ExpMomentumEMA',
        momentum=0.0002,
        update_buffers=True,
        priority=49),
    dict(
        type='PipelineSwitchHook',
        switch_epoch=280,
        switch_pipeline={{_base_.train_pipeline_stage2}}),
    dict(type='TeacherEvalHook'),
]
env_cfg = dict(dist_cfg=dict(backend='nccl'))
