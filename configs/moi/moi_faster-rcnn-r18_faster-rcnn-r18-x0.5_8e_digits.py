# On-the-fly zero-shot distillation of Faster R-CNN on digits-on-photos
# (Multi-Object Impressions, CPU-sized): the bundled Faster R-CNN R18-FPN
# teacher is inverted without any data statistic while the student of
# configs/detectors/faster-rcnn-r18-x0.5_8e_digits.py trains on the
# impressions; no training image is read. Train the teacher first (make
# faster-rcnn-teacher), then
#   python tools/train.py \
#       configs/moi/moi_faster-rcnn-r18_faster-rcnn-r18-x0.5_8e_digits.py
# The replay pool lives in the work dir (<work_dir>/pool); see
# configs/diode/diode_yolov3-mv2_yolov3-mv2-x0.5_24e_digits.py for the
# choice of pseudo-labels over the synthesis targets and for validating on
# real data instead of the agreement set.
# Training data (layouts, Mosaic + HSV) shared with every row of the data-free
# benchmark: _base_/datasets/digits.py, through the detector base of the KD
# config. The synthesizer is the one of the third-schedule offline sets
# (moi_faster-rcnn-r18_synth-third_digits.py), from
# _base_/synthesis/moi_faster-rcnn-r18_digits.py.
_base_ = [
    '../_base_/synthesis/hook.py',
    '../kd/output-kl_faster-rcnn-r18_faster-rcnn-r18-x0.5_8e_digits.py',
    '../_base_/synthesis/moi_faster-rcnn-r18_digits.py',
    '../_base_/datasets/digits_agreement_frcnn.py'
]

# The student, the teacher (train it first) and the output distillation of
# both stages at the losses' reference weights, of the output-KL KD config;
# the student's detection loss, at full weight there, learns from the
# pseudo-labels here.
model = dict(pseudo_label=dict(score_thr=0.3, replace_gt=True))

# The student's loader (batch size, workers, sampler) on the data-free
# source: 3x3 tiled layouts synthesized on the fly, Mosaic + HSV
# (_base_/datasets/digits.py).
train_dataloader = dict(dataset=_base_.datafree_train_dataset)

# Synthesis schedule: a Faster R-CNN teacher's loss and backward cost
# several times YOLOv3's (two stages, RoI sampling), so a batch takes far
# longer than the ~375 training iterations of an epoch can wait for (the
# costs are in configs/moi/README.md). The synthesizer is the recipe on a
# third of its schedule (`synthesizer_third` of
# _base_/synthesis/moi_faster-rcnn-r18_digits.py): three times the images
# per synthesis hour, and at equal synthesis time a better student than the
# full schedule's fewer images. The student's 8 epochs are 3000 iterations; a
# batch every 33 iterations gives 90 batches plus 12 initial ones, ~800
# images, which the student sees about 30 times each. The pool can be seeded
# with an offline data set (tools/synthesize.py with
# moi_faster-rcnn-r18_synth-third_digits.py; warm_start='data/...') at no
# training-time cost; past about 850 images more of them no longer paid
# (configs/moi/README.md).
synthesizer = _base_.synthesizer_third
custom_hooks = [
    dict(
        _base_.deep_inversion_hook,
        synthesizer=synthesizer,
        pool_size=1024,
        interval=33,
        batch_size=8,
        initial_batches=12)
    # Then the KD config's TeacherEvalHook (the teacher's score on the
    # agreement set, once: near 1).
] + _base_.custom_hooks

# Validation without real data: the student's agreement with the teacher on
# a held-out set synthesized from the teacher alone, made on the first run
# (_base_/datasets/digits_agreement_frcnn.py). save_best='auto' keeps the
# checkpoint that agrees best.
val_cfg = _base_.agreement_val_cfg
val_dataloader = _base_.agreement_val_dataloader
val_evaluator = _base_.agreement_val_evaluator
