# COCO: Faster R-CNN R101-FPN 1x teaches a Faster R-CNN R18-FPN student
# (ImageNet-initialised ResNet-18, mmdet's 1x schedule), with the
# distillation of hgd_faster-rcnn-r101_faster-rcnn-r50_1x_coco.py. 8 GPUs:
#   bash tools/dist_train.sh \
#       configs/hgd/hgd_faster-rcnn-r101_faster-rcnn-r18_1x_coco.py 8
_base_ = './hgd_faster-rcnn-r101_faster-rcnn-r50_1x_coco.py'

model = dict(
    student=dict(
        backbone=dict(
            depth=18, init_cfg=dict(checkpoint='torchvision://resnet18')),
        neck=dict(in_channels=[64, 128, 256, 512])),
    distill_losses=dict(
        hgd=dict(
            # ResNet-18 stages are 4x narrower; the FPN keeps 256 channels.
            student_channels=[64, 128, 256, 512, 256, 256, 256, 256, 256])))
