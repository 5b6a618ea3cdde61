# Synthesis from the bundled YOLOv3-MobileNetV2 teacher on 2 CPU cores: the
# teacher, the image size and the run settings shared by the digits DIODE
# synthesis configs (configs/diode/diode_yolov3-mv2_synth*_digits.py), which
# add a synthesizer recipe and their layouts.
custom_imports = dict(imports=['mmdiode'], allow_failed_imports=False)
default_scope = 'mmdet'

teacher = dict(
    config='configs/detectors/yolov3-mv2_24e_digits.py',
    # The committed fp16 copy of `make yolov3-teacher`'s checkpoint (same
    # test mAP); --teacher-ckpt work_dirs/yolov3_teacher/final.pth for a
    # retrained one.
    checkpoint='checkpoints/digits_yolov3_teacher_fp16.pth')

img_size = 128

synthesis = dict(num_images=1000, batch_size=16, seed=0, max_retries=2)
vis_backends = [dict(type='LocalVisBackend'),
                dict(type='TensorboardVisBackend')]
env_cfg = dict(dist_cfg=dict(backend='gloo'))
