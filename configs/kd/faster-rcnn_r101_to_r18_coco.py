# COCO: Faster R-CNN R101-FPN 1x (39.4 AP) teaches a Faster R-CNN R18-FPN
# student (ImageNet-initialised ResNet-18, mmdet's 1x schedule), with the
# distillation of faster-rcnn_r101_to_r50_coco.py.
# 8 GPUs:
#   bash tools/dist_train.sh configs/kd/faster-rcnn_r101_to_r18_coco.py 8
_base_ = './faster-rcnn_r101_to_r50_coco.py'

model = dict(
    student=dict(
        backbone=dict(
            depth=18, init_cfg=dict(checkpoint='torchvision://resnet18')),
        neck=dict(in_channels=[64, 128, 256, 512])),
    distill_losses=dict(
        hgd=dict(
            # ResNet-18 stages are 4x narrower; the FPN keeps 256 channels.
            student_channels=[64, 128, 256, 512, 256, 256, 256, 256, 256])))
