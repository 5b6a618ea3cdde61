# The teacher-agreement validation of
# configs/moi/moi_faster-rcnn-r50_faster-rcnn-r18_1x_coco.py (see
# agreement.py and coco_agreement.py): the set of mmdet's COCO Faster R-CNN
# R50-FPN, made by its Multi-Object Impressions recipe.
_base_ = './coco_agreement.py'

agreement_root = 'data/coco_agreement_frcnn/'
agreement_val_cfg = dict(synthesis_config='configs/moi/'
                         'moi_faster-rcnn-r50_synth-agreement_coco.py')
agreement_val_dataloader = dict(dataset=dict(data_root=agreement_root))
agreement_val_evaluator = dict(ann_file=agreement_root +
                               'teacher_annotations.json')
