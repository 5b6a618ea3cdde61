# DIODE synthesis from mmdet's COCO RTMDet-l model-zoo teacher with the
# DIODE recipe of diode_yolov3_d53_coco.py, on layouts of several objects
# (COCO images hold several). For CUDA; several GPUs with
#   bash tools/dist_synthesize.sh configs/synth/diode_rtmdet_l_coco.py 8 \
#       --out data/diode_rtmdet_coco --num-images 120000
custom_imports = dict(imports=['mmdiode'], allow_failed_imports=False)
default_scope = 'mmdet'

teacher = dict(
    config='mmdet::rtmdet/rtmdet_l_8xb32-300e_coco.py',
    checkpoint='https://download.openmmlab.com/mmdetection/v3.0/rtmdet/'
    'rtmdet_l_8xb32-300e_coco/'
    'rtmdet_l_8xb32-300e_coco_20220719_112030-5a0be7c4.pth')

layout_sampler = dict(
    type='BoxLayoutSampler', img_size=320, strategy='multi-box',
    min_boxes=2, max_boxes=6, max_iou=0.35, min_size=0.1, max_size=0.6)

synthesizer = dict(
    type='DeepInversion',
    # RTMDet-l's backbone, neck and head all have BatchNorm layers with
    # running statistics; DIODE matches the backbone's.
    bn_prior=dict(weight=0.1, p=2, first_bn_multiplier=2.0,
                  layer_pattern=r'^backbone\.'),
    image_prior=dict(tv_l1=75.0, tv_l2=0.0, l2=0.0),
    task_loss=dict(weight=1.0, term_weights=None),
    augment=dict(jitter_mode='roll', flip_prob=0.5, brightness=0.2,
                 contrast=0.1, erase_prob=0.5, erase_scale=(0.02, 0.2)),
    stages=[
        dict(size=160, iterations=2500, lr=0.2, min_lr=0.0, jitter=20),
        dict(size=320, iterations=1500, lr=0.002, min_lr=0.0005, jitter=40),
    ],
    optimizer=dict(betas=(0.0, 0.0), eps=1e-8),
    fp_sampling=dict(enable=True, start=800, end=2800, interval=100,
                     score_thr=0.2, iou_thr=0.35, min_area=0.01,
                     max_area=0.85),
    amp=True,
    channels_last=True)

synthesis = dict(num_images=120000, batch_size=96, seed=0, max_retries=2)
vis_backends = [dict(type='LocalVisBackend'),
                dict(type='TensorboardVisBackend')]
env_cfg = dict(dist_cfg=dict(backend='nccl'))
