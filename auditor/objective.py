"""The audited function: the training objective as trained, as one deterministic function.

Every probe compares evaluations of one function ``f(params, X, y) -> scalar`` (secants, finite
differences, convexity gaps, Hessian-vector products, full-data passes at neighbouring
checkpoints). For that to measure *one* function on models people train, :class:`Objective`
fixes what a plain forward pass leaves open:

Mode
    ``mode="train"`` (default) evaluates the function training differentiates: every module
    with the flag it had when training stepped (:meth:`Objective.fix_modes`, which the Auditor
    calls at the first optimizer step; all modules in train mode before that). BatchNorm
    normalizes with the probe batch's own statistics and dropout drops — except in modules the
    user froze with ``.eval()`` (a frozen BatchNorm keeps its running statistics, as in
    training). ``mode="eval"`` evaluates the eval-mode function (running statistics, no dropout)
    instead. ``mode=None`` leaves each module's flag as it is at the call. The flags are set for
    the evaluation only and restored exactly afterwards (even on an exception); ``train()`` /
    ``eval()`` are not called, so a module overriding them sees nothing.
Buffers
    read at each call and *cloned*: BatchNorm's running statistics and ``num_batches_tracked``
    are never written, whatever the mode.
Common random numbers
    every evaluation runs with torch's CPU generator (and the CUDA generator of the parameters'
    device) seeded from ``seed`` and the current *draw* (0 unless inside :meth:`draw`), and the
    caller's generator state is restored afterwards. Dropout (and any stochastic layer using
    torch's generators) therefore draws the same masks for the same batch shape at every
    point: a probe comparing f at two points compares one function f(·; ξ), and training's own
    random stream is untouched (an audited run draws the masks an unaudited one draws). An
    estimator that needs independent draws (gradient noise over microbatches) asks for them
    with :meth:`draw`.
Inputs
    a batch ``X`` that is a tensor (``model(X)``), a tuple (``model(*X)``) or a dict of tensors
    (``model(**X)``, e.g. Hugging Face's ``input_ids``/``attention_mask``); or, for anything
    else, ``loss_fn(model, batch) -> scalar`` (then ``y`` is ignored and may be ``None``).
Reduction
    the criterion must average over the batch, or be a loss module with ``reduction='sum'``
    together with ``sum_over=B`` (the training batch size): the objective trained is then
    B × the batch mean, and f is evaluated at that scale on batches of any size
    (``criterion(out, y) · B / rows``), so a full-data pass and a minibatch measure the same
    function. ``reduction='none'`` is refused.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call
from torch.utils._pytree import tree_flatten

from ..bounds.errors import InvalidValueError

__all__ = ["MODES", "Objective", "coupling_layers", "stochastic_layers"]

MODES = ("train", "eval")

_DROPOUT = (nn.modules.dropout._DropoutNd,)
_COUPLING = (nn.modules.batchnorm._BatchNorm, nn.SyncBatchNorm)


def _path(name: str) -> str:
    return "model" + ("." + name if name else "")


def stochastic_layers(model: nn.Module, frozen: frozenset[int] = frozenset()) -> list[str]:
    """Paths of the layers that draw random numbers in train mode (Dropout of any kind with
    p > 0, MultiheadAttention with dropout > 0), except those whose ``id`` is in ``frozen``
    (run in eval mode by training). Custom stochastic layers cannot be detected by type;
    common random numbers cover them as long as they use torch's generators."""
    found = []
    for name, m in model.named_modules():
        if id(m) in frozen:
            continue
        if isinstance(m, _DROPOUT) and m.p > 0:
            found.append(f"{_path(name)} ({type(m).__name__}, p={m.p:g})")
        elif isinstance(m, nn.MultiheadAttention) and m.dropout > 0:
            found.append(f"{_path(name)} (MultiheadAttention, dropout={m.dropout:g})")
    return found


def coupling_layers(model: nn.Module, mode: str | None = "train",
                    frozen: frozenset[int] = frozenset()) -> list[str]:
    """Paths of the layers that couple the examples of a batch under ``mode``: BatchNorm in
    train mode (not the ``frozen`` ones, which training runs in eval mode), or without running
    statistics (which uses batch statistics in eval mode too). Custom layers that mix examples
    are not visible here; the gradient-noise probe checks its per-example gradients against
    the batch gradient to find them."""
    found = []
    for name, m in model.named_modules():
        if not isinstance(m, _COUPLING):
            continue
        training = m.training if mode is None else (mode == "train" and id(m) not in frozen)
        if training or m.running_mean is None:
            found.append(f"{_path(name)} ({type(m).__name__})")
    return found


def _rows(X: Any) -> int | None:
    leaves, _ = tree_flatten(X)
    for t in leaves:
        if isinstance(t, Tensor) and t.dim() > 0:
            return int(t.shape[0])
    return None


class _LossModule(nn.Module):
    """Wraps ``loss_fn(model, batch)`` so that functional_call can substitute the parameters:
    the model's names gain the prefix ``model.``; the user's model is not modified."""

    def __init__(self, model: nn.Module, loss_fn: Callable[[nn.Module, Any], Tensor]):
        super().__init__()
        self.model = model
        self.loss_fn = loss_fn

    def forward(self, batch: Any) -> Tensor:
        return self.loss_fn(self.model, batch)


class Objective:
    """``f(params, X, y)``: the audited function (see the module docstring). Callable like the
    plain loss functions the measurement kernels take; ``describe()`` says, for a report, which
    function it is."""

    def __init__(self, model: nn.Module, criterion: Callable[[Any, Any], Tensor] | None = None,
                 *, loss_fn: Callable[[nn.Module, Any], Tensor] | None = None,
                 regularization: Callable[[Mapping[str, Tensor]], Tensor] | None = None,
                 mode: str | None = "train", seed: int = 0, sum_over: int | None = None):
        if (criterion is None) == (loss_fn is None):
            raise InvalidValueError("give exactly one of criterion(outputs, targets) or "
                                    "loss_fn(model, batch)")
        if mode is not None and mode not in MODES:
            raise InvalidValueError(f"probe mode {mode!r}; use 'train' or 'eval'")
        self.model, self.criterion, self.loss_fn = model, criterion, loss_fn
        self.regularization, self.mode, self.seed = regularization, mode, int(seed)
        self.scale_rows = self._check_reduction(criterion, sum_over)
        self._wrapper = None if loss_fn is None else _LossModule(model, loss_fn)
        self._draw = 0
        self._trained: list[tuple[nn.Module, bool]] | None = None   # fix_modes()

    @staticmethod
    def _check_reduction(criterion: Any, sum_over: int | None) -> int | None:
        reduction = getattr(criterion, "reduction", "mean")
        if reduction == "mean":
            if sum_over is not None:
                raise InvalidValueError("sum_over is only for a loss with reduction='sum'")
            return None
        if reduction != "sum":
            raise InvalidValueError(f"{type(criterion).__name__} has reduction={reduction!r}; "
                                    "the audited loss must be a scalar: use 'mean' or 'sum'")
        if isinstance(sum_over, bool) or not isinstance(sum_over, int) or sum_over < 1:
            raise InvalidValueError(f"{type(criterion).__name__} has reduction='sum': the "
                                    "objective trained is B × the batch mean; pass the training "
                                    "batch size B (batch_size=... / sum_over=...)")
        return sum_over

    # ------------------------------------------------------------------ which function
    def fix_modes(self) -> None:
        """Take the modules' flags as they are now (the Auditor calls it at the first optimizer
        step) as training's: mode "train" evaluates with them from then on."""
        if self.mode == "train":
            self._trained = [(m, m.training) for m in self.model.modules()]

    def _frozen(self) -> frozenset[int]:
        """ids of the modules training runs in eval mode (frozen by the user)."""
        return frozenset() if self._trained is None else frozenset(
            id(m) for m, t in self._trained if not t)

    @property
    def frozen(self) -> list[str]:
        """Paths of the modules training runs in eval mode (a user's frozen BatchNorm)."""
        ids = self._frozen()
        return [_path(n) for n, m in self.model.named_modules()
                if id(m) in ids and next(m.children(), None) is None]      # leaves only

    @property
    def stochastic(self) -> list[str]:
        """Stochastic layers active under this objective's mode (none in eval mode, none of
        the modules training runs frozen)."""
        return [] if self.mode == "eval" else stochastic_layers(self.model, self._frozen())

    @property
    def coupling(self) -> list[str]:
        return coupling_layers(self.model, self.mode, self._frozen())

    def describe(self) -> dict[str, Any]:
        """JSON-able: the mode, the layers that make the function special, how it is fixed."""
        return {"mode": self.mode or "as-is", "stochastic_layers": self.stochastic,
                "coupling_layers": self.coupling, "frozen_modules": self.frozen[:20],
                "common_random_numbers": True, "seed": self.seed,
                "inputs": "loss_fn(model, batch)" if self.loss_fn is not None
                          else "criterion(model(X), y)",
                "reduction": "mean" if self.scale_rows is None
                             else f"sum over a batch of {self.scale_rows}",
                "buffers": "cloned at each evaluation, never written"}

    # ------------------------------------------------------------------ evaluation
    @contextlib.contextmanager
    def draw(self, j: int) -> Iterator[None]:
        """Evaluations inside use random draw ``j`` (an independent dropout mask per draw)."""
        previous, self._draw = self._draw, int(j)
        try:
            yield
        finally:
            self._draw = previous

    @contextlib.contextmanager
    def _modes(self) -> Iterator[None]:
        if self.mode is None:
            yield
            return
        flag = self.mode == "train"
        saved = [(m, m.training) for m in self.model.modules()]
        if flag and self._trained is not None:
            for m, trained in self._trained:
                m.training = trained
        else:
            for m, _ in saved:
                m.training = flag
        try:
            yield
        finally:
            for m, was in saved:
                m.training = was

    @contextlib.contextmanager
    def _random(self, device: torch.device | None) -> Iterator[None]:
        seed = (self.seed * 1_000_003 + self._draw) % (2 ** 63)
        cuda = device is not None and device.type == "cuda"
        devices = [device.index if device.index is not None else torch.cuda.current_device()
                   ] if cuda else []
        with torch.random.fork_rng(devices=devices):
            torch.default_generator.manual_seed(seed)
            if cuda:
                with torch.cuda.device(devices[0]):
                    torch.cuda.manual_seed(seed)
            yield

    def __call__(self, params: Mapping[str, Tensor], X: Any, y: Any) -> Tensor:
        first = next(iter(params.values()), None)
        with self._modes(), self._random(None if first is None else first.device):
            loss = self._loss(params, X, y)
        if self.regularization is not None:
            loss = loss + self.regularization(params)
        return loss

    def _loss(self, params: Mapping[str, Tensor], X: Any, y: Any) -> Tensor:
        buffers = {name: b.clone() for name, b in self.model.named_buffers()}
        if self._wrapper is not None:
            prefixed = {"model." + k: v for k, v in params.items()}
            prefixed_buffers = {"model." + k: v for k, v in buffers.items()}
            return functional_call(self._wrapper, (prefixed, prefixed_buffers), (X,))
        if isinstance(X, Mapping):
            out = functional_call(self.model, ({**params}, buffers), (), dict(X))
        else:
            out = functional_call(self.model, ({**params}, buffers),
                                  X if isinstance(X, tuple) else (X,))
        loss = self.criterion(out, y)
        if self.scale_rows is not None:
            rows = _rows(X)
            if rows:
                loss = loss * (self.scale_rows / rows)
        return loss
