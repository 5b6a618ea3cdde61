# DIODE synthesis from the bundled YOLOv3-MobileNetV2 teacher (CPU-sized):
# DIODE's recipe scaled to 128 px digits on 2 CPU cores
# (_base_/synthesis/diode_yolov3-mv2_digits.py) on tiled multi-object
# layouts.
#   python tools/synthesize.py configs/diode/diode_yolov3-mv2_synth_digits.py \
#       --out data/synth_yolov3 --num-images 1000 --viz
_base_ = [
    '../_base_/synthesis/teacher_yolov3-mv2_digits.py',
    '../_base_/synthesis/diode_yolov3-mv2_digits.py'
]

layout_sampler = dict(
    type='BoxLayoutSampler',
    img_size={{_base_.img_size}},
    strategy='tiling',        # 2x2 one-box layouts -> 4 digits per image
    tiles_per_side=2,
    min_size=0.35,            # of a 64 px cell: 22-54 px boxes (the teacher
    max_size=0.85,            # finds these best; the synth-kd config spans
                              # its anchors: 11-43 px, 3x3 cells)
    class_balanced=True)
