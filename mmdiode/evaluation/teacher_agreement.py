"""Teacher agreement: a validation set and metric made from the teacher alone.

A data-free user has no validation images, yet ``save_best``, early stopping
and every hyper-parameter choice need a score. The score here is how well
the student reproduces its teacher on images the student never trained on:

1. A held-out synthetic set is made with seeds disjoint from the training
   pool's (the ``*_synth-agreement_*.py`` synthesis configs, e.g.
   ``configs/diode/diode_yolov3-mv2_synth-agreement_digits.py``, use
   ``synthesis.seed=1000``; the pools and offline training sets use
   0), so neither its layouts nor its initial noise occur in training:
   by the data-free configs' val loop on first use
   (:class:`~mmdiode.engine.runner.TeacherAgreementValLoop`), or
   beforehand by ``tools/synthesize.py``.
2. Its images are annotated with the teacher's own detections after the
   teacher's NMS, kept above a score threshold
   (:func:`write_teacher_annotations`, ``teacher_annotations.json``),
   not with the synthesis targets: the student is trained towards what the
   teacher detects (pseudo-labels, head maps), so agreement with it is what
   the run optimises, and a target the teacher misses is no error of the
   student's.
3. mmdet's ``CocoMetric`` scores the student's detections against those
   annotations ("teacher agreement mAP"), as ``val_evaluator`` with
   ``prefix='agreement'``, through the Runner's own validation loop, so
   ``save_best='agreement/bbox_mAP_50'`` picks a checkpoint without data.

Decisions (measurements in docs/en/teacher_agreement.md):

* The score threshold is the pseudo-label threshold of the distillation
  config the set validates (0.15 for the YOLOv3 data-free config, 0.3 for
  the Faster R-CNN/MOI one and the COCO RTMDet-l and MOI ones): the
  agreement set's boxes are then exactly the boxes the student was trained
  to produce. The COCO YOLOv3-D53 config has no pseudo-labels; its set
  takes 0.2, DIODE's false-positive sampling threshold.
* The YOLOv3 set has 128 images (8 synthesis batches; ~9 objects each, so ~1000
  teacher boxes over the 10 classes): large enough that mAP differences of
  0.01 between checkpoints are not noise from a handful of boxes, small
  enough that validating every epoch costs a few seconds. MOI's set has
  64: a Multi-Object Impressions batch costs minutes on 2 CPU cores.
"""
import os.path as osp
from typing import Dict, List

import torch
from mmengine.fileio import load
from torch import nn

from ..utils.fileio import dump_json_atomic
from .fidelity import category_names, coco_test_loader

#: File name of the teacher's annotations beside a data set's own.
TEACHER_ANN_FILE = 'teacher_annotations.json'


def write_teacher_annotations(teacher: nn.Module,
                              data_root: str,
                              ann_file: str = 'annotations.json',
                              out_file: str = TEACHER_ANN_FILE,
                              score_thr: float = 0.3,
                              batch_size: int = 8,
                              device: str = 'cpu') -> str:
    """Annotates a COCO data set's images with the teacher's detections.

    The images and categories are the data set's own; the annotations are
    the teacher's ``predict()`` output (after its NMS, at the resolution the
    images have) with a score of at least ``score_thr``, one COCO box each
    (``bbox`` ``[x, y, w, h]`` in pixels, ``area``, ``iscrowd=0``, and the
    teacher's ``score`` for reference). The file is written atomically
    (temporary name, then rename) and is deterministic: the teacher runs in
    eval mode on the stored PNGs.

    Args:
        teacher (nn.Module): An mmdet detector with its data preprocessor,
            whose label order is the data set's category id order.
        data_root (str): Folder of the data set.
        ann_file (str): Its COCO json, relative to ``data_root`` or
            absolute. Defaults to ``'annotations.json'``.
        out_file (str): The json to write, relative to ``data_root`` or
            absolute. Defaults to :data:`TEACHER_ANN_FILE`.
        score_thr (float): Lowest score kept, in [0, 1]. Defaults to 0.3.
        batch_size (int): Images per forward pass. Defaults to 8.
        device (str): Device of the forward passes. Defaults to ``'cpu'``.

    Returns:
        str: The path written.
    """
    if not 0.0 <= score_thr <= 1.0:
        raise ValueError(f'score_thr must be in [0, 1], got {score_thr}')
    source = load(osp.join(data_root, ann_file))
    classes = category_names(source)
    category_ids = sorted(c['id'] for c in source['categories'])
    loader = coco_test_loader(data_root, ann_file, batch_size, classes)
    annotations: List[Dict] = []
    was_training = teacher.training
    teacher.to(device).eval()
    try:
        with torch.no_grad():
            for data in loader:
                for sample in teacher.test_step(data):
                    annotations += _boxes_as_annotations(
                        sample, category_ids, score_thr,
                        first_id=len(annotations) + 1)
    finally:
        teacher.train(was_training)
    out = dict(images=source['images'], categories=source['categories'],
               annotations=annotations,
               info=dict(source.get('info', {}),
                         annotated_by='teacher', score_thr=score_thr))
    path = out_file if osp.isabs(out_file) else osp.join(data_root, out_file)
    dump_json_atomic(out, path)
    return path


def _boxes_as_annotations(sample, category_ids: List[int], score_thr: float,
                          first_id: int) -> List[Dict]:
    """COCO annotations of one image's detections above ``score_thr``."""
    pred = sample.pred_instances
    keep = pred.scores >= score_thr
    annotations = []
    for box, label, score in zip(pred.bboxes[keep].tolist(),
                                 pred.labels[keep].tolist(),
                                 pred.scores[keep].tolist()):
        x1, y1, x2, y2 = box
        w, h = max(x2 - x1, 0.0), max(y2 - y1, 0.0)
        annotations.append(
            dict(id=first_id + len(annotations),
                 image_id=sample.img_id,
                 category_id=category_ids[label],
                 bbox=[x1, y1, w, h],
                 area=w * h,
                 iscrowd=0,
                 score=score))
    return annotations
