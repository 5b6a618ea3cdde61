# The teacher-agreement validation of
# configs/diode/diode_rtmdet-l_rtmdet-tiny_300e_coco.py (see agreement.py and
# coco_agreement.py): the set of mmdet's COCO RTMDet-l, made by its DIODE
# recipe.
_base_ = './coco_agreement.py'

agreement_root = 'data/coco_agreement_rtmdet/'
agreement_val_cfg = dict(synthesis_config='configs/diode/'
                         'diode_rtmdet-l_synth-agreement_coco.py')
agreement_val_dataloader = dict(dataset=dict(data_root=agreement_root))
agreement_val_evaluator = dict(ann_file=agreement_root +
                               'teacher_annotations.json')
