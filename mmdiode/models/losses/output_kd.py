"""Output distillation: the student's head outputs imitate the teacher's.

Every loss here is a :class:`~mmdiode.models.distill_base.BaseDistillLoss`
that reads head outputs recorded by the KD wrapper. Levels are matched by
index and every pair of tensors must have the same shape (a clear
``ValueError`` says which does not), so student and teacher need the same
head class with the same layout (levels, anchors per location, classes, box
coding); their widths and depths may differ. That is checked when the KD
wrapper is built (:meth:`check_pair`): a ``ConfigError`` names the output
losses, which cannot pair two different heads, and the cross-head recipe
(pseudo-labels plus feature distillation).

Notation: ``s`` student logits/values, ``t`` teacher's, ``tau`` the
temperature, ``sigma`` the sigmoid, ``KL_b(p || q) = p log(p/q) + (1-p)
log((1-p)/(1-q))`` the binary KL divergence, ``KL(p || q)`` the categorical
one. KL terms are multiplied by ``tau**2`` so their gradients keep their
scale when ``tau`` changes (Hinton et al., 2015). KL terms, unlike BCE, are
exactly 0 when student and teacher agree.
"""
import contextlib
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmdet.registry import MODELS
from torch import Tensor, nn

from mmdiode.utils.cli import ConfigError
from ..distill_base import BaseDistillLoss, DistillContext
from ..utils.recorder import INPUT_SUFFIX, check_recording_names

__all__ = [
    'OutputMSELoss', 'YOLOv3OutputKDLoss', 'DenseHeadKDLoss', 'RoIHeadKDLoss',
    'OUTPUT_LOSSES', 'binary_kl_with_logits', 'binary_kl_with_log_probs',
    'check_same_head', 'softmax_kl_with_logits'
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


def _log1mexp(x: Tensor) -> Tensor:
    """``log(1 - exp(x))`` for ``x < 0``, stable at both ends."""
    x = x.clamp(max=-1e-7)
    return torch.where(x > -0.6931, torch.log(-torch.expm1(x)),
                       torch.log1p(-torch.exp(x)))


def binary_kl_with_log_probs(student_log_probs: Tensor,
                             teacher_log_probs: Tensor) -> Tensor:
    """Elementwise ``KL_b(p || q)`` from ``log p`` (teacher) and ``log q``
    (student), same shape as the inputs.

    For probabilities that are products of sigmoids (a class score times a
    score factor), whose logarithms are sums of log-sigmoids; exactly 0
    where the inputs agree.
    """
    p = teacher_log_probs.exp()
    return (p * (teacher_log_probs - student_log_probs) +
            (1 - p) * (_log1mexp(teacher_log_probs) -
                       _log1mexp(student_log_probs)))


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


#: The losses that compare two heads' outputs element by element; none of
#: them can pair two different heads.
OUTPUT_LOSSES = ('OutputMSELoss', 'YOLOv3OutputKDLoss', 'DenseHeadKDLoss',
                 'RoIHeadKDLoss', 'DETRQueryKDLoss')

#: How to distil between two detectors whose heads differ.
CROSS_HEAD_FIX = (
    'to distil between different detectors, remove this loss, train the '
    "student on the teacher's detections (pseudo_label=dict(score_thr=0.3)"
    ', with det_loss_weight > 0) and distil features of backbone or neck '
    'stages (FitNetLoss, MimicLoss, FGFILoss, PKDLoss or HGDLoss)')


def _describe(detector: nn.Module, module: Optional[nn.Module],
              name: str) -> str:
    if module is None:
        return f'missing ({type(detector).__name__} has no {name})'
    return f'a {type(module).__name__}'


def _submodule(model: nn.Module, name: str) -> Optional[nn.Module]:
    try:
        return model.get_submodule(name)
    except AttributeError:
        return None


def check_same_head(what: str, student: nn.Module, teacher: nn.Module,
                    name: str) -> Tuple[nn.Module, nn.Module]:
    """The student's and the teacher's module ``name``, of the same class.

    Args:
        what (str): The loss, for the message (e.g. ``'DenseHeadKDLoss'``).
        student (nn.Module): The student detector.
        teacher (nn.Module): The teacher detector.
        name (str): Module path, e.g. ``'bbox_head'``.

    Returns:
        tuple[nn.Module, nn.Module]: The student's and the teacher's module.

    Raises:
        ValueError: The student has no such module (a wrong name).
        ConfigError: The teacher lacks the module or the classes differ;
        the message names the output losses and the cross-head recipe.
    """
    s, t = _submodule(student, name), _submodule(teacher, name)
    if s is None:  # a wrong name rather than another detector
        check_recording_names(student, [name], 'student')
    if t is None or type(s) is not type(t):
        raise ConfigError(
            f"{what} compares the student's and the teacher's {name} "
            'output by output, so both need the same head: the student\'s '
            f'{name} is {_describe(student, s, name)}, the teacher\'s '
            f'{_describe(teacher, t, name)}. The output losses '
            f'({", ".join(OUTPUT_LOSSES)}) cannot pair two different heads; '
            f'{CROSS_HEAD_FIX}')
    return s, t


def _check_same_attrs(student: nn.Module, teacher: nn.Module,
                      attrs: Sequence[str], what: str) -> None:
    """Refuses heads whose layout attributes differ."""
    for attr in attrs:
        s, t = getattr(student, attr, None), getattr(teacher, attr, None)
        if s != t:
            raise ConfigError(
                f'{what}: the student head has {attr}={s}, the teacher head '
                f'{attr}={t}; their outputs are not comparable. Give both '
                f'heads the same {attr}, or {CROSS_HEAD_FIX}')


def _check_same_box_coding(student: nn.Module, teacher: nn.Module,
                           what: str) -> None:
    """Box deltas are only comparable under the same coder normalisation
    (heads without a box coder, e.g. YOLOX's, decode their own)."""
    s = getattr(student, 'bbox_coder', None)
    t = getattr(teacher, 'bbox_coder', None)
    if type(s) is not type(t):
        raise ConfigError(f'{what}: box coders differ ({type(s).__name__} vs '
                          f'{type(t).__name__}); give both heads the same '
                          'bbox_coder')
    for attr in ('means', 'stds'):
        if list(getattr(s, attr, [])) != list(getattr(t, attr, [])):
            raise ConfigError(
                f'{what}: box coder {attr} differ ({getattr(s, attr)} vs '
                f'{getattr(t, attr)}); their deltas are not comparable, give '
                'both heads the same bbox_coder')


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

    def check_pair(self, student: nn.Module, teacher: nn.Module) -> None:
        """Refuses modules of different classes (see
        :func:`check_same_head`)."""
        check_same_head(f'OutputMSELoss({self.module})', student, teacher,
                        self.module)

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

    def check_pair(self, student: nn.Module, teacher: nn.Module) -> None:
        """Refuses different heads or anchor layouts."""
        what = f'YOLOv3OutputKDLoss({self.module})'
        head, teacher_head = check_same_head(what, student, teacher,
                                             self.module)
        _check_same_attrs(head, teacher_head,
                          ('num_base_priors', 'num_attrib'), what)

    def forward(self, ctx: DistillContext) -> Dict[str, Tensor]:
        what = f'YOLOv3OutputKDLoss({self.module})'
        head = ctx.student.get_submodule(self.module)
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


@contextlib.contextmanager
def module_mode(module: nn.Module, training: bool) -> Iterator[None]:
    """Sets ``module.training`` alone (not its children's) for a block.

    Some heads compute their outputs differently in training and in eval
    mode (FCOS with ``norm_on_bbox`` multiplies its box distances by the
    stride in eval mode only); the teacher's head then runs in the
    student's mode while its norm layers keep their eval behaviour.
    """
    was_training = module.training
    module.training = training
    try:
        yield
    finally:
        module.training = was_training


def _joint_log_probs(cls_logits: Tensor, factor_logits: Tensor,
                     temperature: float) -> Tensor:
    """``log(sigma(c / tau) * sigma(f / tau))`` of (M, C) class logits and
    (M, 1) score-factor logits, (M, C)."""
    return (F.logsigmoid(cls_logits / temperature) +
            F.logsigmoid(factor_logits / temperature))


@MODELS.register_module()
class DenseHeadKDLoss(_ClassAndBoxKDLoss):
    """Classification and box distillation for anchor-based/free dense heads.

    For heads whose forward returns ``(cls_scores, bbox_preds)`` or
    ``(cls_scores, bbox_preds, score_factors)``, each a list of per-level
    (N, A_l*C', H, W) / (N, A_l*D, H, W) / (N, A_l, H, W) maps: RetinaNet,
    ATSS, FCOS, SSD, YOLOX, RTMDet, and the RPN of two-stage detectors
    (``module='rpn_head'``, where C' = 1 is the objectness). A third output
    is what mmdet's ``predict_by_feat`` multiplies the class scores with
    (FCOS and ATSS centerness, YOLOX objectness), so the distilled score is
    the one the head detects with: ``P = sigma(c)`` without it, ``P =
    sigma(c) * sigma(f)`` with it. Anchors of all levels are pooled into
    ``M`` rows; ``q_m = max_c P_t(m, c)`` is the teacher's best foreground
    probability::

        loss_cls = w_cls * tau**2 * mean_m sum_c KL_b(P_t^tau(m, c) ||
                   P_s^tau(m, c))                         (sigmoid heads)
        loss_cls = w_cls * tau**2 * mean_m KL(softmax(t_m/tau) ||
                   softmax(s_m/tau))                      (softmax heads)
        loss_reg = w_reg * sum_m q_m sum_d rho(s_md - t_md) / sum_m q_m

    with ``P^tau`` the score of the logits divided by ``tau`` and ``rho`` =
    ``|.|`` (``'l1'``) or ``(.)**2`` (``'mse'``), on the box outputs in the
    head's own units (deltas, stride units or pixels). Box outputs of
    background anchors are unconstrained, hence the weighting by ``q_m``.

    The teacher's head runs again, without gradients, on the inputs its
    forward received, in the student head's mode (:func:`module_mode`), so
    both heads' outputs mean the same. Both heads must be of the same class
    with the same ``use_sigmoid_cls``, ``cls_out_channels``,
    ``num_base_priors`` and box coder ``means``/``stds`` (checked when the
    wrapper is built).

    Args:
        module (str): Recording name of the head. Defaults to
            ``'bbox_head'``.
        **kwargs: ``cls_weight``, ``reg_weight``, ``temperature``,
            ``reg_loss``, ``loss_weight``: see :class:`_ClassAndBoxKDLoss`.
    """

    def __init__(self, module: str = 'bbox_head', **kwargs) -> None:
        super().__init__(**kwargs)
        self.module = module
        self._input_name = f'{module}{INPUT_SUFFIX}'
        self._extra_key = f'{module}.teacher_outputs'
        self.student_modules = [module]
        self.teacher_modules = [self._input_name]

    @property
    def _what(self) -> str:
        return f'DenseHeadKDLoss({self.module})'

    def check_pair(self, student: nn.Module, teacher: nn.Module) -> None:
        """Refuses different heads, layouts or box codings."""
        head, teacher_head = check_same_head(self._what, student, teacher,
                                             self.module)
        _check_same_attrs(
            head, teacher_head,
            ('use_sigmoid_cls', 'cls_out_channels', 'num_base_priors'),
            self._what)
        _check_same_box_coding(head, teacher_head, self._what)

    @torch.no_grad()
    def teacher_forward(self, ctx: DistillContext) -> None:
        """The teacher head on its recorded inputs in the student head's
        mode, into ``ctx.extra``."""
        args = recorded(ctx.teacher_outs, self._input_name, 'teacher')
        head = ctx.teacher.get_submodule(self.module)
        training = ctx.student.get_submodule(self.module).training
        with module_mode(head, training):
            ctx.extra[self._extra_key] = head(*args)

    def forward(self, ctx: DistillContext) -> Dict[str, Tensor]:
        what = self._what
        head = ctx.student.get_submodule(self.module)
        if self._extra_key not in ctx.extra:
            self.teacher_forward(ctx)
        s_cls, s_reg, s_fac = self._outputs(
            recorded(ctx.student_outs, self.module, 'student'), what)
        t_cls, t_reg, t_fac = self._outputs(ctx.extra[self._extra_key], what)
        check_same_shapes(s_cls, t_cls, f'{what} class maps')
        check_same_shapes(s_reg, t_reg, f'{what} box maps')
        check_same_shapes(s_fac, t_fac, f'{what} score factor maps')
        num_cls = head.cls_out_channels
        # Priors per location from the maps (SSD's differ per level).
        priors = s_cls[0].shape[1] // num_cls
        reg_size = s_reg[0].shape[1] // priors
        s_cls = _levels_to_rows(s_cls, num_cls)
        t_cls = _levels_to_rows(t_cls, num_cls)
        s_reg = _levels_to_rows(s_reg, reg_size)
        t_reg = _levels_to_rows(t_reg, reg_size)
        tau = self.temperature
        if s_fac:
            if not head.use_sigmoid_cls:
                raise ValueError(f'{what}: score factors of a softmax head '
                                 'are not supported')
            s_fac = _levels_to_rows(s_fac, 1)
            t_fac = _levels_to_rows(t_fac, 1)
            loss_cls = tau**2 * binary_kl_with_log_probs(
                _joint_log_probs(s_cls, s_fac, tau),
                _joint_log_probs(t_cls, t_fac, tau)).sum(-1).mean()
            confidence = _joint_log_probs(t_cls, t_fac,
                                          1.0).exp().max(-1).values
        else:
            use_sigmoid = head.use_sigmoid_cls
            loss_cls = _class_kd(s_cls, t_cls, use_sigmoid, tau)
            confidence = _teacher_confidence(t_cls, use_sigmoid)
        loss_reg = _weighted_mean(
            regression_distance(s_reg, t_reg, self.reg_loss).sum(-1),
            confidence)
        return self.weighted(loss_cls, loss_reg)

    @staticmethod
    def _outputs(outputs: Any,
                 what: str) -> Tuple[List[Tensor], List[Tensor], List[Tensor]]:
        """(cls_scores, bbox_preds, score_factors or []) of a head's
        forward."""
        if not (isinstance(outputs, (tuple, list)) and 2 <= len(outputs) <= 3):
            raise ValueError(f'{what}: expected the head to return '
                             '(cls_scores, bbox_preds[, score_factors]), got '
                             f'{type(outputs).__name__}')
        factors = list(outputs[2]) if len(outputs) == 3 else []
        return list(outputs[0]), list(outputs[1]), factors


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
    RoI) use that box. The RoI heads and their box heads must be of the
    same classes, with the same num_classes, class-agnostic regression and
    box coder ``means``/``stds`` (checked when the wrapper is built).

    Records ``'<roi_head>.bbox_roi_extractor:input'`` (features and RoIs)
    and ``'<roi_head>.bbox_head'`` of the student and ``teacher_feats`` of
    the teacher. A cascade RoI head (Cascade R-CNN: one extractor and box
    head per stage) is distilled one stage per loss: ``stage=i`` reads
    ``'<roi_head>.bbox_roi_extractor.<i>:input'`` and
    ``'<roi_head>.bbox_head.<i>'``, the RoIs the student's stage ``i``
    classifies (refined by its earlier stages).

    Args:
        roi_head (str): Name of the RoI head in both detectors. Defaults to
            ``'roi_head'``.
        teacher_feats (str): Recording name of the teacher module whose
            output feeds its RoI head. Defaults to ``'neck'``.
        stage (int, optional): The stage of a cascade RoI head. Defaults to
            None (a single-stage RoI head such as ``StandardRoIHead``).
        **kwargs: ``cls_weight``, ``reg_weight``, ``temperature``,
            ``reg_loss``, ``loss_weight``: see :class:`_ClassAndBoxKDLoss`.
    """

    def __init__(self,
                 roi_head: str = 'roi_head',
                 teacher_feats: str = 'neck',
                 stage: Optional[int] = None,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        if stage is not None and stage < 0:
            raise ValueError(f'stage must be >= 0, got {stage}')
        self.roi_head = roi_head
        self.teacher_feats = teacher_feats
        self.stage = stage
        suffix = '' if stage is None else f'.{stage}'
        self._extractor_name = f'{roi_head}.bbox_roi_extractor{suffix}'
        self._rois_name = f'{self._extractor_name}{INPUT_SUFFIX}'
        self._head_name = f'{roi_head}.bbox_head{suffix}'
        self._extra_key = f'{roi_head}{suffix}.teacher_box_branch'
        self.student_modules = [self._rois_name, self._head_name]
        self.teacher_modules = [teacher_feats]

    @property
    def _what(self) -> str:
        stage = '' if self.stage is None else f', stage={self.stage}'
        return f'RoIHeadKDLoss({self.roi_head}{stage})'

    def check_pair(self, student: nn.Module, teacher: nn.Module) -> None:
        """Refuses different RoI or box heads, a cascade without ``stage``
        and box heads of other classes or box codings."""
        what = self._what
        roi_head, _ = check_same_head(what, student, teacher, self.roi_head)
        is_cascade = isinstance(roi_head.bbox_head, nn.ModuleList)
        if is_cascade and self.stage is None:
            raise ConfigError(
                f'{what}: {type(roi_head).__name__} has '
                f'{len(roi_head.bbox_head)} stages; give stage=<index> (one '
                'RoIHeadKDLoss per distilled stage)')
        if not is_cascade and self.stage is not None:
            raise ConfigError(f'{what}: {type(roi_head).__name__} has one '
                              'stage; remove stage')
        head, teacher_head = check_same_head(what, student, teacher,
                                             self._head_name)
        _check_same_attrs(head, teacher_head,
                          ('num_classes', 'reg_class_agnostic'), what)
        _check_same_box_coding(head, teacher_head, what)

    def forward(self, ctx: DistillContext) -> Dict[str, Tensor]:
        what = self._what
        head = ctx.student.get_submodule(self._head_name)
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
            ctx.teacher,
            recorded(ctx.teacher_outs, self.teacher_feats, 'teacher'),
            rois.detach())

    def _teacher_box_branch(self, teacher: nn.Module,
                            feats: Sequence[Tensor], rois: Tensor):
        """The teacher RoI head's box branch (of ``stage``) on given RoIs:
        mmdet's own ``_bbox_forward`` (``StandardRoIHead`` and
        ``CascadeRoIHead``, which takes the stage first).

        Returns:
            tuple[Tensor, Tensor]: cls_score (R, C+1) and bbox_pred.
        """
        roi_head = teacher.get_submodule(self.roi_head)
        stage = () if self.stage is None else (self.stage, )
        out = roi_head._bbox_forward(*stage, tuple(feats), rois)
        return out['cls_score'], out['bbox_pred']

    @staticmethod
    def _box_of_class(bbox_pred: Tensor, classes: Tensor) -> Tensor:
        """(R, 4) deltas of each RoI's class from (R, 4*C) or (R, 4)."""
        if bbox_pred.shape[-1] == 4:
            return bbox_pred
        per_class = bbox_pred.view(bbox_pred.shape[0], -1, 4)
        return per_class[torch.arange(len(classes)), classes]
