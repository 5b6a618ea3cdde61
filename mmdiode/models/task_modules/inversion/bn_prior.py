"""DeepInversion's feature-statistics prior on a teacher's BatchNorm layers.

A BatchNorm layer's running mean and variance summarise the distribution of
its input on the teacher's training data. The layers measure the same
statistics of the synthesized batch as they run, and the prior penalises
the distance, which pulls the images towards the training distribution.

The prior runs in every synthesis iteration on every layer (72 calls per
forward pass for the bundled YOLOv3), so the per-call work is kept to a few
tensor operations: each costs microseconds of dispatch on the CPU whatever
the tensor's size.
"""
import re
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm


def _channel_stats(x: Tensor) -> Tensor:
    """Per-channel sum and sum of squares of (N, C, ...) input, fast.

    ``torch.var_mean`` or a norm over several non-adjacent dimensions is
    slow on the CPU (up to 10x a plain sum). Here: a plain sum plus the norm
    of per-(image, channel) norms of contiguous rows, accumulated in at
    least float32 (half-precision amp activations too).

    Args:
        x (Tensor): (N, C, ...) input.

    Returns:
        Tensor: (2, C): the sums, then the sums of squares.
    """
    n, c = x.shape[:2]
    dims = (0, ) + tuple(range(2, x.dim()))
    acc = torch.promote_types(x.dtype, torch.float32)
    total = x.sum(dims, dtype=acc)
    if x.is_contiguous():
        row_norms = torch.linalg.vector_norm(
            x.view(n, c, -1), dim=2, dtype=acc)
        norms = torch.linalg.vector_norm(row_norms, dim=0)
    else:
        norms = torch.linalg.vector_norm(x, dim=dims, dtype=acc)
    return torch.stack((total, norms.square_()))


def _per_channel(values: Tensor, like: Tensor) -> Tensor:
    """(C,) values shaped (1, C, 1, ...) to broadcast over ``like``, in its
    dtype."""
    return values.to(like.dtype).view((1, -1) + (1, ) * (like.dim() - 2))


@dataclass
class _LayerConstants:
    """Per-channel constants of one layer for the fused autograd nodes."""
    #: (1, C, 1, ...) ``weight / sqrt(running_var + eps)`` in the input's
    #: dtype: the slope of the eval-mode layer, ``y = scale * x + shift``
    #: (None for a layer that normalises with batch statistics).
    scale: Optional[Tensor]
    #: (C,) zeros and (C,) 1/4 in the statistics' dtype: the running
    #: statistics with which ``batch_norm`` computes the statistics'
    #: gradient (see :func:`_channel_stats_grad`).
    zeros: Tensor
    quarter: Tensor


def _channel_stats_grad(x: Tensor, grad_stats: Tensor,
                        constants: _LayerConstants) -> Tensor:
    """Gradient of :func:`_channel_stats` w.r.t. ``x``: the per-channel
    affine map ``grad_sum + 2 grad_sum_sq x``, as a new tensor, in one pass.

    Args:
        x (Tensor): (N, C, ...) input.
        grad_stats (Tensor): (2, C) gradient w.r.t. the sums and the sums of
            squares.
        constants (_LayerConstants): The layer's constants.
    """
    if x.dtype == grad_stats.dtype:
        # batch_norm with running mean 0, variance 1/4 and eps 0 is exactly
        # (x / 0.5) * weight + bias = 2 grad_sum_sq x + grad_sum, in one
        # fused pass (twice as fast on the CPU as a broadcasting addcmul).
        return torch.batch_norm(x, grad_stats[1], grad_stats[0],
                                constants.zeros, constants.quarter, False,
                                0.0, 0.0, False)
    return torch.addcmul(
        _per_channel(grad_stats[0], x), x, _per_channel(2 * grad_stats[1], x))


class _ChannelStats(torch.autograd.Function):
    """:func:`_channel_stats` with a one-pass backward.

    Autograd's backward of the sum and the norms would take several passes
    over the activation; :func:`_channel_stats_grad` takes one.
    """

    @staticmethod
    def forward(ctx, x: Tensor, constants: _LayerConstants) -> Tensor:
        ctx.save_for_backward(x)
        ctx.constants = constants
        return _channel_stats(x)

    @staticmethod
    def backward(ctx, grad_stats: Tensor) -> Tuple[Tensor, None]:
        x, = ctx.saved_tensors
        return _channel_stats_grad(x, grad_stats, ctx.constants), None


class _EvalBatchNormWithStats(torch.autograd.Function):
    """An eval-mode BatchNorm that also returns its input's channel stats.

    ``y = (x - running_mean) / sqrt(running_var + eps) * weight + bias`` is
    the per-channel affine map ``y = a x + b``, so one backward serves the
    layer and the statistics: ``dx = a dy + g_sum + 2 g_sum_sq x``, two
    passes over the activation where a layer's backward, the statistics'
    backward and autograd's sum of the two take five. Only for frozen
    layers: ``weight`` and ``bias`` get no gradient.
    """

    @staticmethod
    def forward(ctx, x: Tensor, bn: _BatchNorm,
                constants: _LayerConstants) -> Tuple[Tensor, Tensor]:
        # The layer's own arithmetic (F.batch_norm's op), so y equals its
        # forward exactly.
        y = torch.batch_norm(x, bn.weight, bn.bias, bn.running_mean,
                             bn.running_var, False, 0.0, bn.eps,
                             torch.backends.cudnn.enabled)
        ctx.save_for_backward(x)
        ctx.constants = constants
        return y, _channel_stats(x)

    @staticmethod
    def backward(ctx, grad_y: Tensor,
                 grad_stats: Tensor) -> Tuple[Tensor, None, None]:
        # Autograd materialises zeros for unused outputs: no None here.
        x, = ctx.saved_tensors
        grad = _channel_stats_grad(x, grad_stats, ctx.constants)
        return grad.addcmul_(grad_y, ctx.constants.scale), None, None


def _uses_running_statistics(bn: _BatchNorm) -> bool:
    """Whether the layer normalises with its running statistics (eval mode,
    as the teacher runs) and has no trainable affine parameters."""
    frozen = all(p is None or not p.requires_grad
                 for p in (bn.weight, bn.bias))
    return not bn.training and frozen


@dataclass
class _Plan:
    """Constants to score one sequence of recorded layer calls at once."""
    counts: Tensor  # (T,) elements per channel of every recorded channel
    running_mean: Tensor  # (T,)
    running_var: Tensor  # (T,)
    slots: Tensor  # (T,) position of each channel in a (E, C_max) grid
    grid: Tuple[int, int]  # (E, C_max): E recorded calls
    multipliers: Tensor  # (E,)


class BNStatisticsPrior:
    """Distance between a batch's BN-input statistics and the running ones.

    For every selected layer ``l`` with input ``x`` of shape (N, C, ...)::

        loss_l = ||mean(x) - running_mean||_p + ||var(x) - running_var||_p

    with the mean and the biased variance taken over every dimension but the
    channel one, and ``loss = sum_l m_l * loss_l`` where ``m_l`` is
    ``first_bn_multiplier`` for the first selected layer (in
    ``named_modules()`` order) and 1 otherwise. A layer called several
    times in one forward pass (shared by several levels) counts once per
    call.

    The selected layers' ``forward`` is replaced while the prior exists
    (restored by :meth:`remove`, or on leaving its ``with`` block): in eval
    mode with frozen parameters, the teacher's case, the layer's output and
    its input statistics come from one autograd node whose backward makes
    two passes over the activation instead of five (a forward hook on the
    input would add a second consumer of it); otherwise the layer runs its
    own forward and the statistics are taken on its input as a hook would.
    The outputs equal the layer's own.

    Usage::

        with BNStatisticsPrior(teacher, layer_pattern=r'^backbone\\.') as bn:
            bn.reset()
            teacher.loss(inputs, data_samples)
            loss = bn.loss()

    Args:
        model (nn.Module): The teacher. Its BatchNorm layers (any
            ``_BatchNorm``: BatchNorm2d, SyncBatchNorm, ...) with running
            statistics whose name matches ``layer_pattern`` record their
            input statistics.
        p (float): Order of the norm. Defaults to 2 (DIODE).
        first_bn_multiplier (float): Weight of the first selected layer.
            Defaults to 2.0 (DIODE; DeepInversion uses 10).
        layer_pattern (str): Regular expression searched (``re.search``) in
            the module names, e.g. ``'^backbone\\.'`` for DIODE's backbone-only
            prior or ``'.*'`` for every layer. Defaults to ``'.*'``.

    Raises:
        ValueError: If no BatchNorm layer with running statistics matches.
    """

    def __init__(self,
                 model: nn.Module,
                 p: float = 2.0,
                 first_bn_multiplier: float = 2.0,
                 layer_pattern: str = '.*') -> None:
        if p <= 0:
            raise ValueError(f'p must be > 0, got {p}')
        self.p = p
        self.first_bn_multiplier = first_bn_multiplier
        self.layer_pattern = layer_pattern
        self.layers = self._select_layers(model, layer_pattern)
        #: Whether the layers record (off e.g. while the teacher predicts).
        self.enabled = True
        # (layer index, (2, C) sums and sums of squares, elements per
        # channel) per call.
        self._records: List[Tuple[int, Tensor, int]] = []
        self._plans: Dict[tuple, _Plan] = {}
        # Per layer index: (cache key, constants); see _layer_constants().
        self._constants: Dict[int, Tuple[tuple, _LayerConstants]] = {}
        self._patched: List[_BatchNorm] = []
        for index, (_, module) in enumerate(self.layers):
            if 'forward' in vars(module):
                raise ValueError(
                    f'BN statistics prior: layer {self.layers[index][0]} '
                    'already has a replaced forward (another prior on the '
                    'same teacher?); remove() that one first')
            module.forward = self._make_forward(index, module)
            self._patched.append(module)

    @staticmethod
    def _select_layers(model: nn.Module,
                       pattern: str) -> List[Tuple[str, _BatchNorm]]:
        regex = re.compile(pattern)
        all_bn = [(name, m) for name, m in model.named_modules()
                  if isinstance(m, _BatchNorm) and m.running_mean is not None]
        selected = [(name, m) for name, m in all_bn if regex.search(name)]
        if not selected:
            what = (f'none of its {len(all_bn)} BatchNorm layers matches '
                    f'layer_pattern {pattern!r}' if all_bn else
                    f'it has no BatchNorm layer with running statistics '
                    f'(layer_pattern {pattern!r} matched nothing)')
            raise ValueError(
                f'BN statistics prior: the teacher '
                f'{type(model).__name__} offers no statistics to match: '
                f'{what}. Use a pattern that matches its BatchNorm layers, '
                'or switch the prior off (bn_prior weight=0), e.g. with '
                'MultiObjectImpressions for teachers without BatchNorm.')
        return selected

    def _make_forward(self, index: int, module: _BatchNorm):
        layer_forward = type(module).forward

        def forward(x: Tensor) -> Tensor:
            if not self.enabled:
                return layer_forward(module, x)
            if _uses_running_statistics(module):
                module._check_input_dim(x)
                y, stats = _EvalBatchNormWithStats.apply(
                    x, module, self._layer_constants(index, module, x, True))
            else:
                y = layer_forward(module, x)
                stats = _ChannelStats.apply(
                    x, self._layer_constants(index, module, x, False))
            self._records.append((index, stats, x.numel() // x.shape[1]))
            return y

        return forward

    def _layer_constants(self, index: int, module: _BatchNorm, x: Tensor,
                         with_scale: bool) -> _LayerConstants:
        """The layer's constants for input like ``x``, cached while the
        layer's running variance and weight stay the same tensors, unchanged
        (their in-place version counters), so that each call costs no
        operation for them."""
        params = (module.running_var, module.weight) if with_scale else ()
        key = (with_scale, x.dim(), x.dtype, x.device) + tuple(
            (id(t), t._version) for t in params if t is not None)
        cached = self._constants.get(index)
        if cached is not None and cached[0] == key:
            return cached[1]
        c = x.shape[1]
        scale = None
        if with_scale:
            scale = torch.rsqrt(module.running_var.detach() + module.eps)
            if module.weight is not None:
                scale = scale * module.weight.detach()
            scale = _per_channel(scale, x)
        acc = torch.promote_types(x.dtype, torch.float32)
        constants = _LayerConstants(
            scale=scale,
            zeros=torch.zeros(c, device=x.device, dtype=acc),
            quarter=torch.full((c, ), 0.25, device=x.device, dtype=acc))
        self._constants[index] = (key, constants)
        return constants

    def reset(self) -> None:
        """Forgets the statistics recorded since the last call."""
        self._records = []

    def loss(self) -> Tensor:
        """The prior over the forward passes since the last :meth:`reset`.

        All layers are scored together (a handful of batched operations
        instead of a dozen per layer). Clears the records.

        Returns:
            Tensor: 0-dim float32 loss (differentiable w.r.t. the teacher's
            input).
        """
        records, self._records = self._records, []
        if not records:
            raise RuntimeError(
                'BNStatisticsPrior.loss(): no selected BatchNorm layer ran '
                'since the last reset() (was the teacher called?)')
        key = tuple((index, count) for index, _, count in records)
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = self._make_plan(key,
                                                      records[0][1].device)
        sums = torch.cat([stats for _, stats, _ in records], 1) / plan.counts
        mean = sums[0]
        var = (sums[1] - mean * mean).clamp(min=0)
        diffs = torch.stack([mean - plan.running_mean, var - plan.running_var])
        # Zero padding leaves every layer's p-norm unchanged.
        num_calls, width = plan.grid
        grid = diffs.new_zeros(2, num_calls * width).index_copy(
            1, plan.slots, diffs)
        norms = torch.linalg.vector_norm(
            grid.view(2, num_calls, width), self.p, dim=2)
        return (norms.sum(0) * plan.multipliers).sum()

    def _make_plan(self, key: tuple, device: torch.device) -> _Plan:
        modules = [self.layers[index][1] for index, _ in key]
        width = max(m.num_features for m in modules)

        def cat(values) -> Tensor:
            return torch.cat(values).to(device=device, dtype=torch.float32)

        return _Plan(
            counts=cat([
                torch.full((m.num_features, ), float(count))
                for m, (_, count) in zip(modules, key)
            ]),
            running_mean=cat([m.running_mean.detach() for m in modules]),
            running_var=cat([m.running_var.detach() for m in modules]),
            slots=torch.cat([
                torch.arange(m.num_features) + call * width
                for call, m in enumerate(modules)
            ]).to(device),
            grid=(len(modules), width),
            multipliers=cat([
                torch.tensor([self.first_bn_multiplier if index == 0 else 1.0])
                for index, _ in key
            ]))

    def remove(self) -> None:
        """Restores the layers' own forward (idempotent) and drops recorded
        tensors."""
        for module in self._patched:
            del module.forward
        self._patched = []
        self._records = []
        self._plans = {}
        self._constants = {}

    def __enter__(self) -> 'BNStatisticsPrior':
        return self

    def __exit__(self, *exc) -> None:
        self.remove()
