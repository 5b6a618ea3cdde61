"""DeepInversion's feature-statistics prior on a teacher's BatchNorm layers.

A BatchNorm layer's running mean and variance summarise the distribution of
its input on the teacher's training data. Forward hooks measure the same
statistics of the synthesized batch and penalise the distance, which pulls
the images towards the training distribution.
"""
import re
from dataclasses import dataclass
from typing import Dict, List, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm


class _ChannelSums(torch.autograd.Function):
    """Per-channel sum and sum of squares of (N, C, ...) input, fast.

    ``torch.var_mean`` over several non-adjacent dimensions is slow on the
    CPU (about 10x a plain sum) and its autograd backward takes several
    passes over the activation; the hook runs on every BatchNorm layer of
    every synthesis step. Here the forward is a plain sum plus per-(image,
    channel) norms, accumulated in at least float32, and the backward
    (``g_sum + 2 g_sum_sq x``) is one fused per-channel affine map of ``x``.
    """

    @staticmethod
    def forward(ctx, x: Tensor) -> Tuple[Tensor, Tensor]:
        n, c = x.shape[:2]
        dims = [0] + list(range(2, x.dim()))
        # Accumulate half-precision (amp) activations in float32.
        acc = torch.promote_types(x.dtype, torch.float32)
        total = x.sum(dims, dtype=acc)
        if x.is_contiguous():
            # Norms of contiguous (image, channel) rows: one reduction pass,
            # no (N, C, ...) temporary for x * x.
            row_norms = torch.linalg.vector_norm(
                x.reshape(n * c, -1), dim=1, dtype=acc)
            total_sq = row_norms.square().view(n, c).sum(0)
        else:
            total_sq = torch.linalg.vector_norm(
                x, dim=dims, dtype=acc).square()
        ctx.save_for_backward(x)
        return total, total_sq

    @staticmethod
    def backward(ctx, grad_total: Tensor, grad_total_sq: Tensor) -> Tensor:
        x, = ctx.saved_tensors
        scale, shift = 2 * grad_total_sq, grad_total
        if x.dtype == scale.dtype:
            # batch_norm with zero mean, unit variance and eps 0 is exactly
            # the affine map scale * x + shift, in one fused pass.
            return F.batch_norm(x, torch.zeros_like(scale),
                                torch.ones_like(scale), scale, shift, False,
                                0.0, 0.0)
        shape = (1, -1) + (1, ) * (x.dim() - 2)
        return torch.addcmul(
            shift.to(x.dtype).view(shape), x,
            scale.to(x.dtype).view(shape))


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

    Usage::

        with BNStatisticsPrior(teacher, layer_pattern=r'^backbone\\.') as bn:
            bn.reset()
            teacher.loss(inputs, data_samples)
            loss = bn.loss()

    Args:
        model (nn.Module): The teacher. Its BatchNorm layers (any
            ``_BatchNorm``: BatchNorm2d, SyncBatchNorm, ...) with running
            statistics whose name matches ``layer_pattern`` get a forward
            hook.
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
        #: Whether the hooks record (off e.g. while the teacher predicts).
        self.enabled = True
        # (layer index, sum, sum of squares, elements per channel) per call.
        self._records: List[Tuple[int, Tensor, Tensor, int]] = []
        self._plans: Dict[tuple, _Plan] = {}
        self._handles = [
            module.register_forward_hook(self._make_hook(index))
            for index, (_, module) in enumerate(self.layers)
        ]

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

    def _make_hook(self, index: int):

        def hook(module: _BatchNorm, inputs: tuple, output: Tensor) -> None:
            if self.enabled:
                x = inputs[0]
                total, total_sq = _ChannelSums.apply(x)
                self._records.append(
                    (index, total, total_sq, x.numel() // x.shape[1]))

        return hook

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
        """Removes every hook (idempotent) and drops recorded tensors."""
        for handle in self._handles:
            handle.remove()
        self._handles = []
        self._records = []
        self._plans = {}

    def __enter__(self) -> 'BNStatisticsPrior':
        return self

    def __exit__(self, *exc) -> None:
        self.remove()
