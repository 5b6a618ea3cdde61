"""Decoder-output distillation of DETR-style detectors on matched queries.

A DETR-style head predicts a set: its i-th query of the student and the i-th
of the teacher need not describe the same object, so their outputs cannot
be compared by position as dense heads' can. The student's queries are
matched one to one with the teacher's most confident ones by the Hungarian
assignment that the student's head trains with (mmdet's
``HungarianAssigner`` and its match costs, the teacher's boxes and best
classes standing in for ground truth), and every matched pair is distilled.
"""
from typing import Any, Dict, Optional, Tuple

import torch
from mmdet.registry import MODELS, TASK_UTILS
from mmdet.structures.bbox import bbox_cxcywh_to_xyxy, bbox_overlaps
from mmengine.structures import InstanceData
from torch import Tensor, nn

from mmdiode.utils.cli import ConfigError
from ..distill_base import BaseDistillLoss, DistillContext
from .output_kd import (_check_positive, _check_same_attrs, _weighted_mean,
                        binary_kl_with_logits, check_same_head, recorded,
                        softmax_kl_with_logits)

__all__ = ['DETRQueryKDLoss']


def _last_layer_queries(outputs: Any, num_queries: int,
                        what: str) -> Tuple[Tensor, Tensor]:
    """The last decoder layer's class logits (N, Q, C') and normalised
    cxcywh boxes (N, Q, 4) of a DETR head's forward, its last
    ``num_queries`` queries (DINO puts its denoising queries first)."""
    if not (isinstance(outputs, (tuple, list)) and len(outputs) >= 2
            and all(isinstance(o, Tensor) and o.dim() == 4
                    for o in outputs[:2])):
        raise ValueError(f'{what}: expected the head to return per-layer '
                         '(L, N, Q, C) class logits and (L, N, Q, 4) boxes')
    cls, boxes = outputs[0][-1], outputs[1][-1]
    return cls[:, -num_queries:], boxes[:, -num_queries:]


@MODELS.register_module()
class DETRQueryKDLoss(BaseDistillLoss):
    """Distils the last decoder layer's queries, matched to the teacher's.

    Per image, with the teacher's queries ranked by ``q_j`` (its best
    foreground probability), its top ``K = min(num_teacher_queries, Q_t,
    Q_s)`` become targets (boxes, best classes) of the student head's
    Hungarian assigner over the student's ``Q_s`` queries; ``pi(j)`` is the
    student query matched to teacher query ``j``. With ``s``/``t`` class
    logits and ``b`` normalised cxcywh boxes, over all matched pairs of the
    batch::

        loss_cls = w_cls * tau**2 * mean_j sum_c KL_b(sigma(t_jc/tau) ||
                   sigma(s_pi(j)c/tau))                     (sigmoid heads)
        loss_cls = w_cls * tau**2 * mean_j KL(softmax(t_j/tau) ||
                   softmax(s_pi(j)/tau))                    (softmax heads)
        loss_bbox = w_l1 * sum_j q_j |b_s - b_t|_1 / sum_j q_j
        loss_iou = w_giou * sum_j q_j (1 - GIoU(b_s, b_t)) / sum_j q_j

    Unmatched student queries are left free. Only the matching queries
    count: DINO's leading denoising queries (``detector.num_queries`` are
    the matching ones) are dropped. Both heads must be of the same class,
    with the same ``cls_out_channels`` (checked when the wrapper is built).

    Args:
        module (str): Recording name of the head. Defaults to
            ``'bbox_head'``.
        num_teacher_queries (int): ``K``'s upper bound. Defaults to 100
            (mmdet's DETR-style COCO models keep at most 100-300
            detections).
        assigner (dict, optional): An mmdet assigner config. Defaults to
            None: the student head's own (``train_cfg.assigner``).
        cls_weight (float): ``w_cls``. Defaults to 1.0.
        l1_weight (float): ``w_l1``. Defaults to 5.0 (DETR's box L1
            weight).
        giou_weight (float): ``w_giou``. Defaults to 2.0 (DETR's GIoU
            weight).
        temperature (float): ``tau``. Defaults to 1.0.
        loss_weight (float): Multiplies every term. Defaults to 1.0.
    """

    def __init__(self,
                 module: str = 'bbox_head',
                 num_teacher_queries: int = 100,
                 assigner: Optional[dict] = None,
                 cls_weight: float = 1.0,
                 l1_weight: float = 5.0,
                 giou_weight: float = 2.0,
                 temperature: float = 1.0,
                 loss_weight: float = 1.0) -> None:
        super().__init__(loss_weight=loss_weight)
        _check_positive(temperature=temperature,
                        num_teacher_queries=num_teacher_queries)
        self.module = module
        self.num_teacher_queries = int(num_teacher_queries)
        self.assigner = (None if assigner is None else
                         TASK_UTILS.build(assigner))
        self.cls_weight = cls_weight
        self.l1_weight = l1_weight
        self.giou_weight = giou_weight
        self.temperature = temperature
        self.student_modules = [module]
        self.teacher_modules = [module]

    @property
    def _what(self) -> str:
        return f'DETRQueryKDLoss({self.module})'

    def check_pair(self, student: nn.Module, teacher: nn.Module) -> None:
        """Refuses different heads, class layouts, detectors without
        queries and a student head without an assigner."""
        what = self._what
        head, teacher_head = check_same_head(what, student, teacher,
                                             self.module)
        _check_same_attrs(head, teacher_head, ('cls_out_channels', ), what)
        for role, model in (('student', student), ('teacher', teacher)):
            if not isinstance(getattr(model, 'num_queries', None), int):
                raise ConfigError(
                    f'{what}: the {role} {type(model).__name__} has no '
                    'num_queries; the loss distils DETR-style detectors '
                    '(DETR, Deformable DETR, DINO, ...)')
        if self.assigner is None and getattr(head, 'assigner', None) is None:
            raise ConfigError(
                f"{what}: the student's {self.module} has no assigner (its "
                'train_cfg names none); give assigner=dict(type='
                "'HungarianAssigner', match_costs=[...])")

    def forward(self, ctx: DistillContext) -> Dict[str, Tensor]:
        what = self._what
        head = ctx.student.get_submodule(self.module)
        assigner = self.assigner or head.assigner
        s_cls, s_box = _last_layer_queries(
            recorded(ctx.student_outs, self.module, 'student'),
            ctx.student.num_queries, what)
        t_cls, t_box = _last_layer_queries(
            recorded(ctx.teacher_outs, self.module, 'teacher'),
            ctx.teacher.num_queries, what)
        if s_cls.shape[0] != t_cls.shape[0] or \
                s_cls.shape[-1] != t_cls.shape[-1]:
            raise ValueError(f'{what}: student queries {tuple(s_cls.shape)} '
                             'and teacher queries '
                             f'{tuple(t_cls.shape)} differ in batch or class '
                             'size')
        use_sigmoid = head.loss_cls.use_sigmoid
        t_cls, t_box = t_cls.detach(), t_box.detach()
        t_prob = (t_cls.sigmoid() if use_sigmoid else
                  t_cls.softmax(-1)[..., :-1])
        t_conf, t_labels = t_prob.max(-1)
        k = min(self.num_teacher_queries, t_cls.shape[1], s_cls.shape[1])
        pairs = [
            self._match(assigner, s_cls[n], s_box[n], t_box[n], t_conf[n],
                        t_labels[n], k, ctx.data_samples[n].metainfo)
            for n in range(s_cls.shape[0])
        ]
        s_idx = torch.cat([torch.full_like(s, n) for n, (s, _) in
                           enumerate(pairs)]), torch.cat([s for s, _ in pairs])
        t_idx = s_idx[0], torch.cat([t for _, t in pairs])
        s_cls, t_cls = s_cls[s_idx], t_cls[t_idx]
        s_box, t_box, conf = s_box[s_idx], t_box[t_idx], t_conf[t_idx]
        tau = self.temperature
        if use_sigmoid:
            per_query = binary_kl_with_logits(s_cls, t_cls, tau).sum(-1)
        else:
            per_query = softmax_kl_with_logits(s_cls, t_cls, tau)
        loss_cls = tau**2 * per_query.mean()
        loss_bbox = _weighted_mean((s_box - t_box).abs().sum(-1), conf)
        giou = bbox_overlaps(
            bbox_cxcywh_to_xyxy(s_box),
            bbox_cxcywh_to_xyxy(t_box),
            mode='giou',
            is_aligned=True)
        loss_iou = _weighted_mean(1 - giou, conf)
        w = self.loss_weight
        return dict(
            loss_cls=w * self.cls_weight * loss_cls,
            loss_bbox=w * self.l1_weight * loss_bbox,
            loss_iou=w * self.giou_weight * loss_iou)

    @staticmethod
    @torch.no_grad()
    def _match(assigner, s_cls: Tensor, s_box: Tensor, t_box: Tensor,
               t_conf: Tensor, t_labels: Tensor, k: int,
               img_meta: dict) -> Tuple[Tensor, Tensor]:
        """Matches one image's student queries to its teacher's top ``k``.

        Args:
            s_cls (Tensor): (Q_s, C') student logits.
            s_box (Tensor): (Q_s, 4) student normalised cxcywh boxes.
            t_box (Tensor): (Q_t, 4) teacher normalised cxcywh boxes.
            t_conf (Tensor): (Q_t,) teacher confidences.
            t_labels (Tensor): (Q_t,) teacher best classes.
            k (int): Teacher queries to match.
            img_meta (dict): The image's metainfo (``img_shape``).

        Returns:
            tuple[Tensor, Tensor]: (P,) student and (P,) teacher query
            indices of the matched pairs.
        """
        top = t_conf.topk(k).indices
        h, w = img_meta['img_shape']
        factor = s_box.new_tensor([w, h, w, h])
        result = assigner.assign(
            pred_instances=InstanceData(
                scores=s_cls.detach(),
                bboxes=bbox_cxcywh_to_xyxy(s_box.detach()) * factor),
            gt_instances=InstanceData(
                bboxes=bbox_cxcywh_to_xyxy(t_box[top]) * factor,
                labels=t_labels[top]),
            img_meta=img_meta)
        student = torch.nonzero(result.gt_inds > 0).flatten()
        return student, top[result.gt_inds[student] - 1]
