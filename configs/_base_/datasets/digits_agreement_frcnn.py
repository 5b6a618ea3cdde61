# The teacher-agreement validation of the Faster R-CNN data-free configs
# (see agreement.py and digits_agreement.py): the set of the bundled Faster
# R-CNN teacher, made by its Multi-Object Impressions recipe.
_base_ = './digits_agreement.py'

agreement_root = 'data/digits_agreement_frcnn/'
agreement_val_cfg = dict(synthesis_config='configs/moi/'
                         'moi_faster-rcnn-r18_synth-agreement_digits.py')
agreement_val_dataloader = dict(dataset=dict(data_root=agreement_root))
agreement_val_evaluator = dict(ann_file=agreement_root +
                               'teacher_annotations.json')
