"""One audited training loop, for ``approx-audit run`` and for a user's own loop.

:class:`Auditor` attaches to a ``torch.optim.Optimizer`` through its step hooks
(``register_step_pre_hook`` / ``register_step_post_hook``): before each step it snapshots the
parameters and the training gradient, after it runs the probes that are due, and appends one
record to ``trace.jsonl``. The user's loop only tells it which batch and loss the step used::

    auditor = Auditor(model, optimizer, loss=nn.functional.cross_entropy, data=(X, y),
                      probes="standard", out="audit/")
    for xb, yb in loader:
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(xb), yb)
        loss.backward()
        if not auditor.observe(xb, yb, loss):   # False once the loss is not finite
            break
        optimizer.step()
    summary = auditor.close()

:func:`train` is the loop ``approx-audit run`` drives through the very same hooks: i.i.d.
uniform minibatches drawn with replacement (so stochastic gradients are unbiased and the
gradient-noise probe's with-replacement variance is the one the theorems use), or the full
data (gradient descent) when the batch size is not given or is at least ``n``.

Gradient evaluations are counted separately for training (one forward and one backward pass
per step, ``B`` example gradients) and for the audit (every probe's exact passes, plus the
checkpoints at x_0 and x_K and the averaged iterates).
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
from torch import Tensor, nn

from ..bounds.errors import ApproxAuditError
from . import measure as M
from .measure import Cost
from .objective import MODES, Objective
from .observables import KEY
from .probes import Probe, ProbeContext, make_probes
from .trace import TraceWriter


class _SigintGuard:
    """Holds a Ctrl-C (and a SIGTERM the command line turned into one) back while a step's
    record is appended, written and counted, so that an interrupt never leaves a step counted
    in memory but missing from the trace (or half written); the interrupt is raised right
    after that block.

    Installed once per auditor (main thread only) and chained to the handlers it replaced:
    SIGINT always; SIGTERM only when its handler is already a Python function (the command
    line's), so a library user's SIGTERM disposition is never changed. The block itself only
    flips a flag (a handler per step would cost two system calls, ~11 µs). :meth:`uninstall`
    puts the previous handlers back where ours are still the current ones."""

    def __init__(self) -> None:
        import signal
        import threading

        self.critical, self.pending = False, None
        self.old: dict[int, object] = {}
        self._handler = self._handle
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                if sig == signal.SIGTERM and not callable(signal.getsignal(sig)):
                    continue
                self.old[sig] = signal.signal(sig, self._handler)
            except (ValueError, OSError):
                pass

    @property
    def installed(self) -> bool:
        return bool(self.old)

    def _handle(self, signum, frame) -> None:
        if self.critical:
            self.pending = (signum, frame)
        else:
            self._forward(signum, frame)

    def _forward(self, signum, frame) -> None:
        import signal

        old = self.old.get(signum)
        if callable(old):
            old(signum, frame)              # the default handler raises KeyboardInterrupt
        elif old == signal.SIG_DFL or old is None:
            raise KeyboardInterrupt

    def __enter__(self) -> "_SigintGuard":
        self.critical = True
        return self

    def __exit__(self, *exc) -> bool:
        self.critical = False
        if self.pending is not None:
            pending, self.pending = self.pending, None
            self._forward(*pending)
        return False

    def uninstall(self) -> None:
        import signal

        old, self.old = self.old, {}
        for sig, prev in old.items():
            try:
                if signal.getsignal(sig) == self._handler:
                    # None: the previous handler was not set from Python; Python's default
                    signal.signal(sig, prev if prev is not None else (
                        signal.default_int_handler if sig == signal.SIGINT else signal.SIG_DFL))
            except (ValueError, OSError, TypeError):
                pass


__all__ = ["AuditError", "Auditor", "RunCosts", "train"]


_NO_COST = Cost()


class AuditError(ApproxAuditError):
    """The auditor was used wrongly (e.g. ``optimizer.step()`` without ``observe``)."""


@dataclass
class RunCosts:
    """Gradient evaluations of one run: training and the audit's overhead, kept apart."""

    train_steps: int = 0
    train_examples: int = 0
    train: Cost = field(default_factory=Cost)
    probes: Cost = field(default_factory=Cost)
    by_probe: dict[str, Cost] = field(default_factory=dict)

    @property
    def train_grad_evals(self) -> int:
        return self.train.gradient_equivalents

    @property
    def probe_grad_evals(self) -> int:
        return self.probes.gradient_equivalents

    def add_probe(self, name: str, cost: Cost) -> None:
        self.probes = self.probes + cost
        self.by_probe[name] = self.by_probe.get(name, Cost()) + cost

    def as_dict(self) -> dict[str, Any]:
        return {
            "train_steps": self.train_steps,
            "train_examples": self.train_examples,
            "train": self.train.as_dict(),
            "probes": self.probes.as_dict(),
            "by_probe": {k: v.as_dict() for k, v in self.by_probe.items()},
            "train_grad_evals": self.train_grad_evals,
            "probe_grad_evals": self.probe_grad_evals,
            "overhead_ratio": (self.probe_grad_evals / self.train_grad_evals
                               if self.train_grad_evals else None),
        }


class FlatParams(Mapping):
    """Name → view into one flat vector (no copies); the views are built on first access."""

    __slots__ = ("flat", "_layout", "_views")

    def __init__(self, flat: Tensor, layout: list[tuple[str, torch.Size, int, int]]):
        self.flat, self._layout, self._views = flat, layout, None

    def _build(self) -> dict[str, Tensor]:
        if self._views is None:
            self._views = {n: self.flat[a:b].view(shape) for n, shape, a, b in self._layout}
        return self._views

    def __getitem__(self, key: str) -> Tensor:
        return self._build()[key]

    def __iter__(self):
        return (n for n, *_ in self._layout)

    def __len__(self) -> int:
        return len(self._layout)


def _rows(X: Any) -> int:
    if isinstance(X, Tensor) and X.dim() > 0:
        return int(X.shape[0])
    return int(M._leading_dim(X))


def _layout_of(model: nn.Module) -> list[tuple[str, torch.Size, int, int]]:
    """(name, shape, start, stop) of each trainable parameter in one flat vector."""
    layout, offset = [], 0
    for name, p in model.named_parameters():
        if p.requires_grad:
            layout.append((name, p.shape, offset, offset + p.numel()))
            offset += p.numel()
    return layout


def _objective(model: nn.Module, workload: Any, loss: Any, loss_fn: Any, mode: str,
               seed: int | None, batch_size: int | None) -> Objective:
    """The audited function of an Auditor (one of workload / loss / loss_fn)."""
    given = [n for n, v in zip("workload= loss= loss_fn=".split(), (workload, loss, loss_fn))
             if v is not None]
    if len(given) != 1:
        raise AuditError("give exactly one of workload=..., loss=... (loss(outputs, targets), "
                         "the batch mean) or loss_fn=... (loss_fn(model, batch) -> scalar)"
                         + (f"; got {', '.join(given)}" if given else ""))
    if mode not in MODES:
        raise AuditError(f"probe_mode={mode!r}; use 'train' (the function training "
                         "differentiates) or 'eval' (the eval-mode function)")
    crn = 0 if seed is None else int(seed)
    if workload is not None:
        # the objective of the model actually trained (a fresh copy, not workload.model)
        return Objective(model, workload.criterion, regularization=workload.regularization,
                         mode=mode, seed=crn)
    if loss_fn is not None:
        return Objective(model, loss_fn=loss_fn, mode=mode, seed=crn)
    sum_over = batch_size if getattr(loss, "reduction", "mean") == "sum" else None
    return Objective(model, loss, mode=mode, seed=crn, sum_over=sum_over)


class Auditor:
    """Audit the steps of ``optimizer`` on ``model``; see the module docstring.

    Give one of ``workload`` (a :class:`~.workloads.Workload`: objective, full data and known
    facts), ``loss`` (``loss(outputs, targets)``: the batch mean, or a loss module with
    ``reduction='sum'`` together with ``batch_size=B``, the training batch size) or
    ``loss_fn`` (``loss_fn(model, batch) -> scalar``, for batches a plain ``model(X)`` does
    not take), with ``data=(X, y)`` (the full training set, for full-batch checkpoints;
    optional). ``probes`` is a preset name, a probe list string (``"loss,sharpness@25"``) or a
    list of :class:`~.probes.Probe`. ``out`` is a folder for ``trace.jsonl`` (``None``: keep
    records in memory only).

    The probes evaluate one :class:`~.objective.Objective`: ``probe_mode="train"`` (default)
    is the function training differentiates (train mode, the probe batch's own BatchNorm
    statistics, dropout with common random numbers so that every comparison within and across
    steps is of one function), ``"eval"`` the eval-mode function. Buffers are cloned, the
    modules' flags and torch's generators restored: an audit never changes the model, its
    BatchNorm statistics or the masks training draws. ``scheduler`` (optional) names the
    user's learning-rate scheduler in the verdicts; every step's lr is recorded either way.
    ``full_batch`` says every step uses the whole training set. ``averages`` tracks the
    averaged iterates some bounds speak of. ``trusted_gradients`` is for the auditor's own
    loop (:func:`train`): training's loss and gradient are f's own, so probes reuse them.
    A probe that fails is recorded, warned about and switched off; training goes on.
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, *,
                 workload: Any = None, loss: Callable[[Tensor, Tensor], Tensor] | None = None,
                 loss_fn: Callable[[nn.Module, Any], Tensor] | None = None,
                 data: tuple[Any, Any] | None = None, probes: str | list[Probe] = "cheap",
                 out: str | Path | None = None, run: int = 0, seed: int | None = None,
                 full_batch: bool = False, averages: bool = False,
                 f_star: float | None = None, f_lower: float | None = None,
                 optimum: Mapping[str, Tensor] | None = None,
                 start_info: Mapping[str, Any] | None = None, probe_mode: str = "train",
                 batch_size: int | None = None, scheduler: Any = None,
                 trusted_gradients: bool = False, sinks: Any = None):
        self.model, self.optimizer = model, optimizer
        self.run, self.seed = run, seed
        self.f = _objective(model, workload, loss, loss_fn, probe_mode, seed, batch_size)
        if workload is not None:
            full_X, full_y = (workload.X, workload.y) if data is None else data
            f_star = workload.f_star if f_star is None else f_star
            f_lower = workload.f_lower if f_lower is None else f_lower
            optimum = workload.optimum if optimum is None else optimum
        else:
            full_X, full_y = (None, None) if data is None else data
        self.full_X, self.full_y = full_X, full_y
        self.facts = SimpleNamespace(f_star=f_star, f_lower=f_lower, X=full_X, y=full_y)
        self.optimum = None if optimum is None else dict(optimum)
        self.probes: list[Probe] = make_probes(probes) if isinstance(probes, str) else list(probes)
        self.scheduler = scheduler
        # training's loss and gradient are f's own only in the auditor's loop (no clipping),
        # in the mode training uses, and without random layers (other masks than f's)
        self._grad_exact = bool(trusted_gradients and probe_mode == "train"
                                and not self.f.stochastic)
        self._raw_norm: float | None = None
        self._warned: set[str] = set()
        self._in_step = False
        self._evaluations = 0          # observe() calls inside the current step
        self._pending: FlatParams | None = None
        self.probe_spec = probes if isinstance(probes, str) else ",".join(
            f"{p.name}@{p.every}" for p in probes)
        self.sinks = list(sinks or ())
        self._plist = [p for _, p in model.named_parameters() if p.requires_grad]
        self._layout = _layout_of(model)
        self._opt_flat = self._flat_optimum(optimum)
        self.full_batch = bool(full_batch)
        self.averages = bool(averages)
        self.memory: dict[str, Any] = {}
        self._start_checkpoint: tuple[float, dict[str, Tensor], dict[str, Tensor]] | None = None
        self.records: list[dict[str, Any]] = []
        self.costs = RunCosts()
        self.probe_errors: dict[str, str] = {}
        self.step = 0
        self.diverged = False
        self.closed = False
        self._batch: tuple[Any, Any, float] | None = None
        self._before: tuple[dict[str, Tensor], dict[str, Tensor]] | None = None
        self._t0 = time.perf_counter()
        self._x0: FlatParams | None = None
        self._sum: dict[str, Tensor] | None = None
        self._wsum: dict[str, Tensor] | None = None
        self._last_checkpoint_k: int | None = None
        self.out = None if out is None else Path(out)
        self.writer = None if out is None else TraceWriter(Path(out) / "trace.jsonl")
        self._sigint = _SigintGuard()
        self._emit({"record": "start", "seed": seed, "full_batch": self.full_batch,
                    "n": None if full_X is None else _rows(full_X),
                    "d": sum(p.numel() for p in model.parameters() if p.requires_grad),
                    "dtype": str(next(model.parameters()).dtype).replace("torch.", ""),
                    "device": str(next(model.parameters()).device),
                    "f_star": f_star, "f_lower": f_lower,
                    "objective": self.f.describe(),
                    "probes": [p.describe() for p in self.probes],
                    "wall_time": time.time(),
                    **(dict(start_info) if start_info is not None else self._loop_info())})
        self._init_done = False
        if not self._defer_init:
            self._initial_checkpoint()
        self._hooks = [optimizer.register_step_pre_hook(self._before_step),
                       optimizer.register_step_post_hook(self._after_step)]

    def _loop_info(self) -> dict[str, Any]:
        """A user's loop's start record: the facts, configuration and spec as known now (the
        end record has the final ones), so that the trace alone can be judged again."""
        from .finish import loop_config, loop_facts, loop_spec

        facts = loop_facts(self)
        return {"facts": {**facts.to_dict(), "description": f"{type(self.model).__name__} in "
                          "the user's own loop"},
                "config": loop_config(self, out=self.out), "optimizer": loop_spec(self),
                "api": True}

    def _flat_optimum(self, optimum: Mapping[str, Tensor] | None) -> Tensor | None:
        """The known optimum as one vector in the parameters' order (None if it does not fit)."""
        if optimum is None:
            return None
        try:
            ref = self._plist[0] if self._plist else None
            return torch.cat([optimum[n].to(ref).reshape(-1) for n, *_ in self._layout])
        except (KeyError, RuntimeError):
            return None

    # ------------------------------------------------------------------ records
    def _emit(self, record: dict[str, Any]) -> None:
        record = {"run": self.run, **record}
        self.records.append(record)
        if self.writer is not None:
            self.writer.write(record)
        for sink in list(self.sinks):
            self._to_sink(sink, "write", record)

    def _to_sink(self, sink: Any, method: str, *args: Any) -> None:
        """A sink (TensorBoard, W&B, a progress bar) never breaks the training: a failing one
        is warned about once and dropped."""
        try:
            getattr(sink, method)(*args)
        except Exception as exc:  # noqa: BLE001 - the user's training goes on
            if sink in self.sinks:
                self.sinks.remove(sink)
            warnings.warn(f"approx-audit: the {type(sink).__name__} sink failed "
                          f"({type(exc).__name__}: {exc}) and is dropped", RuntimeWarning,
                          stacklevel=3)

    def _flat(self) -> Tensor:
        """An independent copy of all trainable parameters as one vector."""
        if not self._plist:
            return torch.zeros(0)
        return torch.cat([p.detach().reshape(-1) for p in self._plist])

    def _flat_grad(self) -> Tensor:
        if not self._plist:
            return torch.zeros(0)
        return torch.cat([(torch.zeros_like(p) if p.grad is None else p.grad.detach()).reshape(-1)
                          for p in self._plist])

    def _grad_norm_now(self) -> float | None:
        """‖p.grad‖ over the trainable parameters (None before any backward)."""
        grads = [p.grad for p in self._plist if p.grad is not None]
        if not grads:
            return None
        norms = torch._foreach_norm(grads)          # one fused pass; ~17 µs for 4 tensors
        if len({n.dtype for n in norms}) > 1:
            norms = [n.float() for n in norms]      # mixed dtypes: stack needs one
        return float(torch.stack(norms).norm())

    def _params(self) -> FlatParams:
        return FlatParams(self._flat(), self._layout)

    def _checkpoint_values(self, params: FlatParams) -> dict[str, Any]:
        """Distance to the known optimum (no gradient)."""
        out: dict[str, Any] = {}
        if self._opt_flat is not None:
            out[KEY.dist_sq] = float((params.flat - self._opt_flat).pow(2).sum())
        elif self.optimum is not None:
            out[KEY.dist_sq] = None
        return out

    def _averages_values(self, k: int, x_k: FlatParams) -> dict[str, Any]:
        if not self.averages or self._sum is None or self.full_X is None or k < 1:
            return {}
        avg0 = self._sum / k                                   # x_0..x_{k-1}
        avg1 = (self._sum - self._x0.flat + x_k.flat) / k      # x_1..x_k
        wavg = 2.0 * self._wsum / (k * (k + 1))                # Σ_s 2s/(k(k+1)) x_{s-1}
        out = {}
        with torch.no_grad():
            for key, p in ((KEY.avg_loss_0, avg0), (KEY.avg_loss_1, avg1), (KEY.wavg_loss, wavg)):
                out[key] = self._full_loss(FlatParams(p, self._layout))
        self.costs.add_probe("averages", Cost(forward=3))
        return out

    # the full-data objective: hooks for the distributed auditor, which shards it over ranks
    def _full_loss_and_grad(self, params: Any) -> M.LossAndGrad:
        """F and ∇F on the full training set (1 forward, 1 backward)."""
        return M.loss_and_grad(self.f, params, self.full_X, self.full_y)

    def _full_loss(self, params: Any) -> float:
        """F on the full training set (1 forward, no gradient)."""
        with torch.no_grad():
            return float(self.f(params, self.full_X, self.full_y))

    def _prefill(self, ctx: ProbeContext) -> None:
        """Before the step's probes: values several probes share (nothing here; the
        distributed auditor computes the sharded full-data gradient once, on every rank)."""

    def _initial_checkpoint(self) -> None:
        self._init_done = True
        x0 = self._params()
        self._x0 = x0
        rec: dict[str, Any] = {"record": "init", "k": 0, **self._checkpoint_values(x0)}
        if self.full_X is not None:
            r = self._full_loss_and_grad(x0)
            self.costs.add_probe("checkpoints", r.cost)
            rec[KEY.full_loss] = r.loss
            rec[KEY.full_grad_norm] = math.sqrt(r.grad_norm_sq)
            if self.facts.f_star is not None:
                rec[KEY.suboptimality] = r.loss - float(self.facts.f_star)
            if math.isfinite(r.loss):       # the first secant of a full-data probe starts here
                self._start_checkpoint = (
                    r.loss, dict(x0), {k: r.grad[k].detach().clone() for k in x0})
        self._last_checkpoint_k = 0
        self._emit(rec)

    # ------------------------------------------------------------------ the user's calls
    def observe(self, X: Any, y: Any = None, loss: Tensor | float | None = None, *,
                grad_norm_raw: float | None = None) -> bool:
        """Tell the auditor the batch and the loss of the coming ``optimizer.step()``.

        ``X`` is the batch as the model takes it (a tensor, a tuple of inputs, a dict of
        keyword inputs; with ``loss_fn=`` the whole batch, and ``y`` may be None). Call it
        right after ``loss.backward()`` and *before* any gradient clipping: the gradient's
        norm here is recorded as ``grad_norm_raw``, the one the optimizer receives as
        ``grad_norm``, and a step whose gradient got shorter in between is a clipped step.
        Returns ``False`` (and records the divergence) when the loss is not finite: stop the
        loop then; the trace keeps every finished step. ``grad_norm_raw`` gives the norm before
        clipping when the loop clipped before it could call ``observe`` (a framework that
        clips first, e.g. the Hugging Face Trainer: see ``integrations.transformers``).
        """
        if self.closed:
            raise AuditError("the auditor is closed; create a new one for another run")
        if loss is None:
            raise AuditError("observe(X, y, loss): give the step's loss (with loss_fn=..., "
                             "observe(batch, None, loss))")
        if self._in_step:
            ok = self._observe_in_step(X, y, loss)
        else:
            ok = self._observe_before_step(X, y, loss)
        if ok and grad_norm_raw is not None and self._batch is not None and self._batch[0] is X:
            self._raw_norm = float(grad_norm_raw)      # this call's batch is the step's
        return ok

    def _observe_before_step(self, X: Any, y: Any, loss: Tensor | float) -> bool:
        self._raw_norm = self._grad_norm_now()
        value = float(loss.detach()) if isinstance(loss, Tensor) else float(loss)
        if not math.isfinite(value):
            self._diverge(f"the training loss is {value!r} at step {self.step}")
            return False
        self._batch = (X, y, value)
        return True

    def _observe_in_step(self, X: Any, y: Any, loss: Tensor | float) -> bool:
        """observe() from a closure inside optimizer.step(): the first call of the step is the
        evaluation at x_t (its gradient is snapshotted now); later calls (LBFGS's line
        search, SAM's second pass) are other points and are not the step's."""
        value = float(loss.detach()) if isinstance(loss, Tensor) else float(loss)
        self._evaluations += 1
        if self._pending is None or self._batch is not None:
            return math.isfinite(value)
        if not math.isfinite(value):
            self._diverge(f"the training loss is {value!r} at step {self.step}")
            return False
        self._raw_norm = self._grad_norm_now()
        self._batch = (X, y, value)
        self._before = (self._pending, FlatParams(self._flat_grad(), self._layout))
        return True

    def _diverge(self, message: str) -> None:
        if not self.diverged:
            self.diverged = True
            self._emit({"record": "diverged", "step": self.step, "message": message})

    # ------------------------------------------------------------------ hooks
    def _before_step(self, optimizer, args, kwargs) -> None:
        if self.diverged:
            return
        if not self._init_done:
            # the first step: the modules' flags now are training's (a BatchNorm the user
            # froze stays frozen in the audited function), and x_0's checkpoint is taken with
            # them — not at construction, where the model may still have been in eval mode
            self.f.fix_modes()
            self._initial_checkpoint()
        params = self._params()
        self._in_step = True
        if self._batch is None:
            # a closure (LBFGS, SAM, Lightning's automatic optimization) runs the forward and
            # backward inside step(): x_t is taken now, the gradient when observe() is called
            # from the closure (the first call of the step: the evaluation at x_t)
            self._pending = params
        else:
            self._before = (params, FlatParams(self._flat_grad(), self._layout))
        if self.averages:
            if self._sum is None:
                self._sum = torch.zeros_like(params.flat)
                self._wsum = torch.zeros_like(params.flat)
            self._sum.add_(params.flat)   # x_t enters both sums; weight t + 1 in the weighted one
            self._wsum.add_(params.flat, alpha=float(self.step + 1))

    def _unaudited_step(self, optimizer) -> None:
        """A step nobody reported (no observe() before it or in its closure): recorded with
        its step size as unaudited, never an error that stops the user's training."""
        t = self.step
        if "unaudited" not in self._warned:
            self._warned.add("unaudited")
            warnings.warn(f"approx-audit: optimizer.step() {t} ran without auditor.observe(X, y, "
                          "loss) before it or in its closure; it is recorded as unaudited",
                          RuntimeWarning, stacklevel=3)
        self.costs.train_steps += 1
        with self._sigint:
            self._emit({"record": "step", "step": t, "k": t + 1, "unaudited": True,
                        "lr": float(optimizer.param_groups[0].get("lr", float("nan")))})
            self.step += 1

    def _after_step(self, optimizer, args, kwargs) -> None:
        closure = self._pending is not None
        self._in_step, self._pending = False, None
        evaluations, self._evaluations = self._evaluations, 0
        if self.diverged:
            return
        if self._before is None:
            self._unaudited_step(optimizer)
            return
        X, y, loss_value = self._batch
        params_before, grad_before = self._before
        applied = grad_before.flat
        if closure and evaluations == 1:
            # one evaluation in the closure (Lightning, a plain closure): the gradient the
            # optimizer used is p.grad now, after whatever the closure did after observe()
            # (Lightning clips there); LBFGS and SAM evaluate again, so theirs is not known
            applied = self._flat_grad()
        self._batch, self._before = None, None
        params_after = self._params()
        t = self.step
        B = _rows(X)
        self.costs.train_steps += 1
        self.costs.train_examples += B
        self.costs.train = self.costs.train + Cost(forward=1, backward=1)
        lr = float(optimizer.param_groups[0].get("lr", float("nan")))
        ctx = ProbeContext(step=t, model=self.model, f=self.f, X=X, y=y,
                           params_before=params_before, params_after=params_after,
                           loss_before=loss_value, grad_before=grad_before, lr=lr,
                           optimizer=optimizer, workload=self.facts, full_X=self.full_X,
                           full_y=self.full_y, memory=self.memory,
                           start_checkpoint=self._start_checkpoint,
                           flat_before=params_before.flat, flat_after=params_after.flat,
                           flat_grad=applied, grad_exact=self._grad_exact,
                           grad_norm_raw=self._raw_norm)
        values: dict[str, Any] = {}
        notes: dict[str, str] = {}
        if t == 0 and self._repeat_check:
            self._check_repeatable(ctx, notes)
        self._prefill(ctx)
        for probe in self.probes:
            if probe.name in self.probe_errors or not probe.due(t):
                continue
            try:
                values.update(probe.measure(ctx))
            except Exception as exc:  # noqa: BLE001
                # recorded and switched off, never a silent number, and never raised: this runs
                # inside the user's optimizer.step(), and an audit must not kill the training
                # (e.g. gradient_noise refusing a BatchNorm the user switched to train mode
                # after building the Auditor)
                msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                self.probe_errors[probe.name] = f"{type(exc).__name__}: {msg}"
                notes[probe.name] = f"probe failed and was switched off: {msg}"
                warnings.warn(f"approx-audit: probe {probe.name!r} failed at step {t} and is "
                              f"switched off ({type(exc).__name__}: {msg}); training goes on",
                              RuntimeWarning, stacklevel=2)
                continue
            if probe.last_notes:
                notes.update(probe.last_notes)
            if probe.last_cost != _NO_COST:
                self.costs.add_probe(probe.name, probe.last_cost)
        # one process: unchanged; the distributed auditor (auditor/distributed.py) all-reduces
        values, notes = self._combine_step_values(values, notes, ctx)
        rec: dict[str, Any] = {"record": "step", "step": t, "k": t + 1, "lr": lr,
                               "batch_size": B, **values}
        if KEY.full_loss in values:
            rec.update(self._checkpoint_values(params_after))
            rec.update(self._averages_values(t + 1, params_after))
            self._last_checkpoint_k = t + 1
        rec["train_grad_evals"] = self.costs.train_grad_evals
        rec["probe_grad_evals"] = self.costs.probe_grad_evals
        rec["time"] = time.perf_counter() - self._t0
        if notes:
            rec["notes"] = notes
        with self._sigint:                   # the count and the trace line go together
            self._emit(rec)
            self.step += 1
        u = values.get(KEY.update_norm)
        finite = math.isfinite(u) if u is not None else bool(torch.isfinite(params_after.flat).all())
        if not finite:
            self._diverge(f"the parameters are not finite after step {t}")

    # the multi-process auditors skip it: a rank switching probes off alone would desynchronize
    # their collectives
    _repeat_check = True
    # x_0's checkpoint at the first step (one process); the multi-process auditors take it at
    # construction, where every rank meets the collectives at the same point
    _defer_init = True

    def _check_repeatable(self, ctx: ProbeContext, notes: dict[str, str]) -> None:
        """f twice at x_0 on the first batch (2 forwards, once per run): common random numbers
        make it one function unless a layer draws random numbers outside torch's generators
        (numpy, Python's random, a nondeterministic kernel). Then every probe comparing
        evaluations would measure noise: those probes are switched off, with the reason."""
        with torch.no_grad():
            a = float(self.f(ctx.params_before, ctx.X, ctx.y))
            b = float(self.f(ctx.params_before, ctx.X, ctx.y))
        self.costs.add_probe("checks", Cost(forward=2))
        if a == b or abs(a - b) <= 1e-5 * max(abs(a), abs(b), 1e-12) or not math.isfinite(a):
            return
        why = (f"the loss at the same point, batch and random numbers differs between two "
               f"evaluations ({a!r} vs {b!r}): a layer draws random numbers outside torch's "
               "generators, so comparisons of f would measure noise")
        for probe in self.probes:
            if not probe.free and probe.name not in self.probe_errors:
                self.probe_errors[probe.name] = f"UnsupportedLayerError: {why}"
                notes[probe.name] = f"probe switched off: {why}"
        warnings.warn(f"approx-audit: {why}; the probes that compare evaluations are switched "
                      "off", RuntimeWarning, stacklevel=3)

    def _combine_step_values(self, values: dict[str, Any], notes: dict[str, str],
                             ctx: ProbeContext) -> tuple[dict[str, Any], dict[str, str]]:
        """The step's probe values as recorded. Hook for :mod:`.distributed`, whose auditor
        all-reduces them across ranks here; one process records them unchanged."""
        return values, notes

    # ------------------------------------------------------------------ the end
    def close(self, status: str | None = None, message: str | None = None) -> dict[str, Any]:
        """Final checkpoint at x_K (when the last step was not one), the ``end`` record, hooks
        removed. ``status`` defaults to ``diverged`` or ``completed``. Returns the end record."""
        if self.closed:
            return self.records[-1]
        for h in self._hooks:
            h.remove()
        if not self._init_done and not self.diverged:
            self._initial_checkpoint()          # no step was taken: x_0's values still count
        if status is None:
            status = "diverged" if self.diverged else "completed"
        if (not self.diverged and self.full_X is not None and self.step > 0
                and self._last_checkpoint_k != self.step):
            try:
                x = self._params()
                r = self._full_loss_and_grad(x)
                self.costs.add_probe("checkpoints", r.cost)
                rec = {"record": "final", "k": self.step, KEY.full_loss: r.loss,
                       KEY.full_grad_norm: math.sqrt(r.grad_norm_sq),
                       **self._checkpoint_values(x), **self._averages_values(self.step, x)}
                if self.facts.f_star is not None:
                    rec[KEY.suboptimality] = r.loss - float(self.facts.f_star)
                self._emit(rec)
            except Exception as exc:  # the run's records stay; the failure is reported
                self.probe_errors["checkpoints"] = f"{type(exc).__name__}: {exc}"
        end = {"record": "end", "status": status, "steps": self.step, "message": message,
               "probe_errors": dict(self.probe_errors), "costs": self.costs.as_dict(),
               "seconds": time.perf_counter() - self._t0}
        if self.records and self.records[0].get("api"):
            from .finish import loop_config, loop_spec

            # the spec and configuration as the run ended (first step size, the schedule,
            # clipping), for a rebuild of results.json from the trace alone
            end.update(optimizer=loop_spec(self), config=loop_config(self, out=self.out))
        self._emit(end)
        if self.writer is not None:
            self.writer.close()
        self._sigint.uninstall()
        self.closed = True
        return end

    def verdicts(self, *, bounds: list[str] | None = None,
                 assume: Mapping[str, float] | None = None, convex: bool | None = None,
                 f_lower: float | None = None) -> list:
        """Rule on the catalogue bounds matching this optimizer from what was recorded.

        The optimizer's spec is read from its class and first param group, with the run's
        first step size and the schedule the recorded step sizes show. Nothing is known about
        the user's objective unless given: ``convex``, ``f_lower`` (e.g. 0 for a non-negative
        loss), ``assume`` (constants, marked asserted). The user's loop draws the batches, so
        unbiased gradients are an assumption, and violations are reported as inconclusive at
        most.
        """
        from .finish import loop_facts, loop_spec, speak_api
        from .judge import judge

        return speak_api(judge(self.records, loop_facts(self, convex, f_lower), loop_spec(self),
                               bounds=bounds, assume=assume)[0])

    def finish(self, out: str | Path | None = None, *, convex: bool | None = None,
               f_lower: float | None = None, assume: Mapping[str, float] | None = None,
               bounds: list[str] | None = None, formats: tuple[str, ...] = ("html", "md"),
               status: str | None = None, message: str | None = None) -> tuple[list, dict]:
        """Close the audit and write what ``approx-audit run`` writes: ``results.json`` (same
        schema, same verdicts) and ``report.html`` / ``report.md`` into ``out`` (default: the
        folder given as ``out=`` when the auditor was built; ``None`` for neither writes
        nothing). The configuration records the model, optimizer, scheduler and clipping;
        ``approx-audit report`` re-renders it. Returns (verdicts, results)."""
        from .finish import loop_results, write_loop_results

        self.close(status, message)
        folder = Path(out) if out is not None else self.out
        verdicts, results = loop_results(self, convex=convex, f_lower=f_lower, assume=assume,
                                         bounds=bounds, out=folder)
        for sink in list(self.sinks):
            self._to_sink(sink, "verdicts", [v.to_dict() for v in verdicts], self.step)
            self._to_sink(sink, "close")
        if folder is not None:
            write_loop_results(results, folder, formats)
        return verdicts, results

    def __enter__(self) -> "Auditor":
        return self

    def __exit__(self, kind, exc, tb) -> bool:
        """``with Auditor(...) as auditor:`` finishes on leaving; after an exception the
        results are still written (status ``interrupted`` for Ctrl-C, else ``error``) and the
        exception goes on."""
        if exc is None:
            self.finish()
        else:
            status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "error"
            self.finish(status=status, message=f"{type(exc).__name__}: {exc}"[:300])
        return False


def train(workload: Any, model: nn.Module, optimizer: torch.optim.Optimizer, auditor: Auditor, *,
          steps: int, batch_size: int | None, sampling_seed: int,
          lr_at: Callable[[int], float] | None = None) -> str:
    """Run ``steps`` optimizer steps on ``workload``'s objective with ``model``.

    Minibatches are drawn i.i.d. uniformly with replacement from ``sampling_seed`` (on the
    CPU generator, so a seed gives the same indices on every device); ``batch_size=None`` or
    ``>= n`` uses the full data. ``lr_at(t)`` sets every param group's learning rate before
    step ``t``. Returns ``"completed"`` or ``"diverged"``; Ctrl-C propagates to the caller.
    """
    X, y, n = workload.X, workload.y, workload.n
    full = batch_size is None or batch_size >= n
    gen = torch.Generator(device="cpu").manual_seed(int(sampling_seed))
    for t in range(steps):
        if lr_at is not None:
            lr = lr_at(t)
            for group in optimizer.param_groups:
                group["lr"] = lr
        if full:
            Xb, yb = X, y
        else:
            idx = torch.randint(0, n, (batch_size,), generator=gen).to(X.device)
            Xb, yb = X[idx], y[idx]
        optimizer.zero_grad(set_to_none=True)
        loss = workload.criterion(model(Xb), yb) + workload.regularization(
            dict(model.named_parameters()))
        loss.backward()
        if not auditor.observe(Xb, yb, loss):
            return "diverged"
        optimizer.step()
        if auditor.diverged:
            return "diverged"
    return "completed"
