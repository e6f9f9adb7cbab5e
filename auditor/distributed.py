"""Audits on ``torch.distributed``: ``approx-audit run … --nproc N``.

The launcher (:func:`launch`, in the ``approx-audit`` process) writes the run's
:class:`~.request.AuditRequest` to a JSON file and starts ``python -m torch.distributed.run
--standalone --nproc-per-node N -m approx_audit.auditor.worker FILE``; nothing is simulated:
the ranks are processes and every exchange goes through ``torch.distributed`` (``gloo`` on
CPU, ``nccl`` on CUDA).

Each rank (:func:`serve` with :class:`DDPSetup`; the seed loop and the batch slicing are
shared with the decentralized methods) builds the same workload from the same seed (same
data, same initial weights; a checksum of both is all-gathered at the start and a mismatch stops the run),
wraps the model in ``DistributedDataParallel`` and trains on its share of every global batch:

* minibatches: every rank draws the SAME global index sequence from the sampling seed (the
  one-process :func:`~.run.train` draws) and takes its own contiguous slice of ``B / N``
  examples (``B % N == 0`` is required); the mean of the ranks' local means is the global
  mean, so the trajectory is the one-process trajectory with batch ``B``, to rounding;
* full batch: the data is split into ``N`` contiguous shards; with unequal shards each rank's
  loss is scaled by ``N · n_r / n`` so DDP's average is still the full-data gradient.

Probes run on every rank on the local batch (:class:`DistributedAuditor`); after each step
their values go through one ``all_reduce`` of one flat float64 vector. What is recorded:

``SAME_KEYS``       identical on every rank by construction (the parameters are synchronized,
                    the full-data checkpoints use the whole data on every rank): rank 0's value.
``grad_norm``, ``grad_inf_norm``, ``effective_lr``
                    of the averaged (global-batch) gradient ḡ that DDP leaves in ``p.grad``.
``LINEAR_KEYS``     linear in the batch (losses, convexity gaps and their terms): the
                    example-weighted mean over ranks, which is exactly the global-batch value.
``convexity_ratio`` recomputed from the reduced numerator and denominator.
``gradient_noise``  σ² on the global batch, pooled exactly from the ranks' local σ²_r and the
                    spread of their local mean gradients m_r around ḡ (Chan et al.):
                    ((Σ (n_r − 1) σ²_r) + Σ n_r ‖m_r − ḡ‖²) / (B − 1); ``gradient_noise_batch``
                    = σ²/B and ``gradient_snr`` follow — the one-process values, to rounding.
``local_smoothness``, ``convexity_gap_normalized``
                    of the global batch, exactly: each rank's gradient change on its batch,
                    weighted by its examples, rides in the same all-reduce (d + 1 more floats
                    at the steps the probe is scheduled), so the secant is
                    ‖Σ n_r Δg_r / B‖/‖Δx‖ — the one-process value, to rounding. (A mean of
                    the ranks' own secants would over-estimate it: by the triangle inequality
                    it can exceed L, so it would not be a lower estimate of L.)
any other key       (``sharpness*``, ``adam_sharpness*``): the mean over ranks of the
                    local-batch (B/N) estimates, listed in the start record's
                    ``distributed.rank_mean_keys``; never used as a lower estimate of L.

Full-data values (checkpoints ``full_loss``/``full_grad_norm``, the PL ratio, ``full_smoothness``,
the averaged iterates' losses) are sharded: rank r evaluates F and ∇F on its contiguous 1/N of
the full training set, weighted by its share, and one all-reduce sums them — F and ∇F at the
(synchronized) parameters, to rounding, at 1/N of the work per rank. Every rank joins that
all-reduce whenever a probe that needs it is scheduled (the schedule is the same on every rank,
so a probe that failed on one rank cannot desynchronize the collectives). After an error or a
Ctrl-C the final checkpoint is evaluated locally on the whole data (no collective).

Gradient noise from the ranks at no extra pass (keys of the pseudo-probe
``dist_gradient_noise``, every step, minibatch runs only): a DDP communication hook copies each
rank's local gradient m_r before the all-reduce; after backward every rank has ḡ, computes
‖m_r − ḡ‖² and that scalar rides in the same all-reduce. With S = Σ_r ‖m_r − ḡ‖²:
``dist_gradient_noise_local`` = S/(N − 1) (unbiased for the variance of a local-batch gradient),
``dist_gradient_noise_batch`` = S/(N(N − 1)) (variance of the global-batch gradient, comparable
to ``gradient_noise_batch``) and ``dist_gradient_noise`` = (B/N)·S/(N − 1) (per example,
comparable to ``gradient_noise``). The cost is one copy of the gradient in memory.

Rank 0 writes ``trace.jsonl`` (flushed per step) and ``results.json``; the other ranks write
nothing but, when they fail, ``.distributed/rank<r>.error.json``. A rank that raises ends the
run: the others fail in the next collective or are stopped by the launcher's agent (collective
timeout: ``APPROX_AUDIT_DIST_TIMEOUT`` seconds, default 60); the launcher then names the first
failed rank in one line, rewrites ``results.json`` from the trace (status ``error``, every
finished step kept) and the command exits 3.

Test hooks, read only by the worker: ``APPROX_AUDIT_TEST_CRASH_RANK`` and
``APPROX_AUDIT_TEST_CRASH_STEP`` make that rank raise at the start of that step;
``APPROX_AUDIT_TEST_GATHER=1`` all-gathers every rank's raw values and adds them to each step
record as ``rank_values`` (for the test that the reduction matches the gathered values).
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import re
import subprocess
import sys
import time
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..bounds.errors import ApproxAuditError, InvalidValueError
from .measure import Cost
from .observables import KEY, OBSERVABLES, PROBE, keys_of, keys_where
from .probes import Need, due_needs
from .run import Auditor

__all__ = ["DistributedAuditor", "DistributedError", "LINEAR_KEYS", "SAME_KEYS", "check_split",
           "DDPSetup", "RankSetup", "launch", "pooled_gradient_noise", "serve", "shard_bounds"]

ENV_CRASH_RANK = "APPROX_AUDIT_TEST_CRASH_RANK"
ENV_CRASH_STEP = "APPROX_AUDIT_TEST_CRASH_STEP"
ENV_GATHER = "APPROX_AUDIT_TEST_GATHER"
ENV_TIMEOUT = "APPROX_AUDIT_DIST_TIMEOUT"
STATE_DIR = ".distributed"

# how the ranks combine each key, from the observables table (``ranks``): identical on every
# rank (synchronized parameters, or the whole data on every rank); linear in the batch (the
# example-weighted mean over ranks is the global-batch value); computed here from global
# quantities (never averaged)
SAME_KEYS = frozenset(keys_where(ranks="same", origin="probe"))
LINEAR_KEYS = frozenset(keys_where(ranks="linear", origin="probe"))
_RECOMPUTED = frozenset(keys_where(ranks="recomputed", origin="probe"))
ENV_FULL_DATA = "APPROX_AUDIT_FULL_DATA"        # auto (default) | sharded | replicated
SHARD_MARGIN = 20.0   # auto: shard when a rank saves more than 20 small all-reduces' time
DIST_KEYS = keys_of(PROBE.dist_gradient_noise)


class DistributedError(ApproxAuditError):
    """A distributed run that cannot start or whose ranks disagree."""


# ---------------------------------------------------------------------------------------------
# Pure helpers (unit-tested without processes)
# ---------------------------------------------------------------------------------------------

OVERSUBSCRIBE = 8      # ranks per core beyond which --nproc is refused


def check_nproc(nproc: int, cores: int | None = None) -> str | None:
    """Refuse (one-line :class:`InvalidValueError`) an --nproc far above the machine's cores:
    64 ranks on 2 cores took minutes per step and would not stop in time. Returns a note to
    print when the ranks outnumber the cores, else None."""
    cores = cores or os.cpu_count() or 1
    if nproc > OVERSUBSCRIBE * cores:
        raise InvalidValueError(f"--nproc {nproc} on {cores} core(s): at most "
                                f"{OVERSUBSCRIBE * cores} ranks here (each rank is a process "
                                "training the model); use fewer")
    if nproc > cores:
        return (f"note: --nproc {nproc} ranks share {cores} core(s): each step waits for the "
                "slowest; expect it to be slow")
    return None


def check_split(batch_size: int | None, n: int | None, nproc: int) -> None:
    """Raise :class:`InvalidValueError` (one line) when the run cannot be split over ranks
    (``n=None``: check ``nproc`` alone)."""
    if isinstance(nproc, bool) or not isinstance(nproc, int) or nproc < 1:
        raise InvalidValueError(f"--nproc {nproc}: give a positive number of processes "
                                "(1 runs in this process)")
    if nproc == 1 or n is None:
        return
    if batch_size is not None and batch_size < n:
        if batch_size % nproc:
            raise InvalidValueError(f"--batch-size {batch_size} does not split into {nproc} equal "
                                    f"local batches; give a multiple of --nproc {nproc}")
    elif n < nproc:
        raise InvalidValueError(f"full batch: {n} examples cannot be sharded over {nproc} "
                                "processes; lower --nproc")


def full_data_mode() -> str:
    """``APPROX_AUDIT_FULL_DATA`` (auto, sharded or replicated; see
    :meth:`DistributedAuditor._sharding`), checked: anything else is a one-line error."""
    want = (os.environ.get(ENV_FULL_DATA) or "auto").strip().lower()
    if want not in ("auto", "sharded", "replicated"):
        raise InvalidValueError(f"{ENV_FULL_DATA}={want}: give auto, sharded or replicated")
    return want


def check_devices(device: str, nproc: int, available: int | None = None) -> None:
    """One CUDA device per rank under ``nccl`` (each rank pins ``cuda:LOCAL_RANK``): more ranks
    than devices is a one-line :class:`InvalidValueError` before anything is launched. A
    device index (``cuda:1``) is refused: the ranks choose their devices themselves."""
    if nproc <= 1 or not str(device).startswith("cuda"):
        return
    if str(device) != "cuda":
        raise InvalidValueError(f"--device {device} with --nproc {nproc}: give --device cuda "
                                "(rank r runs on cuda:r)")
    have = torch.cuda.device_count() if available is None else int(available)
    if nproc > have:
        raise InvalidValueError(f"--nproc {nproc} on CUDA needs {nproc} GPUs (one per rank, "
                                f"nccl); this machine has {have}. Lower --nproc, or use "
                                "--device cpu (gloo)")


def shard_bounds(n: int, rank: int, world: int) -> tuple[int, int]:
    """Contiguous shard [lo, hi) of rank ``rank``: sizes differ by at most one."""
    base, extra = divmod(n, world)
    lo = rank * base + min(rank, extra)
    return lo, lo + base + (1 if rank < extra else 0)


def pooled_gradient_noise(sizes, local_sigma_sq, spreads) -> float:
    """σ² of the union of the ranks' batches from each rank's size n_r, unbiased local σ²_r and
    ‖m_r − ḡ‖² (m_r its mean gradient, ḡ the size-weighted mean of the m_r)."""
    B = sum(sizes)
    m2 = sum((n - 1) * s for n, s in zip(sizes, local_sigma_sq))
    m2 += sum(n * d for n, d in zip(sizes, spreads))
    return m2 / (B - 1)


def dist_noise(spread_sum: float, world: int, local_batch: int) -> dict[str, float]:
    """The ``dist_gradient_noise*`` keys from S = Σ_r ‖m_r − ḡ‖² of equal local batches."""
    local = spread_sum / (world - 1)
    return {KEY.dist_gradient_noise: local * local_batch, KEY.dist_gradient_noise_local: local,
            KEY.dist_gradient_noise_batch: local / world}


_DIST_PROBE = {
    "name": PROBE.dist_gradient_noise,
    "estimates": ("gradient variance from the spread of the ranks' local minibatch gradients "
                  "around their average (no extra pass): per example, per local batch, per "
                  "global batch"),
    "direction": "unbiased",
    "key_directions": {k: OBSERVABLES[k].direction for k in DIST_KEYS},
    "every": 1, "keys": list(DIST_KEYS), "cost": Cost().as_dict(), "cost_is_bound": False,
    "free": True}


# ---------------------------------------------------------------------------------------------
# The auditor of one rank
# ---------------------------------------------------------------------------------------------

class _LocalGrads:
    """State of the DDP communication hook: each parameter's local gradient, copied before
    the bucket is averaged."""

    def __init__(self) -> None:
        self.grads: dict[int, Tensor] = {}


def _capture_then_allreduce(state: _LocalGrads, bucket):
    from torch.distributed.algorithms.ddp_comm_hooks import default_hooks

    for p, g in zip(bucket.parameters(), bucket.gradients()):
        state.grads[id(p)] = g.detach().clone()
    return default_hooks.allreduce_hook(None, bucket)   # DDP's own averaging, unchanged


class CollectiveAuditor(Auditor):
    """An auditor whose ranks meet in collectives: after an error or a Ctrl-C another rank may
    be gone, so ``close`` makes no collective any more (``_collectives``)."""

    _collectives = True
    _repeat_check = False
    _defer_init = False

    def close(self, status: str | None = None, message: str | None = None) -> dict[str, Any]:
        if status in ("error", "interrupted"):
            self._collectives = False
        return super().close(status, message)


class DistributedAuditor(CollectiveAuditor):
    """The :class:`~.run.Auditor` of one rank: probes on the local batch, values all-reduced
    after every step (see the module docstring for which key is combined how). Only the
    auditor given ``out`` writes a trace (rank 0's)."""

    def __init__(self, model, optimizer, *, rank: int, world: int, local_grads: _LocalGrads,
                 global_batch: int, minibatch: bool, loss_scale: float = 1.0,
                 gather: bool = False, **kwargs):
        self.rank, self.world = rank, world
        self._local = local_grads
        self.global_batch, self.minibatch = int(global_batch), bool(minibatch)
        self.loss_scale = float(loss_scale)
        self.gather = bool(gather)
        self._gbar: Tensor | None = None
        self._full_examples = 0         # examples this rank evaluated for full-data values
        self._full_mode: str | None = None          # sharded | replicated, decided once
        self._full_timing: dict[str, Any] = {}
        super().__init__(model, optimizer, **kwargs)
        keys: set[str] = set()
        for p in self.probes:
            keys.update(p.keys)
        self._keys = sorted(keys)

    # the trace: world size in the start record, the global batch in step records
    def _emit(self, record: dict[str, Any]) -> None:
        kind = record.get("record")
        if kind == "start":
            record = dict(record)
            record["world_size"] = self.world
            record["probes"] = list(record["probes"]) + [dict(_DIST_PROBE)]
            record["distributed"] = {
                "world_size": self.world, "backend": _backend_name(),
                "same_keys": sorted(SAME_KEYS), "linear_keys": sorted(LINEAR_KEYS),
                "recomputed_keys": sorted(_RECOMPUTED),
                "rank_mean_keys": sorted(k for k in self._keys_of_probes()
                                         if k not in SAME_KEYS | LINEAR_KEYS | _RECOMPUTED),
                "costs": "the end record's costs are rank 0's passes (on B/N examples); "
                         "train_examples counts the global batch",
                "full_data": "F and its gradient on the full training set (checkpoints, "
                             "averaged iterates): sharded (each rank evaluates its contiguous "
                             "1/N, one all-reduce sums them) or replicated (every rank the "
                             "whole data), decided at the first evaluation "
                             f"({ENV_FULL_DATA}=auto|sharded|replicated); the end record's "
                             "costs.full_data says which, with the timings, and "
                             "full_data_examples_rank0 counts rank 0's examples"}
        elif kind == "step":
            record = {**record, "batch_size": self.global_batch}
        elif kind == "end":
            costs = dict(record.get("costs") or {})
            costs["train_examples"] = self.costs.train_steps * self.global_batch
            costs["world_size"] = self.world
            costs["full_data_examples_rank0"] = self._full_examples
            costs["full_data"] = {"mode": self._full_mode, **self._full_timing}
            record = {**record, "costs": costs}
        super()._emit(record)

    def _keys_of_probes(self) -> set[str]:
        return {k for p in self.probes for k in p.keys}

    # ---- the full-data objective, sharded: rank r evaluates its contiguous shard of the full
    # training set and one all-reduce sums the shard-weighted values (the parameters are the
    # same on every rank, so this is F and ∇F at x, to rounding, at 1/N of the work)
    def _sharding(self) -> bool:
        """Shard the full-data values? Decided once, at the first full-data evaluation, the
        same way on every rank: ``APPROX_AUDIT_FULL_DATA=sharded|replicated`` forces it;
        ``auto`` (the default) times, on every rank, one full-data F and ∇F on the whole data
        and one small all-reduce, takes the maxima over ranks (one all-reduce, so the decision
        is identical everywhere), and shards when the work a rank would save per evaluation,
        (1 − 1/N)·t_full, exceeds SHARD_MARGIN collectives. On small data a collective in the
        middle of a step costs more than it saves (benchmarks/distributed_full_data.py)."""
        if not self._collectives or self.full_X is None or _rows_of(self.full_X) < self.world:
            return False
        return self._full_mode == "sharded"

    def _decide_full_mode(self, params) -> Any:
        """The first full-data evaluation: measure and decide (see :meth:`_sharding`); returns
        its (replicated) result when one was computed, else None."""
        import torch.distributed as dist
        from . import measure as M

        want = full_data_mode()
        if want != "auto" or self.full_X is None or _rows_of(self.full_X) < self.world:
            self._full_mode = "sharded" if want == "sharded" else "replicated"
            return None
        t0 = time.perf_counter()
        r = M.loss_and_grad(self.f, params, self.full_X, self.full_y)
        t_full = time.perf_counter() - t0
        self._full_examples += _rows_of(self.full_X)
        ping = torch.zeros(1, dtype=torch.float64).to(_collective_device())
        laps = []
        for _ in range(3):
            t0 = time.perf_counter()
            dist.all_reduce(ping, op=dist.ReduceOp.SUM)
            laps.append(time.perf_counter() - t0)
        t_coll = sorted(laps)[1]
        both = torch.tensor([t_full, t_coll], dtype=torch.float64).to(_collective_device())
        dist.all_reduce(both, op=dist.ReduceOp.MAX)
        t_full, t_coll = (float(v) for v in both.cpu())
        saved = (1.0 - 1.0 / self.world) * t_full
        self._full_mode = "sharded" if saved > SHARD_MARGIN * t_coll else "replicated"
        self._full_timing = {"full_pass_ms": 1e3 * t_full, "collective_ms": 1e3 * t_coll,
                             "rule": f"shard when (1 - 1/N) t_full > {SHARD_MARGIN:g} "
                                     "t_collective (maxima over ranks, first evaluation)"}
        return r

    def _shard(self):
        n = _rows_of(self.full_X)
        lo, hi = shard_bounds(n, self.rank, self.world)
        self._full_examples += hi - lo
        return self.full_X[lo:hi], self.full_y[lo:hi], (hi - lo) / n

    def _replicated(self, params) -> tuple[bool, Any]:
        """(evaluate the whole data here?, the first evaluation's result when deciding the
        mode computed one); counts the examples of a whole-data evaluation."""
        if self._full_mode is None and self._collectives:
            first = self._decide_full_mode(params)
            if first is not None:
                return True, first
        if self._sharding():
            return False, None
        if self.full_X is not None:
            self._full_examples += _rows_of(self.full_X)
        return True, None

    def _full_loss_and_grad(self, params):
        whole, first = self._replicated(params)
        if whole:
            return first if first is not None else super()._full_loss_and_grad(params)
        import torch.distributed as dist
        from . import measure as M

        X, y, w = self._shard()
        r = M.loss_and_grad(self.f, params, X, y)
        names = list(r.grad)
        flat = torch.cat([torch.tensor([r.loss], dtype=torch.float64)]
                         + [r.grad[k].detach().reshape(-1).to("cpu", torch.float64)
                            for k in names]) * w
        flat = flat.to(_collective_device())
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        flat = flat.cpu()
        grad, i = {}, 1
        for k in names:
            g = r.grad[k]
            grad[k] = flat[i:i + g.numel()].view(g.shape).to(g.device, g.dtype)
            i += g.numel()
        gsq = float(flat[1:].pow(2).sum())
        return M.LossAndGrad(loss=float(flat[0]), grad=grad, grad_norm_sq=gsq, cost=r.cost)

    def _full_loss(self, params) -> float:
        whole, first = self._replicated(params)
        if whole:
            return first.loss if first is not None else super()._full_loss(params)
        import torch.distributed as dist

        X, y, w = self._shard()
        with torch.no_grad():
            v = torch.tensor([float(self.f(params, X, y)) * w], dtype=torch.float64)
        v = v.to(_collective_device())
        dist.all_reduce(v, op=dist.ReduceOp.SUM)
        return float(v.cpu()[0])

    def _prefill(self, ctx) -> None:
        """The full-data F and ∇F at x_{t+1}, sharded, whenever a due probe needs it
        (:attr:`~.probes.Need.FULL_AT_AFTER`) (the schedule is the same on every rank, so every rank joins the all-reduce,
        even one whose probe has failed)."""
        if self.full_X is None or not self._collectives:
            return
        due = [p.name for p in self.probes
               if Need.FULL_AT_AFTER in p.needs and p.due(ctx.step)]
        if due:
            r = self._full_loss_and_grad(ctx.params_after)
            ctx.shared.full_at_after = r
            self.costs.add_probe(due[0], r.cost)     # the probes then find it shared

    def _flat_grad(self) -> Tensor:
        """The LOCAL gradient m_r (captured before DDP's average), so that every probe of this
        rank is a consistent local-batch measurement; ḡ is kept apart in ``_gbar``."""
        if not self._plist:
            return torch.zeros(0)
        parts = []
        for p in self._plist:
            g = self._local.grads.get(id(p))
            parts.append((torch.zeros_like(p) if g is None else g.detach()).reshape(-1))
        flat = torch.cat(parts)
        return flat / self.loss_scale if self.loss_scale != 1.0 else flat

    def _before_step(self, optimizer, args, kwargs) -> None:
        super()._before_step(optimizer, args, kwargs)
        if self._before is not None:
            self._gbar = super()._flat_grad()       # p.grad: DDP's averaged gradient

    def _combine_step_values(self, values, notes, ctx):
        """This rank's step values → the global ones, in one all-reduce of one flat vector
        (:meth:`_pack`); then each recomputed quantity from the global sums."""
        import torch.distributed as dist

        gbar = self._gbar
        m_r = ctx.flat_grad
        n_r = float(_rows_of(ctx.X))
        spread = float((m_r - gbar).pow(2).sum()) if gbar is not None and m_r is not None else 0.0
        vec, j, dim = self._pack(values, ctx, n_r, spread)
        vec = vec.to(_collective_device())
        dist.all_reduce(vec, op=dist.ReduceOp.SUM)
        vec = vec.cpu()
        notes = dict(notes)
        out = self._weighted_means(values, vec)
        if gbar is not None:
            self._global_gradient(values, out, notes, gbar)
        if dim and KEY.local_smoothness in values:
            self._global_smoothness(out, notes, ctx, vec[j + 4:j + 4 + dim],
                                    float(vec[j + 4 + dim]))
        if KEY.convexity_ratio in values:
            num, den = out.get(KEY.convexity_numerator), out.get(KEY.convexity_denominator)
            out[KEY.convexity_ratio] = num / den if (num is not None and den) else None
        if KEY.gradient_noise in values:
            self._global_noise(out, notes, gbar, float(vec[j]) + float(vec[j + 2]),
                               int(vec[j + 1]))
        if self.minibatch:
            out.update(dist_noise(float(vec[j + 3]), self.world, self.global_batch // self.world))
        else:
            for k in DIST_KEYS:
                out[k] = None
                notes[k] = "full batch: fixed shards, no sampling noise to estimate"
        if self.gather:
            raw = {"values": dict(values), "n": n_r, "spread": spread}
            gathered: list[Any] = [None] * self.world
            dist.all_gather_object(gathered, raw)
            out[KEY.rank_values] = gathered
        return out, notes

    def _pack(self, values, ctx, n_r: float, spread: float) -> tuple[Tensor, int, int]:
        """(the vector to all-reduce, where its tail starts, the secant's dimension): per key
        (n_r·value, n_r); then (n_r − 1)·σ², a count, n_r·spread, spread; then, when the
        a due probe needs the batch gradient at x_{t+1}, n_r·Δg_r and n_r (the GLOBAL batch's secant; the
        schedule is the same on every rank; a rank whose probe failed sends zeros and a zero
        count)."""
        keys = self._keys
        ls_due = Need.BATCH_GRAD_AFTER in due_needs(self.probes, ctx.step)
        grads = ctx.shared.batch_grads if ls_due else None
        delta = None if grads is None else torch.cat(
            [(grads[2][k] - grads[1][k]).reshape(-1) for k in grads[0]])
        dim = int(ctx.flat_before.numel()) if ls_due and ctx.flat_before is not None else 0
        vec = torch.zeros(2 * len(keys) + 4 + (dim + 1 if dim else 0), dtype=torch.float64)
        for i, k in enumerate(keys):
            v = values.get(k)
            if v is not None:
                vec[2 * i] = n_r * float(v)
                vec[2 * i + 1] = n_r
        sigma = values.get(KEY.gradient_noise)
        j = 2 * len(keys)
        if sigma is not None:
            vec[j] = (n_r - 1.0) * float(sigma)
            vec[j + 1] = 1.0
        vec[j + 2] = n_r * spread
        vec[j + 3] = spread
        if dim and delta is not None and delta.numel() == dim:
            vec[j + 4:j + 4 + dim] = n_r * delta.detach().to("cpu", torch.float64)
            vec[j + 4 + dim] = n_r
        return vec, j, dim

    def _weighted_means(self, values, vec: Tensor) -> dict[str, Any]:
        """Each due key: the same on every rank (kept) or the row-weighted mean over ranks."""
        out: dict[str, Any] = {}
        for i, k in enumerate(self._keys):
            if k not in values:
                continue                        # not due at this step (the same on every rank)
            if k in SAME_KEYS:
                out[k] = values[k]
            elif vec[2 * i + 1] > 0:
                out[k] = float(vec[2 * i] / vec[2 * i + 1])
            else:
                out[k] = None
        return out

    @staticmethod
    def _global_gradient(values, out, notes, gbar: Tensor) -> None:
        """The gradient norms and the effective lr of the averaged (global) gradient."""
        gn = math.sqrt(float(torch.dot(gbar, gbar))) if gbar.numel() else 0.0
        if KEY.grad_norm in values:
            out[KEY.grad_norm] = gn
            out[KEY.grad_inf_norm] = float(gbar.abs().max()) if gbar.numel() else 0.0
            raw = values.get(KEY.grad_norm_raw)     # p.grad at observe(): DDP's averaged one
            if raw is not None:
                out[KEY.grad_clipped] = 1.0 if gn < raw * (1.0 - 1e-6) else 0.0
        if KEY.effective_lr in values:
            u = out.get(KEY.update_norm)
            out[KEY.effective_lr] = u / gn if (u is not None and gn) else None
            if out[KEY.effective_lr] is not None:
                notes.pop(KEY.effective_lr, None)

    def _global_smoothness(self, out, notes, ctx, summed_dg: Tensor, counted: float) -> None:
        """‖Δḡ‖/‖Δx‖ of the global batch when every rank's secant arrived, else none."""
        step = ctx.flat_after.double() - ctx.flat_before.double()
        step_sq = float(step.pow(2).sum())
        if counted == self.global_batch and step_sq > 0:
            dg = summed_dg / counted
            out[KEY.local_smoothness] = math.sqrt(float(dg.pow(2).sum()) / step_sq)
            gap = out.get(KEY.convexity_gap)
            if gap is not None and out[KEY.local_smoothness] > 0:
                out[KEY.convexity_gap_normalized] = gap / (0.5 * out[KEY.local_smoothness]
                                                         * step_sq)
        else:
            for k in (KEY.local_smoothness, KEY.convexity_gap_normalized):
                out[k] = None
                notes[k] = "not measured on every rank at this step"

    def _global_noise(self, out, notes, gbar, pooled: float, counted: int) -> None:
        """σ² of the global batch pooled from the ranks' within-batch sums and the spread of
        their means (every rank must have measured)."""
        if counted == self.world and self.global_batch > 1:
            sigma_sq = pooled / (self.global_batch - 1)
            out[KEY.gradient_noise] = sigma_sq
            out[KEY.gradient_noise_batch] = sigma_sq / self.global_batch
            gn2 = float(torch.dot(gbar, gbar)) if gbar is not None else None
            out[KEY.gradient_snr] = (gn2 / (sigma_sq / self.global_batch)
                                   if sigma_sq > 0 and gn2 is not None else None)
        else:
            for k in (KEY.gradient_noise, KEY.gradient_noise_batch, KEY.gradient_snr):
                out[k] = None
                notes[k] = "not measured on every rank at this step"


def _rows_of(X: Any) -> int:
    from .run import _rows
    return _rows(X)


def _backend_name() -> str | None:
    import torch.distributed as dist
    return dist.get_backend() if dist.is_initialized() else None


def _collective_device() -> torch.device:
    import torch.distributed as dist
    if dist.is_initialized() and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


# ---------------------------------------------------------------------------------------------
# The worker: one rank's training loop and audit
# ---------------------------------------------------------------------------------------------

def _check_same_start(model, workload, rank: int, world: int) -> None:
    """All-gather a checksum of the initial parameters and of the data; stop on a mismatch."""
    import torch.distributed as dist

    flat = torch.cat([p.detach().reshape(-1).double().cpu() for p in model.parameters()]
                     or [torch.zeros(0, dtype=torch.float64)])
    X = workload.X.detach().double().cpu().reshape(-1)
    y = workload.y.detach().double().cpu().reshape(-1)
    mine = torch.stack([flat.sum(), flat.pow(2).sum(), X.sum(), X.pow(2).sum(), y.sum(),
                        torch.tensor(float(flat.numel() + X.numel()), dtype=torch.float64)])
    out = [torch.zeros_like(mine).to(_collective_device()) for _ in range(world)]
    dist.all_gather(out, mine.to(_collective_device()))
    ref = out[0].cpu()
    for r, t in enumerate(out):
        if not torch.equal(t.cpu(), ref):
            what = "initial parameters" if not torch.equal(t.cpu()[:2], ref[:2]) else "data"
            raise DistributedError(f"rank {r}'s {what} differ from rank 0's (checksums "
                                   f"{t.cpu().tolist()} vs {ref.tolist()}); the workload is not "
                                   "deterministic across processes")


def _crash_step(rank: int) -> int | None:
    r, s = os.environ.get(ENV_CRASH_RANK), os.environ.get(ENV_CRASH_STEP)
    if r is None or s is None:
        return None
    return int(s) if int(r) == rank else None


def rank_batches(workload, optimizer, *, steps: int, batch_size: int | None,
                 sampling_seed: int, lr_at, rank: int, world: int, progress: dict[str, Any]):
    """``(t, X_b, y_b)`` for each step of one rank: the same global index draws as the
    one-process :func:`~.run.train` and this rank's contiguous slice of them (full batch: its
    shard, every step); the schedule's lr set before the step. Shared by every rank setup."""
    X, y, n = workload.X, workload.y, workload.n
    full = batch_size is None or batch_size >= n
    gen = torch.Generator(device="cpu").manual_seed(int(sampling_seed))
    crash = _crash_step(rank)
    if full:
        lo, hi = shard_bounds(n, rank, world)
        Xb, yb = X[lo:hi], y[lo:hi]
    else:
        b = batch_size // world
    for t in range(steps):
        progress["step"] = t
        if crash is not None and t == crash:
            raise RuntimeError(f"injected crash at step {t} ({ENV_CRASH_RANK}/{ENV_CRASH_STEP} "
                               "test hook)")
        if lr_at is not None:
            lr = lr_at(t)
            for group in optimizer.param_groups:
                group["lr"] = lr
        if not full:
            idx = torch.randint(0, n, (batch_size,), generator=gen)[rank * b:(rank + 1) * b]
            idx = idx.to(X.device)
            Xb, yb = X[idx], y[idx]
        yield t, Xb, yb


def global_loss(loss: Tensor, weight: float) -> float:
    """The loss summed over ranks with ``weight`` each (all_reduce): every rank decides
    divergence alike."""
    import torch.distributed as dist

    total = (loss.detach().double() * weight).reshape(1).to(_collective_device())
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return float(total.cpu()[0])


def train_rank(workload, ddp, model, optimizer, auditor: DistributedAuditor, *, steps: int,
               batch_size: int | None, sampling_seed: int, lr_at, rank: int, world: int,
               progress: dict[str, Any]) -> str:
    """:func:`~.run.train` for one rank: the same global index draws, this rank's slice."""
    n = workload.n
    if batch_size is None or batch_size >= n:
        lo, hi = shard_bounds(n, rank, world)
        weight = (hi - lo) / n                   # this shard's share of the full mean
    else:
        weight = 1.0 / world
    for _, Xb, yb in rank_batches(workload, optimizer, steps=steps, batch_size=batch_size,
                                  sampling_seed=sampling_seed, lr_at=lr_at, rank=rank,
                                  world=world, progress=progress):
        optimizer.zero_grad(set_to_none=True)
        loss = workload.criterion(ddp(Xb), yb) + workload.regularization(
            dict(model.named_parameters()))
        (loss * auditor.loss_scale if auditor.loss_scale != 1.0 else loss).backward()
        g = global_loss(loss, weight)
        if not auditor.observe(Xb, yb, loss if math.isfinite(g) else g):
            return "diverged"
        optimizer.step()
        if auditor.diverged:
            return "diverged"
    return "completed"


def _init_process_group(device: str) -> tuple[int, int, int, str]:
    import torch.distributed as dist

    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.set_device(local_rank)
    backend = "nccl" if cuda else "gloo"
    timeout = _dt.timedelta(seconds=float(os.environ.get(ENV_TIMEOUT, "60")))
    dist.init_process_group(backend=backend, timeout=timeout)
    return rank, world, local_rank, backend


class RankSetup:
    """What differs between the multi-process methods, around one shared rank skeleton
    (:func:`serve`): the optimizer record the verdicts see, and per seed the wrapped model,
    its optimizer, the auditor and the training loop. Subclasses: :class:`DDPSetup` here,
    the decentralized methods' in :mod:`.decentralized`."""

    def __init__(self, request, workload, *, rank: int, world: int, local_rank: int,
                 full_batch: bool) -> None:
        self.request, self.workload = request, workload
        self.spec = request.optimizer
        self.rank, self.world, self.local_rank = rank, world, local_rank
        self.full_batch = full_batch
        # the last seed's model, auditor and loop: kept until serve() has destroyed the process
        # group (freed between the seed loop and the barrier, a rank aborted at exit; earlier
        # seeds' are replaced as the old per-method worker's locals were)
        self.live: tuple[Any, ...] = ()

    def spec_dict(self) -> dict[str, Any]:
        return self.spec.to_dict() | {"symbol_values": self.spec.symbol_values}

    def loss_scale(self) -> float:
        """The factor on a rank's loss so that the mean over ranks of its gradients is the
        full-data gradient (shards of unequal size under full batch)."""
        if not self.full_batch:
            return 1.0
        lo, hi = shard_bounds(self.workload.n, self.rank, self.world)
        return self.world * (hi - lo) / self.workload.n

    def train_kwargs(self, config, run: int, progress: dict[str, Any]) -> dict[str, Any]:
        return {"steps": config.steps, "batch_size": None if self.full_batch else
                config.batch_size, "sampling_seed": config.seed + run, "lr_at": self.spec.lr_at,
                "rank": self.rank, "world": self.world, "progress": progress}

    def start(self, model, run: int, *, config, out: Path | None, start_info: dict[str, Any],
              selected) -> tuple[Auditor, Any]:
        """(the auditor, a callable that trains with ``**train_kwargs`` and returns the
        status) for seed ``run`` from the fresh ``model``."""
        raise NotImplementedError


class DDPSetup(RankSetup):
    """``--method ddp``: DistributedDataParallel, its all-reduce hook capturing each rank's
    local gradient first (the per-rank probes)."""

    def start(self, model, run, *, config, out, start_info, selected):
        local = _LocalGrads()
        cuda = self.request.device.startswith("cuda")
        ddp = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[self.local_rank] if cuda else None)
        ddp.register_comm_hook(local, _capture_then_allreduce)
        opt = self.spec.build(model.parameters())
        n = self.workload.n
        auditor = DistributedAuditor(
            model, opt, rank=self.rank, world=self.world, local_grads=local,
            global_batch=n if self.full_batch else config.batch_size,
            minibatch=not self.full_batch, loss_scale=self.loss_scale(),
            gather=os.environ.get(ENV_GATHER) == "1", workload=self.workload,
            probes=config.probes, out=out, run=run, seed=config.seed + run,
            full_batch=self.full_batch,
            averages=any(b.quantity.value == "averaged_iterate_gap" for b in selected),
            start_info=start_info, trusted_gradients=True,
            probe_mode=config.probe_mode)

        def train(**kw):
            return train_rank(self.workload, ddp, model, opt, auditor, **kw)
        return auditor, train


def serve(request, setup_cls: type[RankSetup]) -> int:
    """One rank of ``approx-audit run --nproc N`` (``request``: the launcher's
    :class:`~.request.AuditRequest`): the workload built on this rank's device, one run per
    seed with ``setup_cls``'s model, optimizer, auditor and loop; rank 0 writes results.json.
    Returns the process exit status (0 when the audit ran, whatever its verdicts)."""
    import torch.distributed as dist

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1") or 1))
    out = Path(request.out)
    progress: dict[str, Any] = {"step": None, "run": None}
    rank = int(os.environ.get("RANK", "0"))
    try:
        device = request.device
        rank, world, local_rank, _ = _init_process_group(device)
        w = request.build_workload(f"cuda:{local_rank}" if device.startswith("cuda") else device)
        config = request.audit_config(w, nproc=world)
        full_batch = config.batch_size is None or config.batch_size >= w.n
        check_split(config.batch_size, w.n, world)
        setup = setup_cls(request, w, rank=rank, world=world, local_rank=local_rank,
                          full_batch=full_batch)
        _serve_seeds(config, setup, out, rank, world, progress)
        dist.barrier()
        dist.destroy_process_group()
        return 0
    except BaseException as exc:  # noqa: BLE001 - the launcher names the first failed rank
        _write_error(out, rank, progress, exc)
        raise


def _serve_seeds(config, setup: RankSetup, out: Path, rank: int, world: int,
                 progress: dict[str, Any]) -> None:
    """The seed loop of :func:`serve`; a failed run stops it, is recorded (results.json on
    rank 0 included) and re-raised."""
    from ..bounds import catalogue as _catalogue
    from .audit import finish_results, run_start_info
    from .judge import select_bounds
    from .results import write_json_atomic

    spec_dict = setup.spec_dict()
    wanted = None if config.bounds is None else list(config.bounds)
    selected = select_bounds(_catalogue, spec_dict, setup.full_batch, wanted)  # unknown: error
    records: list[dict[str, Any]] = []
    status, message = "completed", None
    started = time.time()
    failure: BaseException | None = None
    for i in range(config.seeds):
        progress["run"] = i
        model = setup.workload.fresh_model()
        _check_same_start(model, setup.workload, rank, world)
        auditor = None
        try:
            auditor, train = setup.start(
                model, i, config=config, out=out if rank == 0 else None, selected=selected,
                start_info=run_start_info(config, spec_dict, setup.full_batch))
            setup.live = (model, auditor, train)     # freed after the group is destroyed
            st = train(**setup.train_kwargs(config, i, progress))
            auditor.close(st)
            if st == "diverged":
                status, message = "diverged", next(
                    (r["message"] for r in auditor.records if r["record"] == "diverged"), None)
        except BaseException as exc:  # noqa: BLE001 - recorded, results written, re-raised
            status, message = failure_status(exc, rank, i, progress)
            if auditor is not None:
                auditor.close(status, message)
                records.extend(auditor.records)
            failure = exc
            break
        records.extend(auditor.records)
    if rank == 0:
        _, results = finish_results(config, spec_dict, records, status, message, started,
                                    config.device)
        write_json_atomic(out / "results.json", results)
    if failure is not None:
        raise failure


def failure_status(exc: BaseException, rank: int, run: int,
                   progress: Mapping[str, Any]) -> tuple[str, str]:
    """(status, message) a rank records when its loop raises: ``interrupted`` for Ctrl-C
    (the launcher's SIGINT), ``error`` otherwise."""
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted", (f"interrupted by the user at step {progress.get('step')} (rank "
                               f"{rank}, run {run})")
    return "error", f"rank {rank}, run {run} failed: {_one_line(exc)}"


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _write_error(out: Path, rank: int, progress: Mapping[str, Any], exc: BaseException) -> None:
    try:
        d = out / STATE_DIR
        d.mkdir(parents=True, exist_ok=True)
        (d / f"rank{rank}.error.json").write_text(json.dumps({
            "rank": rank, "run": progress.get("run"), "step": progress.get("step"),
            "error": _one_line(exc), "time": time.time(),
            "traceback": traceback.format_exception(type(exc), exc, exc.__traceback__)}),
            encoding="utf-8")
    except OSError:
        pass


# ---------------------------------------------------------------------------------------------
# The launcher (in the approx-audit process)
# ---------------------------------------------------------------------------------------------

# errors that are the consequence of another rank's failure, not a cause
_SECONDARY = ("connection closed", "connection reset", "broken pipe", "timed out", "timeout",
              "gloo", "nccl", "socket", "peer", "signal")


_ROOT_CAUSE = re.compile(r"rank\s*:\s*(\d+)\s*\(local_rank[^)]*\)\s*\n\s*exitcode\s*:\s*"
                         r"(-?\d+)")


def _killed_rank(log: Path | None) -> dict[str, Any] | None:
    """The rank torch.distributed.run names as the root cause when it died by a signal (it
    could write no error of its own): from the agent's failure summary in the launch log."""
    if log is None:
        return None
    try:
        text = log.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    for rank, code in _ROOT_CAUSE.findall(text):
        if int(code) < 0:
            return {"rank": int(rank), "step": None, "run": None,
                    "error": f"killed by signal {-int(code)}"}
    return None


def _first_failure(state: Path, log: Path | None = None) -> dict[str, Any] | None:
    """The failure to blame: a rank's own error that is not a consequence of another's (a
    connection reset by a dead peer is secondary), else the rank that was killed, else the
    earliest error."""
    errs = []
    for p in sorted(state.glob("rank*.error.json")):
        try:
            errs.append(json.loads(p.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            continue
    primary = [e for e in errs if not any(s in e.get("error", "").lower() for s in _SECONDARY)]
    if primary:
        return min(primary, key=lambda e: e.get("time") or 0.0)
    killed = _killed_rank(log)
    if killed is not None:
        return killed
    return min(errs, key=lambda e: e.get("time") or 0.0) if errs else None


STOP_GRACE_S = 60.0        # after a Ctrl-C: time for the ranks to close their traces


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _stop_group(proc: subprocess.Popen) -> int:
    """SIGINT to the launcher's agent and every rank; they close their traces and rank 0
    writes results.json. A second Ctrl-C, or no exit within STOP_GRACE_S, kills the group."""
    import signal

    _signal_group(proc, signal.SIGINT)
    try:
        return proc.wait(timeout=STOP_GRACE_S)
    except (subprocess.TimeoutExpired, KeyboardInterrupt):
        _signal_group(proc, signal.SIGKILL)
        return proc.wait()


class _sigterm_as_interrupt:
    """While the ranks run, SIGTERM to the launcher stops them like a Ctrl-C (it would
    otherwise leave them running in their own process group)."""

    def __enter__(self):
        import signal
        import threading

        self._old = None
        if threading.current_thread() is threading.main_thread():
            def handler(signum, frame):
                raise KeyboardInterrupt
            self._old = signal.signal(signal.SIGTERM, handler)
        return self

    def __exit__(self, *exc):
        import signal

        if self._old is not None:
            signal.signal(signal.SIGTERM, self._old)
        return False


def launch(request, nproc: int) -> tuple[dict[str, Any] | None, str | None]:
    """Run the :class:`~.request.AuditRequest` over ``nproc`` processes; returns (results,
    one-line error or None).

    ``results.json`` exists afterwards whenever the trace has a start record: written by rank 0,
    or rebuilt from the trace (status ``error`` or ``interrupted``) when a rank failed."""
    from .results import results_from_trace, write_json_atomic

    out = Path(request.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    state = out / STATE_DIR
    state.mkdir(exist_ok=True)
    for p in [out / "trace.jsonl", out / "results.json", *state.glob("rank*.error.json")]:
        if p.exists():
            p.unlink()                # a new audit starts a new trace in this folder
    cfg = state / "config.json"
    cfg.write_text(json.dumps({**request.to_dict(), "out": str(out)}, indent=1),
                   encoding="utf-8")
    log = state / "launch.log"
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    env["APPROX_AUDIT_LAUNCHER_PID"] = str(os.getpid())     # ranks die with this process
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           "--nproc-per-node", str(nproc), "--max-restarts", "0", "--monitor-interval", "0.5",
           "-m", "approx_audit.auditor.worker", str(cfg)]
    interrupted = False
    with open(log, "w", encoding="utf-8") as fh, _sigterm_as_interrupt():
        # its own process group: a Ctrl-C (or a kill of this process alone) reaches the
        # launcher, which passes ONE SIGINT to the launcher's agent and every rank together
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)
        try:
            rc = proc.wait()
        except KeyboardInterrupt:
            interrupted = True
            rc = _stop_group(proc)
    results_path, trace = out / "results.json", out / "trace.jsonl"
    if rc == 0 and not interrupted and results_path.exists():
        return json.loads(results_path.read_text(encoding="utf-8")), None
    first = _first_failure(state, log)
    if interrupted:
        line = f"interrupted by the user; logs: {log}"
        status = "interrupted"
    elif first is not None:
        where = "" if first.get("step") is None else f" at step {first['step']}"
        run = "" if not first.get("run") else f" (run {first['run']})"
        line = f"rank {first['rank']} failed{where}{run}: {first['error']}; logs: {log}"
        status = "error"
    else:
        line = f"the distributed launch failed (exit status {rc}); logs: {log}"
        status = "error"
    results = None
    if results_path.exists():
        results = json.loads(results_path.read_text(encoding="utf-8"))
    elif trace.exists():
        try:
            results = results_from_trace(trace)
        except ApproxAuditError:
            results = None
    if results is not None:
        if interrupted:
            done = sum(int(r.get("steps") or 0) for r in results.get("runs") or [])
            line = (f"interrupted by the user after {done} finished step(s), kept in {trace}; "
                    f"logs: {log}")
        results["status"] = status
        results["message"] = line
        write_json_atomic(results_path, results)
    return results, line
