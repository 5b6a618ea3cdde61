# Hands-on Guidance Distillation (HGD) as the hgd/ configs apply it, the one
# copy of its settings: every backbone stage, then every neck level, of
# student and teacher, paired by order; GT-box weights where an image has
# boxes, teacher attention where it has none; the stages weighted by their
# inverse running loss, so that each contributes about equally. A config
# adds its stages' channels and the loss weight:
#   distill_losses=dict(hgd=dict(_base_.hgd_loss, student_channels=[...],
#                                teacher_channels=[...], loss_weight=...))
hgd_loss = dict(
    type='HGDLoss',
    student_modules=['backbone', 'neck'],
    teacher_modules=['backbone', 'neck'],
    micro_weighting='auto',
    stage_weights='adaptive')
