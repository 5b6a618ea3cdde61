# Multi-Object Impressions from mmdet's COCO Faster R-CNN R50-FPN model-zoo
# teacher (no data statistics). For CUDA; see diode_yolov3_d53_coco.py for
# the multi-GPU command.
custom_imports = dict(imports=['mmdiode'], allow_failed_imports=False)
default_scope = 'mmdet'

teacher = dict(
    config='mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py',
    checkpoint='https://download.openmmlab.com/mmdetection/v2.0/'
    'faster_rcnn/faster_rcnn_r50_fpn_1x_coco/'
    'faster_rcnn_r50_fpn_1x_coco_20200130-047c8118.pth')

layout_sampler = dict(
    type='BoxLayoutSampler', img_size=320, strategy='multi-box',
    min_boxes=2, max_boxes=6, max_iou=0.35, min_size=0.1, max_size=0.6)

synthesizer = dict(
    type='MultiObjectImpressions',
    temperature=0.1,
    image_prior=dict(tv_l1=75.0),
    augment=dict(flip_prob=0.5),
    stages=[
        dict(size=160, iterations=2500, lr=0.2, min_lr=0.0, jitter=20),
        dict(size=320, iterations=1500, lr=0.002, min_lr=0.0005, jitter=40),
    ],
    fp_sampling=dict(enable=True, start=800, end=2800, interval=100,
                     score_thr=0.5, iou_thr=0.35, min_area=0.01,
                     max_area=0.85),
    amp=True)

synthesis = dict(num_images=120000, batch_size=32, seed=0, max_retries=2)
vis_backends = [dict(type='LocalVisBackend'),
                dict(type='TensorboardVisBackend')]
env_cfg = dict(dist_cfg=dict(backend='nccl'))
