"""Probes: one small class per quantity the auditor measures along a training trajectory.

After each optimizer step ``t`` the run loop builds a :class:`ProbeContext` (the batch of the
step, the parameters before and after it, the loss and gradient training already computed at
``params_before``) and calls every probe that is *due* (``(step + 1) % every == 0``: a probe ``@50`` measures
x_50, x_100, …, so its checkpoints fall on multiples of ``every`` and the run loop's own
checkpoint at x_0 is not repeated)::

    record = {}
    for p in probes:
        if p.due(ctx.step):
            record.update(p.measure(ctx))      # stable keys, float or None
            overhead = overhead + p.last_cost  # exact passes beyond training

Each probe declares

``name``         its registry name (``make_probes("loss,sharpness@25")``);
``estimates``    what it estimates, in words;
``keys``         the trace keys it returns, and ``direction``/``key_directions``: which way
                 they can be wrong as estimates of a *global* constant — ``lower`` (a max over
                 visited points of a local quantity, e.g. local smoothness or sharpness vs L),
                 ``upper`` (a min over visited points, e.g. the PL ratio vs μ), ``exact`` (the
                 quantity itself, e.g. the loss on the batch), ``unbiased`` (a sample
                 estimate, e.g. gradient noise σ²), ``n/a`` (no global constant). All three
                 are read from the observables table (:mod:`.observables`), where each key is
                 declared once: ``direction`` is the headline (first) key's, and
                 ``key_directions`` gives every key's for a probe with several;
``every``        the schedule;
``cost``         the extra passes beyond training for one run (:class:`~.measure.Cost`);
                 :meth:`Probe.cost_for` gives it for a given context (gradient noise counts
                 the batch's examples), ``cost_is_bound`` marks an upper bound (Lanczos stops
                 early), and ``last_cost`` is what the last run actually made.

When a value cannot be measured the key is present with ``None`` and ``last_notes[key]`` says
why, in one line. ``ctx.memory`` is kept by the run loop across steps; each probe keeps its
state under ``ctx.memory[probe.name]`` (the start point, Lanczos warm-start vectors, counters).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from ..bounds.errors import ApproxAuditError, InvalidValueError
from . import measure as M
from . import noise as N
from .measure import Cost
from .observables import DIRECTIONS, OBSERVABLES, KEY, PROBE, keys_of

__all__ = [
    "AdamSharpnessProbe", "DIRECTIONS", "DistanceFromStartProbe", "FullBatchProbe", "GradNormProbe",
    "GradientNoiseProbe", "LocalSmoothnessProbe", "LossProbe", "PLRatioProbe", "PRESETS",
    "PROBES", "PlRatioProbe", "Probe", "ProbeContext", "SharpnessProbe", "UnknownProbeError",
    "UpdateNormProbe", "make_probes", "run_probes", "snapshot",
]

Values = dict[str, "float | None"]


class UnknownProbeError(ApproxAuditError, LookupError):
    """A probe or preset name that is not registered, or a malformed probe spec."""


def snapshot(params: Mapping[str, Tensor] | nn.Module) -> dict[str, Tensor]:
    """Detached clones of a module's trainable parameters (or of a name→tensor dict)."""
    if isinstance(params, nn.Module):
        params = M.params_of(params)
    return {k: v.detach().clone() for k, v in params.items()}


class Need(enum.Enum):
    """Work a probe needs beyond what training computed. Probes declare it
    (:attr:`Probe.needs`); the run loop checks the model supports it and schedules the shared
    part from these declarations (:func:`due_needs`), never from a probe's name."""

    FULL_AT_AFTER = "F and ∇F on the full data at x_{t+1}, computed once per step and shared"
    BATCH_GRAD_AFTER = "the batch gradient at x_{t+1} (a multi-process auditor combines it)"
    PER_SAMPLE_GRADS = "per-example gradients of the batch (torch.func)"
    HVP = "Hessian-vector products (double backward)"


def due_needs(probes: Iterable["Probe"], step: int) -> set[Need]:
    """What the probes due at ``step`` need (the schedule is the same on every rank)."""
    return {n for p in probes if p.due(step) for n in p.needs}


@dataclass
class SharedWork:
    """Values several probes (and a multi-process auditor) share within one step, as typed
    fields: ``full_at_after`` (F, ∇F on the full data at x_{t+1}; :attr:`Need.FULL_AT_AFTER`),
    ``batch_grad_norm`` (‖g_t‖, from the gradient-norm probe) and ``batch_grads`` (the names
    and the batch gradients at x_t and x_{t+1}; :attr:`Need.BATCH_GRAD_AFTER`)."""

    full_at_after: Any = None
    batch_grad_norm: float | None = None
    batch_grads: tuple[list[str], dict[str, Tensor], dict[str, Tensor]] | None = None


@dataclass
class ProbeContext:
    """What the run loop hands to the probes after optimizer step ``step``.

    ``f(params, X, y)`` is the objective as a pure function (``Workload.functional_loss()``);
    ``X``/``y`` the minibatch of this step; ``params_before``/``params_after`` detached clones
    of the parameters around the step (same names, same order); ``loss_before`` and
    ``grad_before`` the loss and gradient of ``f`` on the batch at ``params_before``, as
    training computed them (free); ``full_X``/``full_y`` the full training set; ``memory`` a
    dict the run loop keeps across steps (each probe its own slot, :meth:`state`);
    ``start_checkpoint`` (F(x_0), x_0, ∇F(x_0)) of the full data when the loop computed it;
    ``shared`` the step's :class:`SharedWork`.
    """

    step: int
    model: nn.Module
    f: Callable[..., Tensor]
    X: Any
    y: Any
    params_before: dict[str, Tensor]
    params_after: dict[str, Tensor]
    loss_before: float | None = None
    grad_before: dict[str, Tensor] | None = None
    lr: float | None = None
    optimizer: torch.optim.Optimizer | None = None
    workload: Any = None
    full_X: Any = None
    full_y: Any = None
    memory: dict[str, Any] = field(default_factory=dict)
    # Optional flat copies (one vector over all parameters, the order of params_before); the
    # run loop passes them so the free probes cost one vector operation each.
    flat_before: Tensor | None = None
    flat_after: Tensor | None = None
    flat_grad: Tensor | None = None
    start_checkpoint: tuple[float, dict[str, Tensor], dict[str, Tensor]] | None = None
    shared: SharedWork = field(default_factory=SharedWork)
    # Whether loss_before/grad_before are f's own value and gradient at params_before: true in
    # the auditor's own loop on a deterministic objective; false in a user's loop (clipping,
    # gradient scaling) or when training drew other dropout masks than f's common random
    # numbers, and then a probe needing f's gradient at x_t computes it.
    grad_exact: bool = True
    # ‖∇‖ of the loss's gradient when the loop reported it, before any clipping (observe())
    grad_norm_raw: float | None = None

    def state(self, name: str) -> dict[str, Any]:
        """This probe's own slot in :attr:`memory`."""
        return self.memory.setdefault(name, {})


class Probe:
    """Base class; subclasses set the class attributes and implement :meth:`_measure`."""

    name: ClassVar[str] = ""
    estimates: ClassVar[str] = ""
    direction: ClassVar[str] = "n/a"
    key_directions: ClassVar[Mapping[str, str]] = MappingProxyType({})
    keys: ClassVar[tuple[str, ...]] = ()
    free: ClassVar[bool] = False
    needs: ClassVar[frozenset[Need]] = frozenset()
    cost_is_bound: ClassVar[bool] = False
    default_every: ClassVar[int] = 1

    def __init_subclass__(cls, **kwargs):
        """A registered probe's keys and directions come from the observables table (one
        declaration per key); a probe outside the table sets its own."""
        super().__init_subclass__(**kwargs)
        keys = keys_of(cls.name) if cls.name else ()
        if keys and "keys" not in cls.__dict__:
            cls.keys = keys
            cls.direction = OBSERVABLES[keys[0]].direction
            cls.key_directions = MappingProxyType(
                {k: OBSERVABLES[k].direction for k in keys} if len(keys) > 1 else {})

    def __init__(self, every: int | None = None):
        every = self.default_every if every is None else every
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise InvalidValueError(f"probe {self.name!r}: every={every!r}; give a positive "
                                    "integer number of steps")
        self.every = every
        self.last_cost = Cost()
        self.last_notes: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(every={self.every})"

    @property
    def cost(self) -> Cost:
        """Extra passes of one run, beyond training (per_sample counted by :meth:`cost_for`)."""
        return Cost()

    def cost_for(self, ctx: ProbeContext) -> Cost:
        """Declared cost of one run on ``ctx`` (an upper bound where ``cost_is_bound``)."""
        return self.cost

    def due(self, step: int) -> bool:
        return (step + 1) % self.every == 0

    def measure(self, ctx: ProbeContext) -> Values:
        """Measure at ``ctx``; every key of :attr:`keys` is present (None with a note)."""
        self.last_notes = {}
        self.last_cost = Cost()
        out = self._measure(ctx)
        values: Values = {}
        for k in self.keys:
            v = out.get(k)
            if v is not None:
                v = float(v)
                if not math.isfinite(v):
                    self.last_notes.setdefault(k, f"non-finite value {v!r}")
            values[k] = v
        return values

    def _measure(self, ctx: ProbeContext) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _none(self, reason: str, keys: tuple[str, ...] | None = None) -> dict[str, Any]:
        for k in self.keys if keys is None else keys:
            self.last_notes[k] = reason
        return {}

    def describe(self) -> dict[str, Any]:
        """A JSON-able description for a report's assumptions table."""
        return {"name": self.name, "estimates": self.estimates, "direction": self.direction,
                "key_directions": dict(self.key_directions), "every": self.every,
                "keys": list(self.keys), "cost": self.cost.as_dict(),
                "cost_is_bound": self.cost_is_bound, "free": self.free}


def _norm(d: Mapping[str, Tensor]) -> float:
    return float(M.norm(d))


def _diff(a: Mapping[str, Tensor], b: Mapping[str, Tensor]) -> dict[str, Tensor]:
    return {k: a[k] - b[k] for k in a}


# ---------------------------------------------------------------------------------------------
# Free probes: from what training already computed
# ---------------------------------------------------------------------------------------------

class LossProbe(Probe):
    name = PROBE.loss
    estimates = "the minibatch loss f(x_t; batch_t) at the step's start point (from training)"
    free = True

    def _measure(self, ctx):
        if ctx.loss_before is None:
            return self._none("training passed no loss_before")
        return {KEY.loss: ctx.loss_before}


class GradNormProbe(Probe):
    name = PROBE.grad_norm
    estimates = ("‖∇f(x_t; batch_t)‖, the minibatch gradient norm (from training); a max over "
                 "steps is a lower estimate of a gradient bound G")
    free = True

    def _measure(self, ctx):
        if ctx.flat_grad is not None:
            g = ctx.flat_grad
            if g.numel() == 0:
                return {KEY.grad_norm: 0.0, KEY.grad_inf_norm: 0.0}
            lo, hi = torch.aminmax(g)       # two cheap ops beat vector_norm(ord=inf) here
            norm = math.sqrt(torch.dot(g, g).item())
            inf = max(-lo.item(), hi.item())
            ctx.shared.batch_grad_norm = norm
            return self._raw({KEY.grad_norm: norm, KEY.grad_inf_norm: inf}, ctx)
        if ctx.grad_before is None:
            return self._none("training passed no grad_before")
        inf = max((float(g.detach().abs().max()) for g in ctx.grad_before.values()
                   if g.numel()), default=0.0)
        return self._raw({KEY.grad_norm: _norm(ctx.grad_before), KEY.grad_inf_norm: inf}, ctx)

    def _raw(self, out: dict[str, Any], ctx) -> dict[str, Any]:
        """The norm before clipping (from the loop) and whether the step was clipped: the
        gradient the optimizer received is shorter than the loss's (relative 1e-6)."""
        raw = ctx.grad_norm_raw
        if raw is None:
            return self._none_raw(out, "the loop reported no gradient norm before the step's "
                                       "gradient transforms")
        out[KEY.grad_norm_raw] = raw
        applied = out[KEY.grad_norm]
        out[KEY.grad_clipped] = 1.0 if applied < raw * (1.0 - 1e-6) else 0.0
        if applied > raw * (1.0 + 1e-6):
            self.last_notes[KEY.grad_clipped] = (
                f"the gradient grew between observe() and the step ({raw:.4g} → {applied:.4g}): "
                "a gradient scaler? call observe() after unscaling")
        return out

    def _none_raw(self, out, reason):
        for k in (KEY.grad_norm_raw, KEY.grad_clipped):
            self.last_notes[k] = reason
        return out


class UpdateNormProbe(Probe):
    """‖x_{t+1} − x_t‖, the step's effective learning rate ‖Δx‖/‖g‖, and the update
    correlation cos∠(Δx_t, Δx_{t−1}) between consecutive steps (DESIGN's "update correlation":
    near 1 the optimizer moves steadily, near −1 it oscillates across a valley — the
    edge-of-stability signature). Free: one stored previous update (a flat vector) when the run
    loop passes flat snapshots, else a name → tensor copy.
    """

    name = PROBE.update_norm
    estimates = ("‖x_{t+1} − x_t‖, the length of the optimizer's step, and the cosine between "
                 "consecutive steps")
    free = True

    def _measure(self, ctx):
        if ctx.flat_after is not None and ctx.flat_before is not None:
            d = ctx.flat_after - ctx.flat_before
        else:
            d = M.flatten(_diff(ctx.params_after, ctx.params_before))
        uu = torch.dot(d, d).item()
        u = math.sqrt(uu)
        out = {KEY.update_norm: u}
        if ctx.shared.batch_grad_norm is not None:
            g = ctx.shared.batch_grad_norm
        elif ctx.flat_grad is not None:
            g = float(torch.linalg.vector_norm(ctx.flat_grad))
        else:
            g = None if ctx.grad_before is None else _norm(ctx.grad_before)
        if g:
            out[KEY.effective_lr] = u / g     # ‖Δx‖/‖g‖: lr for plain SGD
        else:
            self.last_notes[KEY.effective_lr] = "no gradient, or a zero gradient, at this step"
        mem = ctx.state(self.name)
        prev = mem.get("previous")
        if prev is None or prev[0].shape != d.shape:
            self.last_notes[KEY.update_correlation] = "first step: needs a previous update"
        elif prev[1] == 0.0 or uu == 0.0:
            self.last_notes[KEY.update_correlation] = "a zero update: the angle is undefined"
        else:
            out[KEY.update_correlation] = torch.dot(d, prev[0]).item() / math.sqrt(uu * prev[1])
        mem["previous"] = (d, uu)
        return out


class DistanceFromStartProbe(Probe):
    name = PROBE.distance_from_start
    estimates = ("‖x_{t+1} − x_0‖, with x_0 the parameters before the first step this probe "
                 "saw; a max is a lower estimate of the radius the trajectory needs")
    free = True

    def _measure(self, ctx):
        mem = ctx.state(self.name)
        if ctx.flat_before is not None and ctx.flat_after is not None:
            if "start_flat" not in mem:
                mem["start_flat"] = ctx.flat_before.clone()
                mem["start_step"] = ctx.step
            d = ctx.flat_after - mem["start_flat"]
            return {KEY.distance_from_start: math.sqrt(torch.dot(d, d).item())}
        if "start" not in mem:
            mem["start"] = snapshot(ctx.params_before)
            mem["start_step"] = ctx.step
        return {KEY.distance_from_start: _norm(_diff(ctx.params_after, mem["start"]))}


# ---------------------------------------------------------------------------------------------
# Local smoothness and convexity along consecutive iterates (one extra gradient)
# ---------------------------------------------------------------------------------------------

def _unclipped(ctx: ProbeContext) -> bool:
    """The optimizer received the loss's gradient unchanged at this step: its norm (from the
    grad_norm probe) equals the norm observe() saw (relative 1e-6). Unknown counts as no."""
    raw, g = ctx.grad_norm_raw, ctx.shared.batch_grad_norm
    return raw is not None and g is not None and abs(g - raw) <= 1e-6 * max(raw, 1e-30)


class LocalSmoothnessProbe(Probe):
    """One extra gradient at ``params_after`` on the step's batch gives, on the SAME batch:

    * ``local_smoothness`` = ‖∇f(x_{t+1}) − ∇f(x_t)‖ / ‖Δx‖ (a max over steps is a lower
      estimate of L);
    * ``convexity_gap`` = f(x_{t+1}) − f(x_t) − ⟨∇f(x_t), Δx⟩ (base x_t; ≥ 0 if convex), and
      ``convexity_gap_reverse`` = f(x_t) − f(x_{t+1}) + ⟨∇f(x_{t+1}), Δx⟩ (base x_{t+1}, Tran,
      Zhang & Cutkosky's form, with the sign "≥ 0 is convex"); their sum is ⟨Δg, Δx⟩;
    * ``convexity_numerator`` ⟨∇f(x_{t+1}), Δx⟩, ``convexity_denominator`` f(x_{t+1}) − f(x_t)
      and ``convexity_ratio`` their quotient (Tran et al.'s per-step ratio: sum numerators and
      denominators over a window to get theirs), from :func:`~.measure.convexity_terms`;
    * ``convexity_gap_normalized`` = gap / ((L̂/2)‖Δx‖²) with L̂ this step's local smoothness
      (in [−1, 1]; ≥ 0 if convex), and ``loss_after`` f(x_{t+1}; batch_t).

    Any negative gap proves the batch loss is not convex along the path (a certain refutation);
    non-negative gaps at visited pairs are consistent with, not proof of, convexity.
    """

    name = PROBE.local_smoothness
    needs = frozenset({Need.BATCH_GRAD_AFTER})
    estimates = ("L by ‖∇f(x_{t+1}) − ∇f(x_t)‖/‖x_{t+1} − x_t‖ on the same batch; convexity gaps "
                 "between consecutive iterates")

    @property
    def cost(self):
        return Cost(forward=1, backward=1)

    def cost_for(self, ctx):
        return self.cost if self._reuses_training(ctx) else Cost(forward=2, backward=2)

    def _reuses_training(self, ctx) -> bool:
        """Whether training's loss and gradient at x_t are f's own: known in the auditor's own
        loop (``grad_exact``); in a user's loop, once verified on a first step (see
        :meth:`_before`) and then for every step that was not clipped, while f draws no
        random numbers (other dropout masks than training's)."""
        if ctx.grad_exact:
            return True
        if ctx.state(self.name).get("trusted") is not True or getattr(ctx.f, "stochastic", ()):
            return False
        return _unclipped(ctx)

    def _before(self, ctx) -> tuple[float | None, Any, Cost]:
        """(f(x_t), ∇f(x_t), cost): training's when they are f's, else computed from f on the
        same batch and random numbers (clipped or scaled gradients, other dropout masks, a
        user's loss with other terms). The first computed pair in a user's loop is compared
        with training's; if they agree (1e-5 relative), training's are reused from then on for
        unclipped steps, so a plain loop pays one gradient here instead of two."""
        if self._reuses_training(ctx):
            return ctx.loss_before, ctx.grad_before, Cost()
        rb = M.loss_and_grad(ctx.f, ctx.params_before, ctx.X, ctx.y)
        mem = ctx.state(self.name)
        if mem.get("trusted") is None and ctx.grad_before is not None and _unclipped(ctx) \
                and ctx.loss_before is not None and not getattr(ctx.f, "stochastic", ()):
            names = list(rb.grad)
            gap = _norm({k: rb.grad[k] - ctx.grad_before[k] for k in names}) / max(
                _norm(rb.grad), 1e-30)
            same_loss = abs(rb.loss - ctx.loss_before) <= 1e-5 * max(1.0, abs(rb.loss))
            mem["trusted"] = bool(gap <= 1e-5 and same_loss)
        return rb.loss, rb.grad, rb.cost

    def _measure(self, ctx):
        loss_before, grad_before, cost = self._before(ctx)
        if grad_before is None or loss_before is None:
            return self._none("training passed no loss_before/grad_before for this step")
        r = M.loss_and_grad(ctx.f, ctx.params_after, ctx.X, ctx.y)
        self.last_cost = r.cost + cost
        xb, xa = ctx.params_before, ctx.params_after
        names = list(xb)
        gb = {k: grad_before[k] for k in names}
        ga = {k: r.grad[k] for k in names}
        xa = {k: xa[k] for k in names}
        out: dict[str, Any] = {KEY.loss_after: r.loss}
        L_hat = M.local_smoothness(gb, ga, xb, xa)
        if L_hat is None:
            return {**out, **self._none("the step did not move the parameters (Δx = 0)",
                                        tuple(k for k in self.keys if k != KEY.loss_after))}
        out[KEY.local_smoothness] = L_hat
        # the two batch gradients, kept for the step by reference (a DDP rank combines the
        # ranks' changes into the global batch's, whose norm is the exact global-batch secant)
        ctx.shared.batch_grads = (names, gb, ga)
        fwd = M.convexity_terms(loss_before, r.loss, gb, xb, xa)   # base x_t
        rev = M.convexity_terms(r.loss, loss_before, ga, xa, xb)   # base x_{t+1} (Tran)
        out[KEY.convexity_gap] = fwd.gap
        out[KEY.convexity_gap_reverse] = rev.gap
        out[KEY.convexity_numerator] = rev.numerator
        out[KEY.convexity_denominator] = rev.denominator
        if rev.ratio is None:
            self.last_notes[KEY.convexity_ratio] = "f(x_{t+1}) = f(x_t): the ratio is undefined"
        out[KEY.convexity_ratio] = rev.ratio
        norm_gap = M.normalized_convexity_gap(fwd.gap, L_hat, xb, xa)
        if norm_gap is None:
            self.last_notes[KEY.convexity_gap_normalized] = "local smoothness is 0 at this step"
        out[KEY.convexity_gap_normalized] = norm_gap
        return out


# ---------------------------------------------------------------------------------------------
# Full-batch checkpoints: loss, gradient, suboptimality, PL ratio
# ---------------------------------------------------------------------------------------------

def _full_data(ctx: ProbeContext) -> tuple[Any, Any] | None:
    if ctx.full_X is not None and ctx.full_y is not None:
        return ctx.full_X, ctx.full_y
    w = ctx.workload
    if w is not None and getattr(w, "X", None) is not None:
        return w.X, w.y
    return None


def _full_loss_and_grad(ctx: ProbeContext, data) -> tuple[Any, Cost]:
    """F and ∇F at x_{t+1}, computed once per step and shared (full_batch, pl_ratio)."""
    hit = ctx.shared.full_at_after
    if hit is not None:
        return hit, Cost()
    r = M.loss_and_grad(ctx.f, ctx.params_after, *data)
    ctx.shared.full_at_after = r
    return r, r.cost


class FullBatchProbe(Probe):
    """F(x_{t+1}) and ∇F(x_{t+1}) on the full training set at checkpoints.

    From two consecutive checkpoints a, b it also derives, at no extra pass, the secant
    smoothness ``full_smoothness`` = ‖∇F(x_b) − ∇F(x_a)‖/‖x_b − x_a‖ (any secant is ≤ L, so a
    max over checkpoints is a *lower* estimate of the objective's L, valid for minibatch runs
    too) and ``full_convexity_gap`` = min of F(x_b) − F(x_a) − ⟨∇F(x_a), x_b − x_a⟩ and the same
    with a and b swapped (< 0 proves F is not convex). It keeps one gradient and one parameter
    copy in ``ctx.memory`` for this.
    """

    name = PROBE.full_batch
    needs = frozenset({Need.FULL_AT_AFTER})
    estimates = ("the full objective F(x_{t+1}) and ‖∇F(x_{t+1})‖ at checkpoints, and F − f* "
                 "where f* is known exactly; secant smoothness and convexity gap of F between "
                 "consecutive checkpoints")
    default_every = 50

    @property
    def cost(self):
        return Cost(forward=1, backward=1)

    def _measure(self, ctx):
        data = _full_data(ctx)
        if data is None:
            return self._none("no full training set in the context (full_X/full_y)")
        r, self.last_cost = _full_loss_and_grad(ctx, data)
        out = {KEY.full_loss: r.loss, KEY.full_grad_norm: math.sqrt(r.grad_norm_sq)}
        f_star = getattr(ctx.workload, "f_star", None)
        if f_star is None:
            self.last_notes[KEY.suboptimality] = "f* is not known for this workload"
        else:
            out[KEY.suboptimality] = r.loss - float(f_star)
        mem = ctx.state(self.name)
        prev = mem.get("previous", ctx.start_checkpoint)   # the loop's x_0 checkpoint first
        x_b = {k: v.detach().clone() for k, v in ctx.params_after.items()}
        g_b = {k: r.grad[k].detach().clone() for k in x_b}
        if prev is None:
            for k in (KEY.full_smoothness, KEY.full_convexity_gap):
                self.last_notes[k] = "first checkpoint: needs a previous one"
        else:
            f_a, x_a, g_a = prev
            secant = M.local_smoothness(g_a, g_b, x_a, x_b)
            if secant is None:
                for k in (KEY.full_smoothness, KEY.full_convexity_gap):
                    self.last_notes[k] = "the parameters did not move between checkpoints"
            else:
                out[KEY.full_smoothness] = secant
                fwd = M.convexity_terms(f_a, r.loss, g_a, x_a, x_b)
                rev = M.convexity_terms(r.loss, f_a, g_b, x_b, x_a)
                out[KEY.full_convexity_gap] = min(fwd.gap, rev.gap)
        mem["previous"] = (r.loss, x_b, g_b)
        return out


class PLRatioProbe(Probe):
    """‖∇F(x)‖² / (2(F(x) − f*)) on the full data at x_{t+1}.

    With the exact f* the minimum over visited points is an *upper* estimate of the PL constant
    μ of the path (and of a global μ). With only a lower bound f_lower ≤ f* the denominator is
    too large, each ratio too small, and the minimum has no definite direction:
    ``pl_uses_f_star`` is 0 and the key direction is then n/a (read :meth:`direction_for`).
    """

    name = PROBE.pl_ratio
    needs = frozenset({Need.FULL_AT_AFTER})
    estimates = "mu (Polyak–Łojasiewicz) by ‖∇F‖²/(2(F − f*)) on the full data at checkpoints"
    cost_is_bound = True     # free when full_batch computed F and ∇F at the same step
    default_every = 50

    @property
    def cost(self):
        return Cost(forward=1, backward=1)

    @staticmethod
    def direction_for(uses_f_star: bool) -> str:
        return "upper" if uses_f_star else "n/a"

    def _measure(self, ctx):
        w = ctx.workload
        f_star = getattr(w, "f_star", None)
        f_ref = f_star if f_star is not None else getattr(w, "f_lower", None)
        if f_ref is None:
            return self._none("the workload knows neither f* nor a lower bound f_lower")
        data = _full_data(ctx)
        if data is None:
            return self._none("no full training set in the context (full_X/full_y)")
        r, self.last_cost = _full_loss_and_grad(ctx, data)
        out: dict[str, Any] = {KEY.pl_gap: r.loss - float(f_ref),
                               KEY.pl_uses_f_star: 1.0 if f_star is not None else 0.0}
        ratio = M.pl_ratio(r.grad_norm_sq, r.loss, float(f_ref))
        if ratio is None:
            self.last_notes[KEY.pl_ratio] = (f"F(x) − {'f*' if f_star is not None else 'f_lower'}"
                                           " ≤ 0 (at the optimum to rounding)")
        out[KEY.pl_ratio] = ratio
        return out


PlRatioProbe = PLRatioProbe


# ---------------------------------------------------------------------------------------------
# Gradient noise (per-sample gradients)
# ---------------------------------------------------------------------------------------------

class GradientNoiseProbe(Probe):
    """σ², the per-example gradient variance, at x_t on the step's batch.

    Two estimators, chosen automatically (``method="auto"``) and recorded in the trace
    (``gradient_noise_microbatch``: 1 for per-example gradients, else the microbatch size b):

    ``per_sample``  σ² = (1/(B−1))Σ‖g_i − ḡ‖² from per-example gradients (torch.func.vmap):
                    exact for the batch, when examples do not interact;
    ``microbatch``  σ² = b·(1/(m−1))Σ_j‖ḡ_j − ḡ‖² over m disjoint microbatches of size b
                    (:func:`~.noise.microbatch_gradient_noise`, the estimator behind the
                    gradient noise scale of McCandlish et al. 2018), with its standard error
                    ``gradient_noise_se``: ordinary gradients only, so it works when layers
                    couple the samples (BatchNorm: each microbatch normalizes with its own
                    statistics, as a data-parallel worker without SyncBatchNorm does) or draw
                    random numbers (dropout: each microbatch gets an independent draw, so the
                    mask noise SGD sees is counted).

    Auto uses the microbatch estimator when the objective has coupling or stochastic layers,
    or when per-example gradients fail or disagree with the batch gradient (a custom layer that
    mixes examples: checked once, on the first measurement, at the cost of one gradient).
    ``gradient_noise_batch`` is σ²/B, the variance of the batch-mean gradient, and
    ``gradient_snr`` ‖ḡ‖²/(σ²/B).
    """

    name = PROBE.gradient_noise
    needs = frozenset({Need.PER_SAMPLE_GRADS})
    estimates = ("sigma² (bounded variance) from per-example gradients, or from microbatch "
                 "gradients when layers couple the samples or draw random numbers")
    default_every = 10
    METHODS = ("auto", "per_sample", "microbatch")

    def __init__(self, every: int | None = None, chunk_size: int | None = None,
                 method: str = "auto", microbatches: int = 8):
        super().__init__(every)
        if method not in self.METHODS:
            raise InvalidValueError(f"gradient_noise: method={method!r}; use one of "
                                    f"{', '.join(self.METHODS)}")
        if isinstance(microbatches, bool) or not isinstance(microbatches, int) or microbatches < 2:
            raise InvalidValueError(f"gradient_noise: microbatches={microbatches!r}; give an "
                                    "integer >= 2")
        self.chunk_size, self.method, self.microbatches = chunk_size, method, microbatches

    @property
    def cost(self):
        return Cost(forward=1, backward=1, vmapped=1)   # per_sample: the batch size

    def cost_for(self, ctx):
        B = M._leading_dim(ctx.X)
        if ctx.memory.get(self.name, {}).get("method") == "microbatch":
            m = min(self.microbatches, B // 2)
            return Cost(forward=m, backward=m) if m >= 2 else Cost()
        calls = 1 if self.chunk_size is None else math.ceil(B / self.chunk_size)
        check = self.method == "auto" and not ctx.memory.get(self.name, {}).get("checked")
        return Cost(forward=calls + check, backward=calls + check, per_sample=B, vmapped=calls)

    def _choose(self, ctx, mem) -> str:
        if self.method != "auto":
            return self.method
        layers = [*getattr(ctx.f, "coupling", ()), *getattr(ctx.f, "stochastic", ())]
        if layers:
            mem["why"] = (f"{layers[0]}{M._more(layers)} couples the samples or draws random "
                          "numbers: microbatch estimator")
            return "microbatch"
        return "per_sample"

    def _measure(self, ctx):
        mem = ctx.state(self.name)
        if "method" not in mem:
            mem["method"] = self._choose(ctx, mem)
        if mem["method"] == "per_sample":
            out = self._per_sample(ctx, mem)
            if out is not None:
                return out
        return self._microbatch(ctx, mem)

    def _per_sample(self, ctx, mem) -> dict[str, Any] | None:
        if self.method == "per_sample":
            M.check_per_sample_supported(ctx.model)     # asked for: refuse, naming the layer
        try:
            r = M.gradient_noise(ctx.f, ctx.params_before, ctx.X, ctx.y,
                                 chunk_size=self.chunk_size)
        except M.UnsupportedLayerError as exc:
            if self.method != "auto":
                raise
            mem["method"] = "microbatch"
            mem["why"] = f"per-example gradients failed ({exc}): microbatch estimator"
            return None
        self.last_cost = r.cost
        if self.method == "auto" and not mem.get("checked"):
            mem["checked"] = True
            batch = M.loss_and_grad(ctx.f, ctx.params_before, ctx.X, ctx.y)
            self.last_cost = self.last_cost + batch.cost
            gap = _norm(_diff(r.mean_grad, batch.grad)) / max(_norm(batch.grad), 1e-30)
            if gap > 1e-3:
                mem["method"] = "microbatch"
                mem["why"] = (f"the mean of the per-example gradients differs from the batch "
                              f"gradient by {gap:.2g} (relative): a layer couples the samples; "
                              "microbatch estimator")
                return None
        out = {KEY.gradient_noise: r.sigma_sq, KEY.gradient_noise_batch: r.batch_mean_variance,
               KEY.gradient_noise_microbatch: 1.0}
        self.last_notes[KEY.gradient_noise_se] = "per-example estimator: no error bar recorded"
        return self._snr(out, r.grad_norm_sq, r.sigma_sq, r.batch_mean_variance)

    def _microbatch(self, ctx, mem) -> dict[str, Any]:
        B = M._leading_dim(ctx.X)
        m = min(self.microbatches, B // 2)       # b >= 2: BatchNorm needs two rows to normalize
        if m < 2:
            return self._none(f"a batch of {B} example(s) cannot be split into two or more "
                              "microbatches of at least 2")
        r = N.microbatch_gradient_noise(ctx.f, ctx.params_before, ctx.X, ctx.y, microbatches=m,
                                        draw=getattr(ctx.f, "draw", None))
        self.last_cost = self.last_cost + r.cost
        out = {KEY.gradient_noise: r.sigma_sq, KEY.gradient_noise_batch: r.sigma_sq / B,
               KEY.gradient_noise_se: r.standard_error,
               KEY.gradient_noise_microbatch: float(r.microbatch_size)}
        if mem.get("why") and not mem.get("said"):
            mem["said"] = True
            self.last_notes[KEY.gradient_noise_microbatch] = mem["why"]
        return self._snr(out, r.grad_norm_sq, r.sigma_sq, r.sigma_sq / B)

    def _snr(self, out, grad_norm_sq, sigma_sq, batch_var):
        if sigma_sq > 0:
            out[KEY.gradient_snr] = grad_norm_sq / batch_var
        else:
            self.last_notes[KEY.gradient_snr] = "no spread between the gradients (σ² = 0)"
        return out


# ---------------------------------------------------------------------------------------------
# Sharpness (Lanczos on HVPs) and Adam's preconditioned sharpness
# ---------------------------------------------------------------------------------------------

class _CurvatureProbe(Probe):
    needs = frozenset({Need.HVP})
    cost_is_bound = True
    default_every = 50

    def __init__(self, every: int | None = None, *, iters: int = 20, tol: float = 1e-3,
                 cold_every: int = 10, on: str = "batch", seed: int = 0):
        super().__init__(every)
        if not isinstance(iters, int) or iters < 1:
            raise InvalidValueError(f"probe {self.name!r}: iters={iters!r}; give a positive "
                                    "integer")
        if not isinstance(cold_every, int) or cold_every < 1:
            raise InvalidValueError(f"probe {self.name!r}: cold_every={cold_every!r}; give a "
                                    "positive integer")
        if on not in ("batch", "full"):
            raise InvalidValueError(f"probe {self.name!r}: on={on!r}; use 'batch' or 'full'")
        self.iters, self.tol, self.cold_every, self.on, self.seed = iters, tol, cold_every, on, seed

    @property
    def cost(self):
        return Cost(forward=1, backward=1 + self.iters, hvp=self.iters)

    def _data(self, ctx):
        if self.on == "full":
            data = _full_data(ctx)
            if data is None:
                raise InvalidValueError(f"probe {self.name!r} with on='full' needs full_X/full_y "
                                        "in the context")
            return data
        return ctx.X, ctx.y

    def _init(self, ctx) -> tuple[dict[str, Any], Any]:
        """(memory slot, warm-start vector or None): a cold start every ``cold_every`` runs."""
        mem = ctx.state(self.name)
        runs = mem.get("runs", 0)
        mem["runs"] = runs + 1
        init = None if runs % self.cold_every == 0 else mem.get("vector")
        mem["cold"] = init is None
        return mem, init


class SharpnessProbe(_CurvatureProbe):
    """λ_max of the Hessian at x_{t+1} (on the step's batch, or ``on="full"``) by Lanczos,
    warm-started from the previous run's eigenvector and cold-started every ``cold_every``-th
    run. A Rayleigh quotient: a lower estimate of λ_max there, hence of a global L.
    ``sharpness_2_over_lr`` is the edge-of-stability threshold 2/η of gradient descent,
    ``sharpness_lr_ratio`` = λ·η/2 (about 1 at the edge of stability)."""

    name = PROBE.sharpness
    estimates = "L by the top Hessian eigenvalue (Lanczos on HVPs) at checkpoints"

    def _measure(self, ctx):
        X, y = self._data(ctx)
        mem, init = self._init(ctx)
        r = M.top_hessian_eigenvalue(ctx.f, ctx.params_after, X, y, iters=self.iters,
                                     tol=self.tol, init=init, seed=self.seed + ctx.step)
        self.last_cost = r.cost
        mem["vector"] = r.vector
        out = {KEY.sharpness: r.value, KEY.sharpness_residual: r.residual,
               KEY.sharpness_n_hvp: r.n_hvp, KEY.sharpness_converged: float(r.converged),
               KEY.sharpness_cold_start: float(init is None)}
        if ctx.lr:
            out[KEY.sharpness_2_over_lr] = 2.0 / ctx.lr
            out[KEY.sharpness_lr_ratio] = r.value * ctx.lr / 2.0
        else:
            self._none("no learning rate in the context",
                       (KEY.sharpness_2_over_lr, KEY.sharpness_lr_ratio))
        return out


def _adam_like(opt: Any) -> bool:
    return isinstance(opt, (torch.optim.Adam, torch.optim.AdamW))


class AdamSharpnessProbe(_CurvatureProbe):
    """λ_max(P⁻¹H) for Adam's preconditioner after step t, at x_{t+1}, against Cohen et al.'s
    threshold (2+2β₁)/((1−β₁)η) (38/η at β₁ = 0.9). None with a note unless the optimizer is
    ``torch.optim.Adam`` or ``AdamW`` (AdamW's decoupled weight decay is outside the analysis
    of the threshold; the note says so)."""

    name = PROBE.adam_sharpness
    estimates = "Adam's preconditioned sharpness λ_max(P⁻¹H) vs its stability threshold"

    def cost_for(self, ctx):
        return self.cost if _adam_like(ctx.optimizer) else Cost()

    def _measure(self, ctx):
        opt = ctx.optimizer
        if not _adam_like(opt):
            kind = "no optimizer" if opt is None else type(opt).__name__
            return self._none(f"the optimizer is {kind}, not Adam/AdamW")
        if len(opt.param_groups) != 1:
            return self._none("the optimizer has several parameter groups; the preconditioned "
                              "sharpness needs one learning rate and one (β₁, β₂, ε)")
        group = opt.param_groups[0]
        lr = float(group["lr"]) if ctx.lr is None else float(ctx.lr)
        beta1, beta2 = (float(b) for b in group["betas"])
        state = M.adam_state_by_name(opt, ctx.model)
        X, y = self._data(ctx)
        mem, init = self._init(ctx)
        r = M.preconditioned_sharpness(ctx.f, ctx.params_after, X, y, state, lr=lr, beta1=beta1,
                                       beta2=beta2, eps=float(group["eps"]), iters=self.iters,
                                       tol=self.tol, init=init, seed=self.seed + ctx.step)
        self.last_cost = r.cost
        mem["vector"] = r.vector
        if isinstance(opt, torch.optim.AdamW) and group.get("weight_decay", 0):
            self.last_notes[KEY.adam_threshold] = ("AdamW's decoupled weight decay is not in the "
                                                 "threshold's derivation")
        return {KEY.adam_sharpness: r.value, KEY.adam_threshold: r.threshold,
                KEY.adam_sharpness_ratio: r.ratio, KEY.adam_sharpness_residual: r.residual,
                KEY.adam_sharpness_n_hvp: r.n_hvp, KEY.adam_sharpness_converged: float(r.converged)}


# ---------------------------------------------------------------------------------------------
# Registry, presets
# ---------------------------------------------------------------------------------------------

PROBES: Mapping[str, type[Probe]] = MappingProxyType({c.name: c for c in (
    LossProbe, GradNormProbe, UpdateNormProbe, DistanceFromStartProbe, LocalSmoothnessProbe,
    PLRatioProbe, GradientNoiseProbe, SharpnessProbe, AdamSharpnessProbe, FullBatchProbe)})

_FREE = (PROBE.loss, PROBE.grad_norm, PROBE.update_norm, PROBE.distance_from_start)

# Each entry is "name@every" (the schedule); make_probes builds fresh instances.
PRESETS: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "cheap": _FREE + ("full_batch@100",),
    "standard": _FREE + ("full_batch@50", "pl_ratio@50", "local_smoothness@10",
                         "gradient_noise@50", "sharpness@200"),
    "full": _FREE + ("full_batch@25", "pl_ratio@25", "local_smoothness@1", "gradient_noise@10",
                     "sharpness@50", "adam_sharpness@50"),
})


def _valid() -> str:
    return (f"presets: {', '.join(PRESETS)}; probes: {', '.join(PROBES)} "
            "(comma-separated, optionally name@every)")


def make_probes(preset_or_names: str) -> list[Probe]:
    """Probes from a preset name (``cheap``, ``standard``, ``full``) or a comma-separated list
    of probe names, each optionally with a schedule (``"loss,sharpness@25"``). Unknown names
    raise :class:`UnknownProbeError` listing the valid ones; a name given twice is refused."""
    if not isinstance(preset_or_names, str) or not preset_or_names.strip():
        raise UnknownProbeError(f"no probes given ({preset_or_names!r}); {_valid()}")
    text = preset_or_names.strip()
    specs = PRESETS[text] if text in PRESETS else tuple(s.strip() for s in text.split(","))
    probes: list[Probe] = []
    seen: set[str] = set()
    for spec in specs:
        name, sep, every_text = spec.partition("@")
        name = name.strip()
        if name not in PROBES:
            what = "empty probe name" if not name else f"unknown probe {name!r}"
            raise UnknownProbeError(f"{what} in {preset_or_names!r}; {_valid()}")
        every = None
        if sep:
            try:
                every = int(every_text.strip())
            except ValueError:
                every = -1
            if every < 1:
                raise UnknownProbeError(f"probe spec {spec!r}: the schedule after '@' must be a "
                                        "positive integer, e.g. sharpness@50")
        if name in seen:
            raise UnknownProbeError(f"probe {name!r} given twice in {preset_or_names!r}; give it "
                                    "once (with its schedule as name@every)")
        seen.add(name)
        probes.append(PROBES[name](every))
    return probes


def run_probes(probes: list[Probe], ctx: ProbeContext
               ) -> tuple[dict[str, float | None], Cost, dict[str, str]]:
    """Run the probes due at ``ctx.step``: (merged values, total extra cost, notes by key)."""
    values: dict[str, float | None] = {}
    notes: dict[str, str] = {}
    total = Cost()
    for p in probes:
        if not p.due(ctx.step):
            continue
        values.update(p.measure(ctx))
        notes.update(p.last_notes)
        total = total + p.last_cost
    return values, total, notes
