"""DeepInversion's feature-statistics prior on a teacher's BatchNorm layers.

A BatchNorm layer's running mean and variance summarise the distribution of
its input on the teacher's training data. The layers measure the same
statistics of the synthesized batch as they run, and the prior penalises
the distance, which pulls the images towards the training distribution.
"""
import re
from dataclasses import dataclass
from typing import Dict, List, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm


def _channel_sums(x: Tensor) -> Tuple[Tensor, Tensor]:
    """Per-channel sum and sum of squares of (N, C, ...) input, fast.

    ``torch.var_mean`` over several non-adjacent dimensions is slow on the
    CPU (about 10x a plain sum). Here: a plain sum plus per-(image, channel)
    norms, accumulated in at least float32 (half-precision amp activations
    too).

    Returns:
        tuple[Tensor, Tensor]: Two (C,) tensors.
    """
    n, c = x.shape[:2]
    dims = [0] + list(range(2, x.dim()))
    acc = torch.promote_types(x.dtype, torch.float32)
    total = x.sum(dims, dtype=acc)
    if x.is_contiguous():
        # Norms of contiguous (image, channel) rows: one reduction pass, no
        # (N, C, ...) temporary for x * x.
        row_norms = torch.linalg.vector_norm(
            x.reshape(n * c, -1), dim=1, dtype=acc)
        return total, row_norms.square().view(n, c).sum(0)
    return total, torch.linalg.vector_norm(x, dim=dims, dtype=acc).square()


def _per_channel(values: Tensor, like: Tensor) -> Tensor:
    """(C,) values shaped (1, C, 1, ...) to broadcast over ``like``, in its
    dtype."""
    return values.to(like.dtype).view((1, -1) + (1, ) * (like.dim() - 2))


def _channel_sums_grad(x: Tensor, grad_total: Tensor,
                       grad_total_sq: Tensor) -> Tensor:
    """Gradient of :func:`_channel_sums` w.r.t. ``x``: the per-channel affine
    map ``grad_total + 2 grad_total_sq x``, as a new tensor, in one pass."""
    scale, shift = 2 * grad_total_sq, grad_total
    if x.dtype == scale.dtype:
        # batch_norm with zero mean, unit variance and eps 0 is exactly the
        # affine map scale * x + shift, in one fused pass (twice as fast on
        # the CPU as a broadcasting addcmul).
        return F.batch_norm(x, torch.zeros_like(scale),
                            torch.ones_like(scale), scale, shift, False, 0.0,
                            0.0)
    return torch.addcmul(_per_channel(shift, x), x, _per_channel(scale, x))


class _ChannelSums(torch.autograd.Function):
    """:func:`_channel_sums` with a one-pass backward.

    Autograd's backward of the sum and the norms would take several passes
    over the activation; :func:`_channel_sums_grad` takes one.
    """

    @staticmethod
    def forward(ctx, x: Tensor) -> Tuple[Tensor, Tensor]:
        ctx.save_for_backward(x)
        return _channel_sums(x)

    @staticmethod
    def backward(ctx, grad_total: Tensor, grad_total_sq: Tensor) -> Tensor:
        x, = ctx.saved_tensors
        return _channel_sums_grad(x, grad_total, grad_total_sq)


class _EvalBatchNormWithSums(torch.autograd.Function):
    """An eval-mode BatchNorm that also returns its input's channel sums.

    ``y = (x - running_mean) / sqrt(running_var + eps) * weight + bias`` is
    the per-channel affine map ``y = a x + b``, so one backward serves the
    layer and the statistics: ``dx = a dy + g_sum + 2 g_sum_sq x``, two
    passes over the activation where a layer's backward, the statistics'
    backward and autograd's sum of the two take five. Only for frozen
    layers: ``weight`` and ``bias`` get no gradient.
    """

    @staticmethod
    def forward(ctx, x: Tensor, bn: _BatchNorm) -> Tuple[Tensor, Tensor,
                                                         Tensor]:
        # The layer's own arithmetic, so y equals its forward exactly.
        y = F.batch_norm(x, bn.running_mean, bn.running_var, bn.weight,
                         bn.bias, False, 0.0, bn.eps)
        a = torch.rsqrt(bn.running_var + bn.eps)
        if bn.weight is not None:
            a = a * bn.weight
        ctx.save_for_backward(x, a)
        return (y, ) + _channel_sums(x)

    @staticmethod
    def backward(ctx, grad_y: Tensor, grad_total: Tensor,
                 grad_total_sq: Tensor) -> Tuple[Tensor, None]:
        # Autograd materialises zeros for unused outputs: no None here.
        x, a = ctx.saved_tensors
        grad = _channel_sums_grad(x, grad_total, grad_total_sq)
        return grad.addcmul_(grad_y, _per_channel(a, x)), None


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
        # (layer index, sum, sum of squares, elements per channel) per call.
        self._records: List[Tuple[int, Tensor, Tensor, int]] = []
        self._plans: Dict[tuple, _Plan] = {}
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
                y, total, total_sq = _EvalBatchNormWithSums.apply(x, module)
            else:
                y = layer_forward(module, x)
                total, total_sq = _ChannelSums.apply(x)
            self._records.append(
                (index, total, total_sq, x.numel() // x.shape[1]))
            return y

        return forward

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
        key = tuple((index, count) for index, _, _, count in records)
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = self._make_plan(key,
                                                      records[0][1].device)
        counts = plan.counts
        mean = torch.cat([r[1] for r in records]) / counts
        var = (torch.cat([r[2] for r in records]) / counts -
               mean * mean).clamp(min=0)
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

    def __enter__(self) -> 'BNStatisticsPrior':
        return self

    def __exit__(self, *exc) -> None:
        self.remove()
