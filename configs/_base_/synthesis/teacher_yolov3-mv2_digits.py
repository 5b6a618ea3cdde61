# Synthesis from the bundled YOLOv3-MobileNetV2 teacher on 2 CPU cores: the
# teacher and the image size shared by the digits DIODE synthesis configs
# (configs/diode/diode_yolov3-mv2_synth*_digits.py), which add a synthesizer
# recipe and their layouts, with the run settings of default_runtime.py.
_base_ = './default_runtime.py'

teacher = dict(
    config='configs/detectors/yolov3-mv2_24e_digits.py',
    # The committed fp16 copy of `make yolov3-teacher`'s checkpoint (same
    # test mAP); --teacher-ckpt work_dirs/yolov3_teacher/final.pth for a
    # retrained one.
    checkpoint='checkpoints/digits_yolov3_teacher_fp16.pth')

img_size = 128
