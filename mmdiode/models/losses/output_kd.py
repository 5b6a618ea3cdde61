"""Output distillation: the student's head outputs imitate the teacher's.

Every loss here is a :class:`~mmdiode.models.distill_base.BaseDistillLoss`
that reads head outputs recorded by the KD wrapper. Levels are matched by
index and every pair of tensors must have the same shape (a clear
``ValueError`` says which does not), so student and teacher heads must share
their layout (levels, anchors per location, classes, box coding); their
widths and depths may differ.

Notation: ``s`` student logits/values, ``t`` teacher's, ``tau`` the
temperature, ``sigma`` the sigmoid, ``KL_b(p || q) = p log(p/q) + (1-p)
log((1-p)/(1-q))`` the binary KL divergence, ``KL(p || q)`` the categorical
one. KL terms are multiplied by ``tau**2`` so their gradients keep their
scale when ``tau`` changes (Hinton et al., 2015). KL terms, unlike BCE, are
exactly 0 when student and teacher agree.
"""
from typing import Any, Dict, List, Sequence

import torch
import torch.nn.functional as F
from mmdet.registry import MODELS
from torch import Tensor, nn

from ..distill_base import BaseDistillLoss, DistillContext

__all__ = [
    'OutputMSELoss', 'YOLOv3OutputKDLoss', 'DenseHeadKDLoss', 'RoIHeadKDLoss',
    'binary_kl_with_logits', 'softmax_kl_with_logits'
]

_EPS = 1e-6
_REG_LOSSES = ('l1', 'mse')


def binary_kl_with_logits(student_logits: Tensor,
                          teacher_logits: Tensor,
                          temperature: float = 1.0) -> Tensor:
    """Elementwise ``KL_b(sigma(t/tau) || sigma(s/tau))``, same shape as
    the inputs.

    Computed as ``BCE(s/tau; p) - BCE(t/tau; p)`` with ``p = sigma(t/tau)``
    (cross-entropy minus the target's entropy), which is numerically stable
    and exactly 0 where ``s == t``.
    """
    s = student_logits / temperature
    t = teacher_logits / temperature
    p = t.sigmoid()
    return (F.binary_cross_entropy_with_logits(s, p, reduction='none') -
            F.binary_cross_entropy_with_logits(t, p, reduction='none'))


def softmax_kl_with_logits(student_logits: Tensor,
                           teacher_logits: Tensor,
                           temperature: float = 1.0) -> Tensor:
    """``KL(softmax(t/tau) || softmax(s/tau))`` over the last dimension.

    Args:
        student_logits (Tensor): (..., C).
        teacher_logits (Tensor): (..., C).
        temperature (float): tau.

    Returns:
        Tensor: (...), one divergence per row.
    """
    return F.kl_div(
        F.log_softmax(student_logits / temperature, dim=-1),
        F.log_softmax(teacher_logits / temperature, dim=-1),
        reduction='none',
        log_target=True).sum(-1)


def regression_distance(student: Tensor, teacher: Tensor, kind: str) -> Tensor:
    """Elementwise ``|s - t|`` (``'l1'``) or ``(s - t)**2`` (``'mse'``)."""
    diff = student - teacher
    return diff.abs() if kind == 'l1' else diff.pow(2)


def flatten_tensors(outputs: Any) -> List[Tensor]:
    """The tensors of a nested tuple/list output, depth first."""
    if isinstance(outputs, Tensor):
        return [outputs]
    if isinstance(outputs, (tuple, list)):
        return [t for item in outputs for t in flatten_tensors(item)]
    raise TypeError(f'cannot distil an output of type '
                    f'{type(outputs).__name__}; expected tensors in '
                    'tuples/lists')


def check_same_shapes(student: Sequence[Tensor], teacher: Sequence[Tensor],
                      what: str) -> None:
    """Raises ``ValueError`` unless both lists hold tensors of equal shapes."""
    if len(student) != len(teacher):
        raise ValueError(f'{what}: the student gives {len(student)} tensors, '
                         f'the teacher {len(teacher)}')
    for i, (s, t) in enumerate(zip(student, teacher)):
        if s.shape != t.shape:
            raise ValueError(f'{what}: tensor {i} has shape {tuple(s.shape)} '
                             f'for the student but {tuple(t.shape)} for the '
                             'teacher')


def recorded(outs: Dict[str, Any], name: str, role: str) -> Any:
    """A recorded output, with a clear error when the module did not run."""
    if name not in outs:
        raise KeyError(f'{role} output "{name}" was not recorded: the module '
                       f'did not run during the {role} forward')
    return outs[name]


def _check_positive(**values: float) -> None:
    for name, value in values.items():
        if value <= 0:
            raise ValueError(f'{name} must be > 0, got {value}')


def _check_reg_loss(reg_loss: str) -> None:
    if reg_loss not in _REG_LOSSES:
        raise ValueError(f'reg_loss must be one of {_REG_LOSSES}, got '
                         f'"{reg_loss}"')


def _check_same_attrs(student: nn.Module, teacher: nn.Module,
                      attrs: Sequence[str], what: str) -> None:
    """Refuses heads whose layout attributes differ."""
    for attr in attrs:
        s, t = getattr(student, attr, None), getattr(teacher, attr, None)
        if s != t:
            raise ValueError(f'{what}: the student head has {attr}={s}, the '
                             f'teacher head {attr}={t}; their outputs are not '
                             'comparable')


def _check_same_box_coding(student: nn.Module, teacher: nn.Module,
                           what: str) -> None:
    """Box deltas are only comparable under the same coder normalisation."""
    s, t = student.bbox_coder, teacher.bbox_coder
    if type(s) is not type(t):
        raise ValueError(f'{what}: box coders differ ({type(s).__name__} vs '
                         f'{type(t).__name__})')
    for attr in ('means', 'stds'):
        if list(getattr(s, attr, [])) != list(getattr(t, attr, [])):
            raise ValueError(f'{what}: box coder {attr} differ '
                             f'({getattr(s, attr)} vs {getattr(t, attr)}); '
                             'their deltas are not comparable')


def _levels_to_rows(maps: Sequence[Tensor], row_size: int) -> Tensor:
    """Per-level (N, A*K, H, W) maps -> (N, sum_l A*H_l*W_l, K) rows.

    mmdet's dense heads lay out channels anchor-major (channel ``a*K+k``).
    """
    rows = []
    for level, m in enumerate(maps):
        if m.dim() != 4 or m.shape[1] % row_size:
            raise ValueError(f'level {level} map of shape {tuple(m.shape)} '
                             f'is not (N, A*{row_size}, H, W)')
        rows.append(m.permute(0, 2, 3, 1).reshape(m.shape[0], -1, row_size))
    return torch.cat(rows, dim=1)


def _weighted_mean(values: Tensor, weights: Tensor) -> Tensor:
    """``sum(w * v) / max(sum(w), eps)`` with v (..., ) and w (..., )."""
    return (weights * values).sum() / weights.sum().clamp(min=_EPS)


@MODELS.register_module()
class OutputMSELoss(BaseDistillLoss):
    """MSE between raw (pre-activation) outputs of a module, as in DIODE.

    ``L = w * sum_k mean((S_k - T_k)**2)`` over every tensor ``k`` of the
    module's output (e.g. YOLOv3's three raw prediction maps, pre-sigmoid),
    matched by position. DIODE distils YOLOv3 this way with ``module=
    'bbox_head'``; any head or module with tensor outputs works.

    Args:
        module (str): Recording name, the same in student and teacher.
            Defaults to ``'bbox_head'``.
        loss_weight (float): ``w``. Defaults to 1.0.
    """

    def __init__(self,
                 module: str = 'bbox_head',
                 loss_weight: float = 1.0) -> None:
        super().__init__(loss_weight=loss_weight)
        self.module = module
        self.student_modules = [module]
        self.teacher_modules = [module]

    def forward(self, ctx: DistillContext) -> Dict[str, Tensor]:
        student = flatten_tensors(
            recorded(ctx.student_outs, self.module, 'student'))
        teacher = flatten_tensors(
            recorded(ctx.teacher_outs, self.module, 'teacher'))
        check_same_shapes(student, teacher, f'OutputMSELoss({self.module})')
        loss = sum(F.mse_loss(s, t) for s, t in zip(student, teacher))
        return dict(loss_mse=self.loss_weight * loss)


@MODELS.register_module()
class YOLOv3OutputKDLoss(BaseDistillLoss):
    """Soft-target distillation of YOLOv3 maps on sigmoid scores.

    Each level's map (N, A*(5+C), H, W) holds, per anchor, raw ``x, y, w,
    h``, objectness ``o`` and class logits ``c_1..c_C``; anchors of all
    levels are pooled into ``M`` rows. With ``p_m = sigma(t_o,m)`` the
    teacher's objectness::

        loss_obj = w_obj * tau**2 * mean_m KL_b(sigma(t_o/tau) ||
                   sigma(s_o/tau))
        loss_cls = w_cls * tau**2 * sum_m p_m sum_c KL_b(sigma(t_c/tau) ||
                   sigma(s_c/tau)) / sum_m p_m
        loss_box = w_box * sum_m p_m [sum_{xy} (sigma(s) - sigma(t))**2
                   + sum_{wh} (s - t)**2] / sum_m p_m

    Class and box outputs only mean something where the teacher sees an
    object, hence the weighting by ``p_m``. The layout is read from the
    heads (``num_base_priors``, ``num_attrib``, as in mmdet's
    ``YOLOV3Head``).

    Args:
        module (str): Recording name of the head. Defaults to
            ``'bbox_head'``.
        obj_weight (float): ``w_obj``. Defaults to 1.0.
        cls_weight (float): ``w_cls``. Defaults to 1.0.
        box_weight (float): ``w_box``. Defaults to 1.0.
        temperature (float): ``tau`` for objectness and classes. Defaults
            to 1.0.
        loss_weight (float): Multiplies every term. Defaults to 1.0.
    """

    def __init__(self,
                 module: str = 'bbox_head',
                 obj_weight: float = 1.0,
                 cls_weight: float = 1.0,
                 box_weight: float = 1.0,
                 temperature: float = 1.0,
                 loss_weight: float = 1.0) -> None:
        super().__init__(loss_weight=loss_weight)
        _check_positive(temperature=temperature)
        self.module = module
        self.obj_weight = obj_weight
        self.cls_weight = cls_weight
        self.box_weight = box_weight
        self.temperature = temperature
        self.student_modules = [module]
        self.teacher_modules = [module]

    def forward(self, ctx: DistillContext) -> Dict[str, Tensor]:
        what = f'YOLOv3OutputKDLoss({self.module})'
        head = ctx.student.get_submodule(self.module)
        _check_same_attrs(head, ctx.teacher.get_submodule(self.module),
                          ('num_base_priors', 'num_attrib'), what)
        student = flatten_tensors(
            recorded(ctx.student_outs, self.module, 'student'))
        teacher = flatten_tensors(
            recorded(ctx.teacher_outs, self.module, 'teacher'))
        check_same_shapes(student, teacher, what)
        s = _levels_to_rows(student, head.num_attrib)
        t = _levels_to_rows(teacher, head.num_attrib)
        tau = self.temperature
        obj_prob = t[..., 4].sigmoid()
        loss_obj = tau**2 * binary_kl_with_logits(s[..., 4], t[..., 4],
                                                  tau).mean()
        loss_cls = tau**2 * _weighted_mean(
            binary_kl_with_logits(s[..., 5:], t[..., 5:], tau).sum(-1),
            obj_prob)
        box_dist = (
            regression_distance(s[..., :2].sigmoid(), t[..., :2].sigmoid(),
                                'mse').sum(-1) +
            regression_distance(s[..., 2:4], t[..., 2:4], 'mse').sum(-1))
        loss_box = _weighted_mean(box_dist, obj_prob)
        w = self.loss_weight
        return dict(
            loss_obj=w * self.obj_weight * loss_obj,
            loss_cls=w * self.cls_weight * loss_cls,
            loss_box=w * self.box_weight * loss_box)


def _class_kd(student: Tensor, teacher: Tensor, use_sigmoid: bool,
              temperature: float) -> Tensor:
    """Mean over rows of the per-row class divergence, times tau**2.

    Args:
        student (Tensor): (..., C') logits.
        teacher (Tensor): (..., C') logits.
        use_sigmoid (bool): Independent sigmoid scores (summed binary KL)
            or a softmax over the C' channels.
        temperature (float): tau.
    """
    if use_sigmoid:
        per_row = binary_kl_with_logits(student, teacher, temperature).sum(-1)
    else:
        per_row = softmax_kl_with_logits(student, teacher, temperature)
    return temperature**2 * per_row.mean()


def _teacher_confidence(teacher: Tensor, use_sigmoid: bool) -> Tensor:
    """The teacher's best foreground probability per row, (...,).

    Softmax heads in mmdet put the background class last.
    """
    if use_sigmoid:
        return teacher.sigmoid().max(-1).values
    return teacher.softmax(-1)[..., :-1].max(-1).values


class _ClassAndBoxKDLoss(BaseDistillLoss):
    """Shared settings of the losses with a class term and a box term
    (:class:`DenseHeadKDLoss`, :class:`RoIHeadKDLoss`).

    Args:
        cls_weight (float): ``w_cls``. Defaults to 1.0.
        reg_weight (float): ``w_reg``. Defaults to 1.0.
        temperature (float): ``tau`` of the class term. Defaults to 1.0.
        reg_loss (str): ``'l1'`` or ``'mse'``. Defaults to ``'l1'``.
        loss_weight (float): Multiplies every term. Defaults to 1.0.
    """

    def __init__(self,
                 cls_weight: float = 1.0,
                 reg_weight: float = 1.0,
                 temperature: float = 1.0,
                 reg_loss: str = 'l1',
                 loss_weight: float = 1.0) -> None:
        super().__init__(loss_weight=loss_weight)
        _check_positive(temperature=temperature)
        _check_reg_loss(reg_loss)
        self.cls_weight = cls_weight
        self.reg_weight = reg_weight
        self.temperature = temperature
        self.reg_loss = reg_loss

    def weighted(self, loss_cls: Tensor,
                 loss_reg: Tensor) -> Dict[str, Tensor]:
        """``loss_cls`` and ``loss_reg`` times their weights and
        ``loss_weight``."""
        w = self.loss_weight
        return dict(
            loss_cls=w * self.cls_weight * loss_cls,
            loss_reg=w * self.reg_weight * loss_reg)


@MODELS.register_module()
class DenseHeadKDLoss(_ClassAndBoxKDLoss):
    """Classification and box distillation for anchor-based/free dense heads.

    For heads whose forward returns ``(cls_scores, bbox_preds, ...)``, each a
    list of per-level (N, A*C', H, W) / (N, A*D, H, W) maps: RetinaNet,
    FCOS, ATSS, and the RPN of two-stage detectors (``module='rpn_head'``,
    where C' = 1 is the objectness). Anchors of all levels are pooled into
    ``M`` rows; ``q_m`` is the teacher's best foreground probability::

        loss_cls = w_cls * tau**2 * mean_m sum_c KL_b(sigma(t_mc/tau) ||
                   sigma(s_mc/tau))                       (sigmoid heads)
        loss_cls = w_cls * tau**2 * mean_m KL(softmax(t_m/tau) ||
                   softmax(s_m/tau))                      (softmax heads)
        loss_reg = w_reg * sum_m q_m sum_d rho(s_md - t_md) / sum_m q_m

    with ``rho`` = ``|.|`` (``'l1'``) or ``(.)**2`` (``'mse'``). Box outputs
    of background anchors are unconstrained, hence the weighting by
    ``q_m``. Further outputs (e.g. FCOS centerness) are not distilled.
    ``use_sigmoid_cls``, ``cls_out_channels``, ``num_base_priors`` and the
    box coder's ``means``/``stds`` must agree between the heads.

    Args:
        module (str): Recording name of the head. Defaults to
            ``'bbox_head'``.
        cls_weight (float): ``w_cls``. Defaults to 1.0.
        reg_weight (float): ``w_reg``. Defaults to 1.0.
        temperature (float): ``tau``. Defaults to 1.0.
        reg_loss (str): ``'l1'`` or ``'mse'``. Defaults to ``'l1'``.
        loss_weight (float): Multiplies every term. Defaults to 1.0.
    """

    def __init__(self,
                 module: str = 'bbox_head',
                 cls_weight: float = 1.0,
                 reg_weight: float = 1.0,
                 temperature: float = 1.0,
                 reg_loss: str = 'l1',
                 loss_weight: float = 1.0) -> None:
        super().__init__(cls_weight, reg_weight, temperature, reg_loss,
                         loss_weight)
        self.module = module
        self.student_modules = [module]
        self.teacher_modules = [module]

    def forward(self, ctx: DistillContext) -> Dict[str, Tensor]:
        what = f'DenseHeadKDLoss({self.module})'
        head = ctx.student.get_submodule(self.module)
        teacher_head = ctx.teacher.get_submodule(self.module)
        _check_same_attrs(
            head, teacher_head,
            ('use_sigmoid_cls', 'cls_out_channels', 'num_base_priors'), what)
        _check_same_box_coding(head, teacher_head, what)
        s_cls, s_reg = self._cls_and_reg(
            recorded(ctx.student_outs, self.module, 'student'), what)
        t_cls, t_reg = self._cls_and_reg(
            recorded(ctx.teacher_outs, self.module, 'teacher'), what)
        check_same_shapes(s_cls, t_cls, f'{what} class maps')
        check_same_shapes(s_reg, t_reg, f'{what} box maps')
        num_priors = head.num_base_priors
        reg_size = s_reg[0].shape[1] // num_priors
        s_cls = _levels_to_rows(s_cls, head.cls_out_channels)
        t_cls = _levels_to_rows(t_cls, head.cls_out_channels)
        s_reg = _levels_to_rows(s_reg, reg_size)
        t_reg = _levels_to_rows(t_reg, reg_size)
        use_sigmoid = head.use_sigmoid_cls
        loss_cls = _class_kd(s_cls, t_cls, use_sigmoid, self.temperature)
        confidence = _teacher_confidence(t_cls, use_sigmoid)
        loss_reg = _weighted_mean(
            regression_distance(s_reg, t_reg, self.reg_loss).sum(-1),
            confidence)
        return self.weighted(loss_cls, loss_reg)

    @staticmethod
    def _cls_and_reg(outputs: Any, what: str):
        if not (isinstance(outputs, (tuple, list)) and len(outputs) >= 2):
            raise ValueError(f'{what}: expected the head to return '
                             '(cls_scores, bbox_preds, ...), got '
                             f'{type(outputs).__name__}')
        return list(outputs[0]), list(outputs[1])


@MODELS.register_module()
class RoIHeadKDLoss(_ClassAndBoxKDLoss):
    """RoI classification and box distillation on the student's RoIs.

    The teacher's RoI box branch runs on the teacher's features at the
    student's RoIs (the sampled proposals in training), so both classify
    the same boxes. With ``R`` RoIs, C classes plus background (last),
    ``P_t = softmax(t)`` and ``c*_r = argmax_{c<C} P_t(r, c)`` the teacher's
    best foreground class with probability ``q_r``::

        loss_cls = w_cls * tau**2 * mean_r KL(softmax(t_r/tau) ||
                   softmax(s_r/tau))
        loss_reg = w_reg * sum_r q_r sum_d rho(s_{r,c*,d} - t_{r,c*,d})
                   / sum_r q_r

    with ``rho`` = ``|.|`` or ``(.)**2``; class-agnostic heads (one box per
    RoI) use that box. The box heads must share num_classes, class-agnostic
    regression and box coder ``means``/``stds``.

    Records ``'<roi_head>.bbox_roi_extractor:input'`` (features and RoIs)
    and ``'<roi_head>.bbox_head'`` of the student and ``teacher_feats`` of
    the teacher.

    Args:
        roi_head (str): Name of the RoI head in both detectors. Defaults to
            ``'roi_head'``.
        teacher_feats (str): Recording name of the teacher module whose
            output feeds its RoI head. Defaults to ``'neck'``.
        cls_weight (float): ``w_cls``. Defaults to 1.0.
        reg_weight (float): ``w_reg``. Defaults to 1.0.
        temperature (float): ``tau``. Defaults to 1.0.
        reg_loss (str): ``'l1'`` or ``'mse'``. Defaults to ``'l1'``.
        loss_weight (float): Multiplies every term. Defaults to 1.0.
    """

    def __init__(self,
                 roi_head: str = 'roi_head',
                 teacher_feats: str = 'neck',
                 cls_weight: float = 1.0,
                 reg_weight: float = 1.0,
                 temperature: float = 1.0,
                 reg_loss: str = 'l1',
                 loss_weight: float = 1.0) -> None:
        super().__init__(cls_weight, reg_weight, temperature, reg_loss,
                         loss_weight)
        self.roi_head = roi_head
        self.teacher_feats = teacher_feats
        self._rois_name = f'{roi_head}.bbox_roi_extractor:input'
        self._head_name = f'{roi_head}.bbox_head'
        self._extra_key = f'{roi_head}.teacher_box_branch'
        self.student_modules = [self._rois_name, self._head_name]
        self.teacher_modules = [teacher_feats]

    def forward(self, ctx: DistillContext) -> Dict[str, Tensor]:
        what = f'RoIHeadKDLoss({self.roi_head})'
        head = ctx.student.get_submodule(self._head_name)
        teacher_roi_head = ctx.teacher.get_submodule(self.roi_head)
        _check_same_attrs(head, teacher_roi_head.bbox_head,
                          ('num_classes', 'reg_class_agnostic'), what)
        _check_same_box_coding(head, teacher_roi_head.bbox_head, what)
        s_cls, s_reg = recorded(ctx.student_outs, self._head_name,
                                'student')[:2]
        if self._extra_key not in ctx.extra:
            self.teacher_forward(ctx)
        t_cls, t_reg = ctx.extra[self._extra_key]
        check_same_shapes([s_cls, s_reg], [t_cls, t_reg], what)
        if s_cls.shape[0] == 0:  # no RoIs: nothing to imitate
            zero = s_cls.sum() + s_reg.sum()
            return dict(loss_cls=zero, loss_reg=zero)
        if s_cls.shape[-1] != head.num_classes + 1:
            raise ValueError(f'{what}: expects softmax class scores over '
                             f'num_classes + 1 = {head.num_classes + 1} '
                             f'channels, got {s_cls.shape[-1]}')
        loss_cls = self.temperature**2 * softmax_kl_with_logits(
            s_cls, t_cls, self.temperature).mean()
        fg_prob = t_cls.softmax(-1)[:, :-1]
        confidence, best_class = fg_prob.max(-1)
        s_box = self._box_of_class(s_reg, best_class)
        t_box = self._box_of_class(t_reg, best_class)
        loss_reg = _weighted_mean(
            regression_distance(s_box, t_box, self.reg_loss).sum(-1),
            confidence)
        return self.weighted(loss_cls, loss_reg)

    @torch.no_grad()
    def teacher_forward(self, ctx: DistillContext) -> None:
        """The teacher's box branch on the student's RoIs, into
        ``ctx.extra``: (cls_score (R, C+1), bbox_pred)."""
        rois = recorded(ctx.student_outs, self._rois_name, 'student')[1]
        ctx.extra[self._extra_key] = self._teacher_box_branch(
            ctx.teacher.get_submodule(self.roi_head),
            recorded(ctx.teacher_outs, self.teacher_feats, 'teacher'),
            rois.detach())

    @staticmethod
    def _teacher_box_branch(roi_head: nn.Module, feats: Sequence[Tensor],
                            rois: Tensor):
        """The teacher RoI head's box branch on given RoIs, as mmdet's
        ``StandardRoIHead`` runs it: (cls_score (R, C+1), bbox_pred)."""
        extractor = roi_head.bbox_roi_extractor
        bbox_feats = extractor(feats[:extractor.num_inputs], rois)
        if roi_head.with_shared_head:
            bbox_feats = roi_head.shared_head(bbox_feats)
        return roi_head.bbox_head(bbox_feats)[:2]

    @staticmethod
    def _box_of_class(bbox_pred: Tensor, classes: Tensor) -> Tensor:
        """(R, 4) deltas of each RoI's class from (R, 4*C) or (R, 4)."""
        if bbox_pred.shape[-1] == 4:
            return bbox_pred
        per_class = bbox_pred.view(bbox_pred.shape[0], -1, 4)
        return per_class[torch.arange(len(classes)), classes]
