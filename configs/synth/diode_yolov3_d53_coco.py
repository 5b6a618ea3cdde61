# DIODE synthesis from mmdet's COCO YOLOv3-D53 (608, multi-scale) model-zoo
# teacher with the published DIODE recipe: 2500 iterations at
# 160 px (lr 0.2, jitter 20), then 1500 at 320 px (lr 0.002 -> 0.0005,
# jitter 40), BN prior 0.1 (p=2, first BN x2), TV-L1 75, flips, FP sampling
# between iterations 800 and 2800. For CUDA; several GPUs with
#   bash tools/dist_synthesize.sh configs/synth/diode_yolov3_d53_coco.py 8 \
#       --out data/diode_coco --num-images 120000
custom_imports = dict(imports=['mmdiode'], allow_failed_imports=False)
default_scope = 'mmdet'

teacher = dict(
    config='mmdet::yolo/yolov3_d53_8xb8-ms-608-273e_coco.py',
    checkpoint='https://download.openmmlab.com/mmdetection/v2.0/yolo/'
    'yolov3_d53_mstrain-608_273e_coco/'
    'yolov3_d53_mstrain-608_273e_coco_20210518_115020-a2c3acb8.pth')

layout_sampler = dict(
    type='BoxLayoutSampler', img_size=320, strategy='one-box', min_size=0.2,
    max_size=0.8)

synthesizer = dict(
    type='DeepInversion',
    bn_prior=dict(weight=0.1, p=2, first_bn_multiplier=2.0,
                  layer_pattern=r'^backbone\.'),  # DIODE: backbone BN only
    image_prior=dict(tv_l1=75.0),
    task_loss=dict(weight=1.0),
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
