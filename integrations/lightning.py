"""Audit a Lightning training run: :class:`AuditCallback` (extra ``[lightning]``).

::

    from approx_audit.integrations.lightning import AuditCallback

    audit = AuditCallback(out="audit", probes="standard", data=train_set, f_lower=0.0)
    trainer = Trainer(max_steps=1000, callbacks=[audit])
    trainer.fit(module, loader)
    audit.verdicts        # the rulings; audit/results.json, report.html, report.md written

The callback builds an :class:`~approx_audit.auditor.Auditor` on the LightningModule and the
raw torch optimizer when training starts, reports every optimizer step's batch and loss to it
from Lightning's hooks, and finishes it (results.json and the reports) when training ends —
or, with status ``error`` / ``interrupted``, when it raises. How Lightning's loop maps onto the
Auditor's protocol:

* **The step's batch.** Every training batch is collected at ``on_train_batch_start``. With
  ``accumulate_grad_batches=k`` the k micro-batches of the window are concatenated along their
  leading dimension (leaf by leaf, for tensors, tuples, lists, dicts) and reported as the
  step's batch: the probes evaluate f on that batch.
* **The step's loss.** Lightning divides each micro-batch's loss by k before backward; the
  value ``on_before_backward`` receives is multiplied back by k (and divided by the gradient
  scaler's scale under ``precision="16-mixed"``, which scales it before that hook), and the
  step's loss is the mean of the unscaled micro-batch losses: the loss of the concatenated
  batch for a mean-reduced loss and equal micro-batches, the function whose gradient Lightning
  accumulated. A window that an epoch's end cuts short (m < k micro-batches) still has its
  gradient divided by k by Lightning; this is warned about once.
* **Where it is reported.** ``auditor.observe`` is called in ``on_before_optimizer_step``: inside
  ``optimizer.step(closure)`` for automatic optimization (the Auditor takes x_t at the step and
  the gradient then), just before ``scaler.step`` under 16-mixed. Lightning calls that hook
  after ``scaler.unscale_`` (``plugins/precision/amp.py``), so the gradients measured are
  unscaled, and before its own gradient clipping (the clipped gradient the optimizer uses is
  read after the closure).
* **The audited function.** ``loss_fn(module, batch) -> scalar`` defaults to the module's own
  loss: ``module.training_step(batch, 0)``, the tensor it returns or its ``"loss"``, with the
  module's ``log`` / ``log_dict`` silenced while the probes evaluate it (they call it many
  times, functionally, with other parameters). So ``training_step`` must compute the loss from
  the batch without other side effects, whatever ``batch_idx``; give ``loss_fn`` otherwise.
  The probes run outside Lightning's autocast: under ``"bf16-mixed"`` / ``"16-mixed"`` they
  evaluate the full-precision function, of which training's gradient is the autocast
  approximation.
* ``data``: the full training set for the full-batch checkpoints, as one batch in the format
  ``training_step`` takes (e.g. ``[X, y]``), or a map-style ``Dataset`` (collated into one
  batch with the default collate); ``None`` skips the full-data probes.

Limits. Only ``trainer.optimizers[optimizer_index]`` is audited (several optimizers need
manual optimization, where ``loss_fn`` must be given: calling ``training_step`` there would
step the optimizers; a step's loss is then the mean of the losses backpropagated since the
previous step of any optimizer, and its batch the batches begun since then, or the current
one). Under DDP only rank 0 builds an auditor and the
other ranks do nothing; rank 0 reports its *local* batch and loss while its gradient is the
all-reduced one, and nothing is reduced across ranks. ``sync_batchnorm=True`` with
``probe_mode="train"`` under DDP is refused (rank 0's probes alone would enter collectives).
With ``gradient_clip_val`` the raw gradient is the one at ``on_before_optimizer_step`` (before
Lightning clips it) and the applied one is read after the closure (full or bf16 precision) or
at the step (16-mixed), so clipped steps are recorded as such. The audited parameters are all the
module's trainable ones: with several optimizers, a gradient another optimizer's backward
left in its parameters counts in the audited step's gradient (release it after that step).
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..auditor.run import AuditError, Auditor
from ..auditor.sinks import PREFIX, MissingExtraError, TensorBoardSink, scalars_of

try:
    from lightning.pytorch.callbacks import Callback
    from lightning.pytorch.utilities import move_data_to_device
except ImportError:  # pragma: no cover - the extra is installed in the test environment
    raise MissingExtraError("AuditCallback needs the lightning package: "
                            "pip install 'approx-audit[lightning]'") from None

__all__ = ["AuditCallback", "concat_batches", "module_loss"]


# ---------------------------------------------------------------------- batches and losses
def concat_batches(batches: Sequence[Any]) -> Any:
    """One batch from the micro-batches of a step: tensors concatenated along dim 0, leaf by
    leaf through tuples, lists, named tuples and mappings; other leaves (and 0-d tensors) are
    the first micro-batch's. The probes then evaluate f on what the step trained on."""
    first = batches[0]
    if len(batches) == 1:
        return first
    if isinstance(first, Tensor):
        return torch.cat(list(batches)) if first.dim() > 0 else first
    if isinstance(first, Mapping):
        merged = {key: concat_batches([b[key] for b in batches]) for key in first}
        try:
            return type(first)(merged)
        except Exception:  # noqa: BLE001 - a mapping type that cannot be rebuilt from a dict
            return merged
    if isinstance(first, (tuple, list)):
        if any(len(b) != len(first) for b in batches):
            raise ValueError("the micro-batches of a step differ in structure")
        items = [concat_batches([b[i] for b in batches]) for i in range(len(first))]
        if isinstance(first, tuple) and hasattr(first, "_fields"):
            return type(first)(*items)
        return type(first)(items)
    return first


@contextlib.contextmanager
def _silenced(module: nn.Module) -> Iterator[None]:
    """``module.log`` / ``module.log_dict`` as no-ops for the block (instance attributes
    shadowing the methods), restored exactly afterwards."""
    names = ("log", "log_dict")
    saved = {n: module.__dict__[n] for n in names if n in module.__dict__}
    for n in names:
        module.__dict__[n] = _no_log
    try:
        yield
    finally:
        for n in names:
            if n in saved:
                module.__dict__[n] = saved[n]
            else:
                module.__dict__.pop(n, None)


def _no_log(*args: Any, **kwargs: Any) -> None:
    return None


def module_loss(module: nn.Module, batch: Any) -> Tensor:
    """The LightningModule's own loss on ``batch``: ``training_step(batch, 0)`` (the tensor,
    or ``out["loss"]``), with its logging silenced — the default ``loss_fn`` of
    :class:`AuditCallback`, which the probes evaluate many times."""
    with _silenced(module):
        out = module.training_step(batch, 0)
    if isinstance(out, Mapping):
        out = out.get("loss")
    if not isinstance(out, Tensor):
        raise TypeError(f"training_step returned {type(out).__name__}, not a loss tensor or a "
                        "dict with 'loss'; give AuditCallback(loss_fn=...)")
    return out


def _last_margin(verdict: Mapping[str, Any]) -> float | None:
    """How far the bound held at the last point of its series (predicted − observed for an
    upper bound, observed − predicted for a lower one; negative: exceeded there)."""
    s = verdict.get("series") or {}
    obs, pred = s.get("observed") or [], s.get("predicted") or []
    if not obs or not pred:
        return None
    try:
        o, p = float(obs[-1]), float(pred[-1])
    except (TypeError, ValueError):
        return None
    margin = o - p if verdict.get("relation") == ">=" else p - o
    return margin if math.isfinite(margin) else None


class LoggerSink:
    """Sends an audit's records to Lightning loggers: the finite probe values of each record
    as ``audit/<key>`` at the trainer's global step (``step0 + k``), and at the end each
    verdict's last margin as ``audit/<bound id>/margin``. The loggers are Lightning's: it
    saves and finalizes them, so :meth:`close` does nothing."""

    def __init__(self, loggers: Sequence[Any], step0: int = 0) -> None:
        self.loggers, self.step0 = list(loggers), int(step0)

    def _log(self, metrics: dict[str, float], step: int) -> None:
        for logger in self.loggers:
            logger.log_metrics(metrics, step=step)

    def write(self, record: Mapping[str, Any]) -> None:
        k = record.get("k")
        if isinstance(k, bool) or not isinstance(k, (int, float)) or not math.isfinite(k):
            return
        metrics = {f"{PREFIX}/{key}": x for key, x in scalars_of(record).items()}
        if metrics:
            self._log(metrics, self.step0 + int(round(k)))

    def verdicts(self, verdicts: Sequence[Mapping[str, Any]], step: int) -> None:
        metrics = {}
        for v in verdicts:
            m = _last_margin(v)
            if m is not None:
                metrics[f"{PREFIX}/{v.get('id')}/margin"] = m
        if metrics:
            self._log(metrics, self.step0 + int(step))

    def close(self) -> None:
        """Nothing: Lightning finalizes its loggers."""


def _full_batch(data: Any, trainer: Any, pl_module: Any) -> Any:
    """``data`` as one batch on the module's device, converted like a training batch (the
    precision plugin's input conversion); a map-style Dataset is collated whole."""
    if data is None:
        return None
    if isinstance(data, torch.utils.data.Dataset) and hasattr(data, "__len__"):
        from torch.utils.data import default_collate

        data = default_collate([data[i] for i in range(len(data))])
    data = trainer.precision_plugin.convert_input(data)
    return move_data_to_device(data, pl_module.device)


def _uses_sync_batchnorm(module: nn.Module) -> bool:
    return any(isinstance(m, nn.SyncBatchNorm) for m in module.modules())


# ---------------------------------------------------------------------- the callback
class AuditCallback(Callback):
    """Audit a LightningModule's training with the standard probes and rule on the catalogue's
    bounds; see the module docstring for how Lightning's loop is mapped, and for the limits.

    ``out``: the folder for trace.jsonl, results.json and the reports (``None``: in memory
    only). ``probes``, ``seed``, ``probe_mode``: as for :class:`~approx_audit.auditor.Auditor`.
    ``data``: the full training set (one batch or a Dataset; None skips the full-data probes).
    ``loss_fn(module, batch)``: the audited loss (default :func:`module_loss`).
    ``optimizer_index``: which of ``trainer.optimizers`` is audited. ``f_lower``, ``convex``,
    ``assume`` (constants, e.g. ``{"L": 10.0}``, marked asserted), ``bounds`` (ids; default
    all that match): as for :meth:`~approx_audit.auditor.Auditor.finish`. ``log``: send ``audit/*`` metrics to the
    trainer's loggers; ``tensorboard``: a folder for a
    :class:`~approx_audit.auditor.sinks.TensorBoardSink` as well.

    After training: ``callback.verdicts`` (the rulings), ``callback.results`` (results.json's
    content), ``callback.auditor`` (its ``records``).
    """

    def __init__(self, out: str | Path | None = "audit", probes: Any = "standard",
                 data: Any = None, loss_fn: Callable[[nn.Module, Any], Tensor] | None = None,
                 optimizer_index: int = 0, seed: int = 0, probe_mode: str = "train",
                 f_lower: float | None = None, convex: bool | None = None, log: bool = True,
                 tensorboard: str | Path | None = None,
                 assume: Mapping[str, float] | None = None,
                 bounds: Sequence[str] | None = None) -> None:
        super().__init__()
        self.out, self.probes, self.data, self.loss_fn = out, probes, data, loss_fn
        self.optimizer_index, self.seed, self.probe_mode = int(optimizer_index), seed, probe_mode
        self.f_lower, self.convex, self.log, self.tensorboard = f_lower, convex, log, tensorboard
        self.assume = None if assume is None else dict(assume)
        self.bounds = None if bounds is None else list(bounds)
        self.auditor: Auditor | None = None
        self.verdicts: list | None = None
        self.results: dict[str, Any] | None = None
        self._reset()

    def _reset(self) -> None:
        self._optimizer: Any = None
        self._batches: list[Any] = []
        self._last_batch: Any = None
        self._losses: list[float] = []
        self._scale_by = 1
        self._warned: set[str] = set()

    @property
    def records(self) -> list[dict[str, Any]]:
        """The audit's trace records (empty before training, and on ranks other than 0)."""
        return [] if self.auditor is None else self.auditor.records

    # ------------------------------------------------------------------ start
    def _check(self, trainer: Any, pl_module: Any) -> None:
        """Refusals, on every rank (a rank raising alone would leave the others waiting)."""
        if not pl_module.automatic_optimization and self.loss_fn is None:
            raise AuditError("AuditCallback: with manual optimization give loss_fn=... "
                             "(loss_fn(module, batch) -> scalar); the default calls "
                             "training_step, which would step the optimizers")
        n = len(trainer.optimizers)
        if not 0 <= self.optimizer_index < n:
            raise AuditError(f"AuditCallback: optimizer_index={self.optimizer_index}, but the "
                             f"trainer has {n} optimizer(s)")
        if (trainer.world_size > 1 and self.probe_mode == "train"
                and _uses_sync_batchnorm(pl_module)):
            raise AuditError("AuditCallback: SyncBatchNorm under DDP with probe_mode='train' "
                             "would make rank 0's probes wait on collectives the other ranks "
                             "never enter; use probe_mode='eval' or sync_batchnorm=False")

    def _sinks(self, trainer: Any) -> list[Any]:
        sinks: list[Any] = []
        if self.log and trainer.loggers:
            sinks.append(LoggerSink(trainer.loggers, trainer.global_step))
        if self.tensorboard is not None:
            sinks.append(TensorBoardSink(self.tensorboard))
        return sinks

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        """Build the Auditor (rank 0 only) on the module and the raw torch optimizer."""
        self._check(trainer, pl_module)
        self._reset()
        self.auditor, self.verdicts, self.results = None, None, None
        if not trainer.is_global_zero:
            return
        opt = trainer.optimizers[self.optimizer_index]
        scheduler = next((c.scheduler for c in trainer.lr_scheduler_configs
                          if getattr(c.scheduler, "optimizer", None) is opt), None)
        full = _full_batch(self.data, trainer, pl_module)
        self._optimizer = opt
        self._scale_by = int(trainer.accumulate_grad_batches) if pl_module.automatic_optimization \
            else 1
        self.auditor = Auditor(pl_module, opt, loss_fn=self.loss_fn or module_loss,
                               data=None if full is None else (full, None), probes=self.probes,
                               out=self.out, seed=self.seed, probe_mode=self.probe_mode,
                               f_lower=self.f_lower, scheduler=scheduler,
                               sinks=self._sinks(trainer))

    # ------------------------------------------------------------------ each step
    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any,
                             batch_idx: int) -> None:
        if self.auditor is not None:
            self._batches.append(batch)
            self._last_batch = batch

    def on_before_backward(self, trainer: Any, pl_module: Any, loss: Tensor) -> None:
        """The loss Lightning backpropagates, unscaled: × k (accumulation), ÷ the gradient
        scaler's scale (16-mixed scales it before this hook)."""
        if self.auditor is None:
            return
        value = float(loss.detach()) * self._scale_by
        scaler = getattr(trainer.precision_plugin, "scaler", None)
        if scaler is not None and getattr(scaler, "is_enabled", lambda: True)():
            value /= float(scaler.get_scale())
        self._losses.append(value)

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            warnings.warn(f"approx-audit: {message}", RuntimeWarning, stacklevel=3)

    def on_before_optimizer_step(self, trainer: Any, pl_module: Any, optimizer: Any) -> None:
        """Report the step's batch (the window's micro-batches, concatenated) and loss (their
        mean) to the auditor; a step of another optimizer only ends the window (the next step
        of ours then uses the batches since, or the current one)."""
        if self.auditor is None:
            return
        if getattr(optimizer, "_optimizer", optimizer) is not self._optimizer:
            self._batches, self._losses = [], []
            return
        batches = self._batches or ([self._last_batch] if self._last_batch is not None else [])
        losses, self._batches, self._losses = self._losses, [], []
        if not losses or not batches:
            return                  # nothing backpropagated: the Auditor records it unaudited
        if self._scale_by > 1 and len(losses) < self._scale_by:
            self._warn_once("short", f"a step accumulated {len(losses)} of "
                            f"accumulate_grad_batches={self._scale_by} micro-batches (an "
                            "epoch's end); Lightning divided its gradient by "
                            f"{self._scale_by} all the same")
        try:
            batch = concat_batches(batches)
        except Exception as exc:  # noqa: BLE001 - an audit never stops the training
            self._warn_once("concat", f"the micro-batches of a step could not be concatenated "
                            f"({type(exc).__name__}: {exc}); such steps are unaudited")
            return
        self.auditor.observe(batch, None, sum(losses) / len(losses))

    # ------------------------------------------------------------------ the end
    def _finish(self, status: str | None = None, message: str | None = None) -> None:
        aud = self.auditor
        if aud is None or aud.closed:
            return
        self.verdicts, self.results = aud.finish(self.out, convex=self.convex,
                                                 f_lower=self.f_lower, assume=self.assume,
                                                 bounds=self.bounds, status=status,
                                                 message=message)

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        """Finish while the model is still on its device (teardown moves it after this)."""
        self._finish()

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        """Training raised: the audit is finished with status error (interrupted for Ctrl-C)
        and its results written; the exception goes on (a failure here is only warned)."""
        status = "interrupted" if isinstance(exception, KeyboardInterrupt) else "error"
        try:
            self._finish(status, f"{type(exception).__name__}: {exception}"[:300])
        except Exception as exc:  # noqa: BLE001 - never mask the training's own exception
            warnings.warn(f"approx-audit: finishing the audit failed ({type(exc).__name__}: "
                          f"{exc})", RuntimeWarning, stacklevel=2)
