# The teacher-agreement validation of the data-free digits configs
# (agreement.py: how it works and how a config uses the blocks). This file
# is the YOLOv3 teacher's set; digits_agreement_frcnn.py the Faster R-CNN
# teacher's.
_base_ = './agreement.py'

agreement_root = 'data/digits_agreement_yolov3/'
# The teacher's classes, in its label order (CocoMetric maps labels to the
# json's categories by these names).
agreement_metainfo = dict(
    classes=('0', '1', '2', '3', '4', '5', '6', '7', '8', '9'))

agreement_val_cfg = dict(synthesis_config='configs/diode/'
                         'diode_yolov3-mv2_synth-agreement_digits.py')
agreement_val_dataloader = dict(
    dataset=dict(data_root=agreement_root, metainfo=agreement_metainfo))
agreement_val_evaluator = dict(ann_file=agreement_root +
                               'teacher_annotations.json')
