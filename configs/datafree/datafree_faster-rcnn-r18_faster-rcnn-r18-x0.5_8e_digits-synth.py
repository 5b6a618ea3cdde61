# Rows `kd_synth_offline` and `ablate_*` of tools/benchmark_datafree.py: the
# data-free distillation of
# configs/moi/moi_faster-rcnn-r18_faster-rcnn-r18-x0.5_8e_digits.py
# on a data set written beforehand by tools/synthesize.py (no synthesis
# during training):
#   python tools/synthesize.py \
#       configs/moi/moi_faster-rcnn-r18_synth_digits.py \
#       --out data/synth_faster-rcnn --num-images 200
# The set is repeated so that an epoch has as many images as the real train
# split (3000): every kd_* row trains for the same number of iterations.
# Another set: --cfg-options
# train_dataloader.dataset.dataset.dataset.data_root=DIR
# train_dataloader.dataset.dataset.times=T (T x its size = 3000).
_base_ = './datafree_faster-rcnn-r18_faster-rcnn-r18-x0.5_8e_digits-real.py'

# The synthesized set as a loading-only COCO source, as the real row's,
# repeated (_base_/datasets/digits.py).
train_dataloader = dict(dataset=dict(dataset=dict(
    _base_.synth_source,
    dataset=dict(
        _base_.synth_source.dataset, data_root='data/synth_faster-rcnn/'))))
