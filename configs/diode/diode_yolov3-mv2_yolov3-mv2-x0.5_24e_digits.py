# On-the-fly data-free distillation on digits-on-photos (DIODE, CPU-sized):
# the bundled YOLOv3-MobileNetV2 teacher is inverted while the student of
# configs/detectors/yolov3-mv2-x0.5_24e_digits.py trains on the synthesized
# images; no training image is read. The committed teacher checkpoint is
# used (see below):
#   python tools/train.py \
#       configs/diode/diode_yolov3-mv2_yolov3-mv2-x0.5_24e_digits.py
#   python tools/train.py \
#       configs/diode/diode_yolov3-mv2_yolov3-mv2-x0.5_24e_digits.py --resume
# The replay pool lives in the work dir (<work_dir>/pool, set by the
# DeepInversionHook), so --resume continues it and --work-dir moves it.
#
# Targets: the synthesized images carry their synthesis targets (the sampled
# layout plus false positives the teacher added), but whether the teacher
# really detects them varies from image to image. The student learns from
# the teacher's own detections instead (pseudo-labels replace the targets),
# which always agree with the distilled head maps, also on the noise
# placeholders served while the pool is empty. The teacher is less confident
# on synthesized images than on photos, so the threshold is lower than the
# 0.3 usual on real images: at 0.3 many correct detections are dropped and
# the student is taught that their objects are background (the measured
# thresholds are in docs/en/benchmarks.md).
# Training data (layouts, Mosaic + HSV) shared with every row of the data-free
# benchmark: _base_/datasets/digits.py, through the detector base of the KD
# config. The synthesizer is the one
# of the offline sets (diode_yolov3-mv2_synth-kd_digits.py), from
# _base_/synthesis/diode-kd_yolov3-mv2_digits.py.
_base_ = [
    '../_base_/synthesis/hook.py',
    '../kd/output-mse_yolov3-mv2_yolov3-mv2-x0.5_24e_digits.py',
    '../_base_/synthesis/diode-kd_yolov3-mv2_digits.py',
    '../_base_/datasets/digits_agreement.py'
]

# The student, the committed teacher and DIODE's loss (MSE between raw head
# maps) of the output-MSE KD config; the student's detection loss, at full
# weight there, learns from the pseudo-labels here. The output loss weighs
# more than the KD config's 50: pseudo-labels are the teacher's thresholded
# boxes on images it is unsure of, its raw maps carry what the threshold
# drops, so the student follows the maps more than on photos (the weights
# screened are in docs/en/benchmarks.md).
model = dict(
    distill_losses=dict(out=dict(loss_weight=800.0)),
    pseudo_label=dict(score_thr=0.15, replace_gt=True))
# The student's Adam learning rate, 8x the detector base's 2e-3 (which was
# tuned for the teacher's supervised training). The student follows the
# teacher's dense head maps at every location, a smoother target than sparse
# boxes, and at 2e-3 it is still far from them when the cosine schedule
# ends; the rates screened are in docs/en/benchmarks.md. Every row derived
# from this config (kd_real included) trains at this rate.
optim_wrapper = dict(optimizer=dict(lr=0.016))

# The student's loader (batch size, workers, sampler) on the data-free
# source: 3x3 tiled layouts synthesized on the fly, Mosaic + HSV
# (_base_/datasets/digits.py).
train_dataloader = dict(dataset=_base_.datafree_train_dataset)

# Synthesis schedule: a batch of 16 every 100 of the student's 24 epochs'
# 4500 iterations, after 8 initial batches: 53 batches, ~850 images, which
# the student sees about 85 times each. A smaller interval gives more
# distinct images at the cost of synthesis time; fewer synthesis iterations
# make cheaper but worse images (the costs are in configs/diode/README.md).
# A data set made offline (tools/synthesize.py with
# diode_yolov3-mv2_synth-kd_digits.py) can seed the pool instead of the
# initial batches: warm_start='data/...'.
# Adaptive DeepInversion's competition term (docs/en/synthesis.md), off
# (weight 0): with a weight, each synthesis step also rewards the KL
# divergence of the teacher's and the student's scores, so that new images
# go where the student has not caught up. Off because the screen of a
# weight against none gave the worse student at a higher synthesis cost
# (docs/en/benchmarks.md, "Does competing with the student teach it
# more?"); the option stays for other pairs. Its divergence is a bounded
# one, the KL of sigmoid scores without the box term, not the training's
# MSE of raw maps, whose maximum is an arbitrary difference of background
# logits.
custom_hooks = [
    dict(
        _base_.deep_inversion_hook,
        synthesizer=dict(
            _base_.synthesizer,
            competition=dict(
                weight=0.0,
                loss=dict(type='YOLOv3OutputKDLoss', box_weight=0.0))),
        pool_size=2048,
        interval=100,
        batch_size=16,
        initial_batches=8)
    # Then the KD config's TeacherEvalHook: it logs the frozen teacher's score
    # on the validation set (once), as teacher/agreement/...: near 1 on its
    # own agreement set, a check that the set and its class mapping are sound.
] + _base_.custom_hooks

# Validation without real data: the student's agreement with the teacher on
# a held-out set synthesized from the teacher alone, made on the first run
# (_base_/datasets/digits_agreement.py). save_best='auto' keeps the checkpoint
# that agrees best.
val_cfg = _base_.agreement_val_cfg
val_dataloader = _base_.agreement_val_dataloader
val_evaluator = _base_.agreement_val_evaluator

# Test uses the real test split of the base config (the benchmark's
# measurement; a user without real data drops the test_* settings). Real
# validation data, where a user has it, replaces the agreement set in a
# config inheriting this one (docs/en/teacher_agreement.md):
#   val_cfg = dict(_delete_=True, type='ValLoop')
#   val_dataloader = dict(_delete_=True, ...)  # a CocoDataset, as in mmdet
#   val_evaluator = dict(_delete_=True, type='CocoMetric', ann_file=...)
