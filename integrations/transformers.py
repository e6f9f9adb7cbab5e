"""Audit ``transformers.Trainer.train()`` with a callback: ``callbacks=[AuditCallback()]``.

A Trainer callback sees the model, the optimizer and the scheduler but never the batch nor
the Trainer, so :class:`AuditCallback` takes what a step used from the model itself:

Batch
    a forward pre-hook (with keyword arguments) on the model records the keyword inputs of
    every training forward between ``on_step_begin`` and ``on_pre_optimizer_step`` while the
    model is in train mode (``input_ids``, ``attention_mask``, ``labels``, …); the auditor's own
    evaluations (and the callback's) run with a flag set and are never taken. With gradient
    accumulation the step's micro-batches are concatenated along the example dimension. They
    must then have one shape beyond it: micro-batches padded to different lengths (dynamic
    padding) are *refused* (that step is recorded as unaudited, with a warning) rather than
    padded again, because re-padding is model-specific (pad token, padding side, position
    ids); pad to one length (``padding="max_length"``) to audit them.
Loss and the audited function
    each micro-batch's ``model(**inputs).loss`` is read by a forward hook, and the weight with
    which the Trainer's backward used it by a gradient hook on that tensor (``1/accumulation
    steps``, or 1 when the Trainer considers the loss already scaled for accumulation). The
    step's loss is the weighted sum: the value the Trainer logs as ``loss``. The audited
    function is ``f(batch) = c · model(**batch).loss`` with ``c`` fixed at the first step, so that
    f is what the Trainer differentiates: ``c = 1`` without accumulation; with it, ``c`` is the
    sum of the weights, or their mean when the model normalizes its loss by the
    ``num_items_in_batch`` the Trainer passes (checked once, by two evaluations of the first
    micro-batch with and without it). ``c ≠ 1`` is warned about: e.g. transformers 5.25 passes
    ``num_items_in_batch`` to every model whose forward takes ``**kwargs`` and then does not
    divide by the accumulation steps, and BERT's classification loss ignores it, so the Trainer
    trains the *sum* of the micro-batch means.
Gradient norm before clipping
    the Trainer clips (``max_grad_norm``, 1.0 by default) *before* ``on_pre_optimizer_step``,
    where the callback reports the step, so the gradient there is the clipped one. The norm
    before clipping is taken from post-accumulate-grad hooks on the parameters (each
    parameter's gradient norm after its last accumulation) and recorded as ``grad_norm_raw``
    for a step the Trainer clipped (raw norm above ``max_grad_norm``); clipped steps are thus
    found as in a plain loop.

The :class:`~approx_audit.auditor.run.Auditor` is built at the first optimizer step, before
the optimizer moves (the parameters are still x_0; ``c`` must be known before the first
full-data checkpoint). ``on_train_end`` writes ``results.json``, ``report.html`` and
``report.md`` into ``out`` (after a ``train()`` that raised, call :meth:`AuditCallback.finish`). Only the main process audits; runs on several processes, fp16
mixed precision (a gradient scaler scales the loss and the gradients) and a loss the Trainer
computes outside the model (``label_smoothing_factor``, ``compute_loss_func``, an overridden
``compute_loss``) are refused with a warning, and training goes on unaudited.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..auditor.objective import Objective
from ..auditor.probes import make_probes
from ..auditor.run import Auditor
from ..auditor.sinks import MissingExtraError, TensorBoardSink

try:
    from transformers import TrainerCallback
except ImportError:
    raise MissingExtraError("approx_audit.integrations.transformers needs the transformers "
                            "package: pip install 'approx-audit[hf]'") from None

__all__ = ["AuditCallback"]

# keyword inputs the Trainer adds that are not part of the batch
_NOT_BATCH = frozenset({"num_items_in_batch"})


def _loss_of(output: Any) -> Tensor | None:
    """``output.loss`` of a model output (a ModelOutput or a dict), else None."""
    if isinstance(output, Mapping):
        loss = output.get("loss")
    else:
        loss = getattr(output, "loss", None)
    return loss if isinstance(loss, Tensor) else None


def _split_inputs(kwargs: Mapping[str, Any]) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """(tensors with an example dimension, other keyword inputs) of one forward call."""
    batch, static = {}, {}
    for key, value in kwargs.items():
        if key in _NOT_BATCH:
            continue
        if isinstance(value, Tensor) and value.dim() > 0:
            batch[key] = value
        else:
            static[key] = value
    return batch, static


def _concat(micro: list[dict[str, Tensor]]) -> tuple[dict[str, Tensor] | None, str | None]:
    """The step's batch: the micro-batches concatenated along the example dimension, or None
    and why (different keys, or different shapes beyond the first dimension)."""
    if len(micro) == 1:
        return micro[0], None
    keys = list(micro[0])
    if any(list(m) != keys for m in micro[1:]):
        return None, ("the micro-batches of a step have different inputs "
                      f"({sorted(micro[0])} vs others)")
    out = {}
    for key in keys:
        shapes = [tuple(m[key].shape[1:]) for m in micro]
        if len(set(shapes)) > 1:
            return None, (f"the micro-batches of a step have different shapes for {key!r} "
                          f"({', '.join(str(list(m[key].shape)) for m in micro)}): pad every "
                          "batch to one length (padding='max_length') or use "
                          "gradient_accumulation_steps=1 to audit these steps")
        out[key] = torch.cat([m[key] for m in micro], dim=0)
    return out, None


def _torch_optimizer(optimizer: Any) -> torch.optim.Optimizer:
    """The torch optimizer inside accelerate's AcceleratedOptimizer (its step hooks fire and
    its class names the catalogue's algorithm)."""
    inner = optimizer
    while (not type(inner).__module__.startswith("torch.")
           and isinstance(getattr(inner, "optimizer", None), torch.optim.Optimizer)):
        inner = inner.optimizer
    return inner


class AuditCallback(TrainerCallback):
    """Audit a ``transformers.Trainer`` run (see the module docstring).

    ``out``: the folder for ``trace.jsonl``, ``results.json`` and the reports. ``probes``: a
    preset or probe list as for :class:`~approx_audit.auditor.run.Auditor`. ``data``: an
    optional probe set for the full-data checkpoints, a dict of tensors the model takes as
    ``model(**data)`` (with ``labels``), e.g. the training set or a fixed sample of it.
    ``f_lower``: a known lower bound of the loss (0 for cross-entropy). ``tensorboard``: a log
    folder for a :class:`~approx_audit.auditor.sinks.TensorBoardSink`. After training,
    ``verdicts`` and ``results`` hold what was ruled and written; ``auditor`` the records.
    """

    def __init__(self, out: str | Path | None = "audit", probes: Any = "standard",
                 data: Mapping[str, Tensor] | None = None, seed: int = 0,
                 probe_mode: str = "train", f_lower: float | None = 0.0,
                 tensorboard: str | Path | None = None):
        if isinstance(probes, str):
            make_probes(probes)                  # a wrong probe name fails here, not mid-run
        self.out = None if out is None else Path(out)
        self.probes, self.seed, self.probe_mode = probes, int(seed), probe_mode
        self.f_lower = f_lower
        self.data = None if data is None else self._check_data(data)
        self.sink = None if tensorboard is None else TensorBoardSink(tensorboard)
        self.auditor: Auditor | None = None
        self.verdicts: list | None = None
        self.results: dict[str, Any] | None = None
        self.loss_scale: float | None = None
        self._reset()

    @staticmethod
    def _check_data(data: Mapping[str, Tensor]) -> dict[str, Tensor]:
        if not isinstance(data, Mapping) or "labels" not in data:
            raise ValueError("data= is a dict of tensors the model takes as model(**data), "
                             "with 'labels' (the loss is computed from them)")
        rows = {int(v.shape[0]) for v in data.values() if isinstance(v, Tensor) and v.dim()}
        if len(rows) != 1:
            raise ValueError("data=: every tensor needs the same first (example) dimension; "
                             f"got {sorted(rows)}")
        return dict(data)

    def _reset(self) -> None:
        self._active = False
        self._window = False
        self._probing = 0
        self._micro: list[dict[str, Any]] = []
        self._pending: dict[str, Any] | None = None
        self._norms: dict[int, Tensor] = {}
        self._hooks: list[Any] = []
        self._static: dict[str, Any] | None = None
        self._uses_items: bool | None = None
        self._warned: set[str] = set()

    def _warn(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            warnings.warn(f"approx-audit: {message}", RuntimeWarning, stacklevel=3)

    @contextlib.contextmanager
    def _quiet(self) -> Iterator[None]:
        """Forwards inside are evaluations of the audit, never a training batch."""
        self._probing += 1
        try:
            yield
        finally:
            self._probing -= 1

    # ------------------------------------------------------------------ hooks on the model
    def _refusal(self, args: Any) -> str | None:
        if getattr(args, "world_size", 1) > 1:
            return (f"training runs on {args.world_size} processes; AuditCallback audits a "
                    "single process (the main one would see its own batch and the all-reduced "
                    "gradient)")
        if getattr(args, "fp16", False):
            return ("fp16 mixed precision scales the loss and the gradients (a gradient "
                    "scaler); use bf16 or float32 to audit")
        if getattr(args, "label_smoothing_factor", 0.0):
            return ("label_smoothing_factor: the Trainer computes the loss outside the model, "
                    "not model(**batch).loss")
        return None

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self._reset()
        self.auditor, self.verdicts, self.results, self.loss_scale = None, None, None, None
        if not state.is_world_process_zero:
            return
        why = self._refusal(args)
        if why is not None:
            self._warn("refused", f"{why}; training goes on unaudited")
            return
        self._active = True
        self._hooks = [model.register_forward_pre_hook(self._pre_forward, with_kwargs=True),
                       model.register_forward_hook(self._post_forward, with_kwargs=True)]
        for i, p in enumerate(q for q in model.parameters() if q.requires_grad):
            self._hooks.append(p.register_post_accumulate_grad_hook(self._grad_hook(i)))

    def _pre_forward(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        if not self._window or self._probing or not module.training:
            return
        batch, static = _split_inputs(kwargs)
        self._pending = {"batch": batch, "static": static, "positional": len(args),
                         "items": kwargs.get("num_items_in_batch"), "loss": None, "w": None}
        self._micro.append(self._pending)

    def _post_forward(self, module: nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
        rec, self._pending = self._pending, None
        if rec is None or self._probing:
            return
        loss = _loss_of(output)
        rec["loss"] = None if loss is None else loss.detach()
        if loss is not None and loss.requires_grad:
            # the gradient reaching .loss is the weight the Trainer's backward gave it
            loss.register_hook(lambda g, rec=rec: rec.__setitem__("w", g.detach()))

    def _grad_hook(self, i: int):
        def hook(p: Tensor) -> None:
            if self._window and not self._probing and p.grad is not None:
                self._norms[i] = torch.linalg.vector_norm(p.grad.detach())
        return hook

    # ------------------------------------------------------------------ the audited function
    def _loss_fn(self, model: nn.Module, batch: Mapping[str, Tensor]) -> Tensor:
        """f(batch) = c · model(**batch).loss, the function the Trainer differentiates."""
        with self._quiet():
            out = model(**batch, **(self._static or {}))
        loss = _loss_of(out)
        if loss is None:
            raise ValueError("model(**batch) returned no loss: the batch needs 'labels'")
        return loss if self.loss_scale == 1.0 else loss * self.loss_scale

    def _check_items(self, model: nn.Module, rec: Mapping[str, Any]) -> bool:
        """Whether the model's loss uses num_items_in_batch: the first micro-batch evaluated
        with and without it, with the same random numbers (two forwards, once per run)."""
        items, static = rec["items"], rec["static"]
        params = {n: p.detach() for n, p in model.named_parameters()}
        fs = [Objective(model, loss_fn=lambda m, b, kw=kw: _loss_of(m(**b, **static, **kw)),
                        mode="train", seed=self.seed)
              for kw in ({"num_items_in_batch": items}, {})]
        with torch.no_grad(), self._quiet():
            a, b = (f(params, rec["batch"], None) for f in fs)
        return not torch.equal(a, b)

    def _step_scale(self, model: nn.Module, micro: list[dict[str, Any]]
                    ) -> tuple[float | None, float | None, str | None]:
        """(c of this step, its loss Σ w_i loss_i, None) or (None, None, why not)."""
        if not micro:
            return None, None, "no training forward of the model was seen in the step"
        if any(r["positional"] for r in micro):
            return None, None, "the model was called with positional inputs"
        if any(r["loss"] is None or r["w"] is None for r in micro):
            return None, None, ("the Trainer did not differentiate model(**batch).loss "
                                "(compute_loss_func or an overridden compute_loss?)")
        w = [float(r["w"]) for r in micro]
        loss = sum(wi * float(r["loss"]) for wi, r in zip(w, micro))
        normalized = False
        if micro[0]["items"] is not None and len(micro) > 1:
            if self._uses_items is None:
                self._uses_items = self._check_items(model, micro[0])
            normalized = self._uses_items
        return (sum(w) / len(w) if normalized else sum(w)), loss, None

    # ------------------------------------------------------------------ the step
    def on_step_begin(self, args, state, control, **kwargs):
        if self._active:
            self._micro, self._pending, self._norms = [], None, {}
            self._window = True

    def on_pre_optimizer_step(self, args, state, control, model=None, optimizer=None,
                              lr_scheduler=None, **kwargs):
        if not self._active:
            return
        self._window = False
        micro, self._micro = self._micro, []
        scale, loss, why = self._step_scale(model, micro)
        if self.auditor is None:
            self._start(model, optimizer, lr_scheduler, scale, micro)
        elif scale is not None and not math.isclose(scale, self.loss_scale, rel_tol=1e-6):
            self._warn("scale", f"step {state.global_step} trained {scale:g} × the mean loss, "
                       f"the audited function is {self.loss_scale:g} × it (fixed at the first "
                       "step); that step's gradient is of another multiple of f")
        batch, why_batch = (None, why) if why else _concat([r["batch"] for r in micro])
        if batch is None:
            self._warn("refused-step", f"step {state.global_step} is not audited: {why_batch}")
            return
        if self.auditor.diverged:
            return
        self.auditor.observe(batch, None, loss, grad_norm_raw=self._raw_norm(args))

    def _start(self, model, optimizer, lr_scheduler, scale, micro) -> None:
        """The Auditor, at the first step: the parameters are still x_0."""
        self.loss_scale = 1.0 if scale is None else float(scale)
        self._static = dict(micro[0]["static"]) if micro else {}
        if self.loss_scale != 1.0:
            self._warn("c", f"the Trainer differentiates {self.loss_scale:g} × the mean loss "
                       "of a step's examples (its weights on the micro-batch losses); the "
                       f"audited function is f = {self.loss_scale:g} · model(**batch).loss")
        self.auditor = Auditor(
            model, _torch_optimizer(optimizer), loss_fn=self._loss_fn,
            data=None if self.data is None else (self.data, None), probes=self.probes,
            out=self.out, seed=self.seed, scheduler=lr_scheduler, probe_mode=self.probe_mode,
            f_lower=self.f_lower, sinks=[] if self.sink is None else [self.sink])

    def _raw_norm(self, args) -> float | None:
        """grad_norm_raw of a step the Trainer clipped: the norm from the gradient hooks (the
        auditor's own, taken at observe(), is the clipped one); None when not clipped."""
        clip = float(getattr(args, "max_grad_norm", 0.0) or 0.0)
        if clip <= 0 or not self._norms:
            return None
        raw = float(torch.linalg.vector_norm(torch.stack(
            [n.float() for n in self._norms.values()])))
        return raw if raw > clip else None

    def on_step_end(self, args, state, control, **kwargs):
        self._micro, self._pending, self._norms = [], None, {}

    # ------------------------------------------------------------------ the end
    def on_train_end(self, args, state, control, **kwargs):
        self.finish()

    def finish(self, status: str | None = None, message: str | None = None) -> None:
        """Remove the hooks and write the results (``on_train_end`` calls it; call it yourself
        after ``train()`` raised, e.g. ``finish(status="error")``: the Trainer then skips
        ``on_train_end``). A second call does nothing."""
        for h in self._hooks:
            h.remove()
        self._hooks, self._window = [], False
        if not self._active:
            return
        self._active = False
        if self.auditor is None:
            self._warn("empty", "no optimizer step ran; nothing was audited")
            return
        self.verdicts, self.results = self.auditor.finish(self.out, f_lower=self.f_lower,
                                                          status=status, message=message)
