# Row `kd_proxy` of tools/benchmark_datafree.py: the data-free distillation
# of configs/diode/diode_yolov3-mv2_yolov3-mv2-x0.5_24e_digits.py
# on the out-of-distribution proxy set (3000 crops of photographs without
# digits, `make data`), labelled by the teacher's pseudo-labels only.
_base_ = './datafree_yolov3-mv2_yolov3-mv2-x0.5_24e_digits-real.py'

# The real row's loading-only COCO source on the proxy set
# (_base_/datasets/digits.py).
train_dataloader = dict(dataset=dict(dataset=_base_.proxy_source))
