# The teacher-agreement validation of the data-free COCO configs (see
# agreement.py): a set synthesized from the teacher alone and annotated with
# its detections, made by the first training run into agreement_root, so
# that they validate and keep their best checkpoint without COCO images.
# This file is the YOLOv3-D53 teacher's set; coco_agreement_rtmdet.py the
# RTMDet-l teacher's and coco_agreement_frcnn.py the Faster R-CNN R50
# teacher's. It includes coco_datafree.py (the teachers' classes, the
# data-free training set), so a config lists it instead of that file
# (mmengine refuses a key that two bases both define).
_base_ = ['./agreement.py', './coco_datafree.py']

agreement_root = 'data/coco_agreement_yolov3/'

agreement_val_cfg = dict(synthesis_config='configs/diode/'
                         'diode_yolov3-d53_synth-agreement_coco.py')
# The teachers' classes, in their label order (CocoMetric maps labels to the
# json's categories by these names).
agreement_val_dataloader = dict(
    dataset=dict(
        data_root=agreement_root,
        metainfo=dict(classes=_base_.coco_classes)))
agreement_val_evaluator = dict(ann_file=agreement_root +
                               'teacher_annotations.json')
