"""Decentralized and local methods on ``torch.distributed``: ``approx-audit run --nproc N
--method dpsgd|local-sgd|easgd``.

Launched exactly like the DDP audit (:func:`.distributed.launch`: ``torch.distributed.run
--standalone``, options in a JSON file, ``gloo`` on CPU, ``nccl`` on CUDA, rank 0 writes the
trace and ``results.json``, a failed rank writes ``.distributed/rank<r>.error.json``). Nothing is
simulated: every rank is a process holding its OWN parameters x_i (no DDP wrapper) and every
exchange is a ``torch.distributed`` call.

Data: as in the DDP audit, every rank draws the same global index sequence and takes its own
contiguous slice of ``B / N`` examples (full batch: its contiguous shard of the data, the loss
scaled by ``N · n_i / n`` so that (1/N) Σ_i f_i is the full objective f). The local step is the
torch optimizer's step on the local gradient g_i (with ``-O sgd``: x_i − η g_i; another
optimizer keeps its state per rank). Then, with x_{i,t} the parameters before step t:

``dpsgd``   D-PSGD (Lian et al. 2017):
            x_{i,t+1} = Σ_j W_ij x_{j,t} − η ∇F_i(x_{i,t}; ξ_{i,t})
            — gossip of the PRE-step parameters, the gradient taken at the pre-gossip point x_{i,t}.
            W is ``--mixing ring`` (1/3 on the diagonal and on each ring neighbour, entries added
            for N ≤ 2), ``complete`` (all 1/N) or a JSON file with a doubly-stochastic N×N
            matrix. Gossip goes through point-to-point ``isend``/``irecv`` with the neighbours
            (j ≠ i with W_ij > 0: receive x_j; W_ji > 0: send x_i) when W is sparse, and through
            one ``all_gather`` when every off-diagonal entry is non-zero. The exchange happens
            after backward and before the optimizer step; an optimizer step post-hook, registered
            before the auditor's, then sets x_{i,t+1} = Σ_j W_ij x_{j,t} + (local step), so the
            probes see the whole update.
``local-sgd``  local SGD with H = ``--local-steps``: H local optimizer steps, then the
            parameters are averaged (one ``all_reduce``) after every step t with (t + 1) % H = 0.
            Optimizer state (momentum, Adam moments) is never averaged. H = 1 with plain SGD is
            DDP's trajectory (to rounding).
``easgd``   synchronous EASGD (Zhang, Choromanska & LeCun 2015) with moving rate
            a = ``--easgd-alpha`` (a = η ρ; ρ = a / η₀ is recorded):
                x_{i,t+1} = x_{i,t} − η g_i(x_{i,t}) − a (x_{i,t} − x̃_t)
                x̃_{t+1}   = x̃_t + a Σ_i (x_{i,t} − x̃_t)
            The center x̃ is held by every rank; Σ_i (x_{i,t} − x̃_t) is one ``all_reduce``, so
            every rank applies the same bits (checked: ``center_disagreement``). x̃_0 is the
            mean of the x_{i,0} (= x_0 unless ``--init-spread``).

Probes (every step, one pseudo-probe ``decentralized`` in the start record), all from
collectives on the parameters after the whole update:

``consensus_distance``  sqrt((1/N) Σ_i ‖x_i − x̄‖²), x̄ the mean of the x_i, in float64 (two
                        all_reduces: x_i with u_i, then the squared deviations); also in the
                        init record (k = 0).
``update_spread``       sqrt((1/N) Σ_i ‖u_i − ū‖²), u_i the rank's local optimizer step of this
                        step (taken before any communication), from the same all_reduce.
``avg_param_norm``      ‖x̄‖ (the verdicts' rounding slack scales with it).
``avg_full_loss``, ``avg_suboptimality``, ``avg_dist_sq``
                        at checkpoints (wherever ``full_loss`` is measured, and in the init and
                        final records): f(x̄) on the full data, f(x̄) − f*, ‖x̄ − x*‖².
``center_full_loss``, ``center_disagreement`` (easgd)
                        f(x̃) at checkpoints; max over coordinates of (max_r x̃ − min_r x̃).
Every other probe key is the mean over ranks of the rank's own value (measured at its own x_i on
its own batch); ``full_loss`` and ``dist_sq`` are the means over ranks of f(x_i), ‖x_i − x*‖².

The start record carries ``decentralized``: the method, the matrix W with λ₂ (the eigenvalue of
second largest modulus), ``spectral_gap`` = 1 − |λ₂|, σ₂ = ‖W − 11ᵀ/N‖₂ (the per-step worst-case
contraction of the disagreement; σ₂ = |λ₂| for a symmetric W) and ``rate`` = |λ₂|, the asymptotic
per-step contraction factor of the consensus distance of pure gossip.

Verdicts: each method is ruled on its consensus bound (bounds/families/decentralized.py:
c_K ≤ ρ^K C_0 + S_u Σ_{j<K} ρ^j with ρ = ‖W − 11ᵀ/N‖₂ for D-PSGD, 1 − a for EASGD, and the
drift (K mod H) S_u between local SGD's averagings), a pathwise bound whose constants are all
measured here exactly: C_0 from the init record, S_u the largest ``update_spread``, ρ from W
or a. The local optimizer's own bounds are not selected (the ranks do not run it alone), nor
are the methods' published convergence rates, whose constants are not confirmed.

``--init-spread S`` (experiments and tests): each rank starts from x_0 + S·ξ_i instead of x_0;
``--init-along random`` draws ξ_i from the seed and the rank (‖ξ_i‖ ≈ 1); ``slowest`` (dpsgd)
puts the disagreement along W's slowest eigenvector v (ξ_i = √N v_i u, u a seeded unit vector),
so the initial consensus distance is S and pure gossip shrinks it by |λ₂| per step.
Test hook: ``APPROX_AUDIT_TEST_ZERO_GRAD=1`` zeroes every gradient before the step (η = 0: pure
gossip through the real code path).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..bounds.errors import InvalidValueError
from .distributed import (ENV_GATHER, CollectiveAuditor,
                          RankSetup, _collective_device, _one_line, global_loss, rank_batches)
from .measure import Cost
from .observables import KEY, OBSERVABLES, PROBE, keys_of
from .run import FlatParams

__all__ = ["DECENTRALIZED", "METHODS", "DecentralizedAuditor", "GossipSetup", "mixing_matrix",
           "mixing_spectrum", "slowest_direction", "validate_mixing"]

METHODS = ("ddp", "dpsgd", "local-sgd", "easgd")
DECENTRALIZED = ("dpsgd", "local-sgd", "easgd")
ENV_ZERO_GRAD = "APPROX_AUDIT_TEST_ZERO_GRAD"
TOL = 1e-9
DEC_KEYS = keys_of(PROBE.decentralized)       # from the observables table


# ---------------------------------------------------------------------------------------------
# The mixing matrix (pure, unit-tested without processes)
# ---------------------------------------------------------------------------------------------

def validate_mixing(W: Any, nproc: int, source: str = "the mixing matrix") -> np.ndarray:
    """``W`` as a float64 array after the checks: square ``nproc × nproc``, finite, non-negative,
    rows and columns summing to 1 within 1e-9. Raises :class:`InvalidValueError` (one line)."""
    try:
        A = np.asarray(W, dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidValueError(f"{source}: not a matrix of numbers; give a JSON list of "
                                f"{nproc} rows of {nproc} numbers") from None
    if A.ndim != 2 or A.shape[0] != A.shape[1]:
        raise InvalidValueError(f"{source}: shape {list(A.shape)} is not square; give "
                                f"{nproc} rows of {nproc} numbers")
    if A.shape[0] != nproc:
        raise InvalidValueError(f"{source} is {A.shape[0]}×{A.shape[0]} but --nproc is {nproc}; "
                                "give one row and one column per process")
    if not np.isfinite(A).all():
        raise InvalidValueError(f"{source}: entries must be finite numbers")
    if (A < 0).any():
        i, j = map(int, np.argwhere(A < 0)[0])
        raise InvalidValueError(f"{source}: W[{i}][{j}] = {A[i, j]:g} is negative; a mixing "
                                "matrix has non-negative entries")
    for axis, what in ((1, "row"), (0, "column")):
        s = A.sum(axis=axis)
        bad = np.flatnonzero(np.abs(s - 1.0) > TOL)
        if bad.size:
            k = int(bad[0])
            raise InvalidValueError(f"{source}: {what} {k} sums to {s[k]:.12g}, not 1 (within "
                                    f"1e-9); W must be doubly stochastic")
    return A


def mixing_matrix(spec: Any, nproc: int) -> np.ndarray:
    """``ring``, ``complete``, a path to a JSON file (a list of rows, or ``{"W": rows}``) or a
    list of rows; validated by :func:`validate_mixing`."""
    if isinstance(spec, str):
        if spec == "ring":
            W = np.zeros((nproc, nproc))
            for i in range(nproc):
                for j in (i - 1, i, i + 1):
                    W[i, j % nproc] += 1.0 / 3.0
            return validate_mixing(W, nproc, "--mixing ring")
        if spec == "complete":
            return validate_mixing(np.full((nproc, nproc), 1.0 / nproc), nproc,
                                   "--mixing complete")
        path = Path(spec)
        if not path.is_file():
            raise InvalidValueError(f"--mixing {spec}: give ring, complete or a JSON file with a "
                                    "doubly-stochastic matrix (no such file)")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InvalidValueError(f"--mixing {spec}: not valid JSON ({_one_line(exc)})") from None
        if isinstance(data, Mapping):
            data = data.get("W")
        return validate_mixing(data, nproc, f"--mixing {spec}")
    return validate_mixing(spec, nproc)


def mixing_spectrum(W: np.ndarray) -> dict[str, Any]:
    """λ₂ (eigenvalue of second largest modulus), spectral gap 1 − |λ₂|, σ₂ = ‖W − 11ᵀ/N‖₂."""
    N = W.shape[0]
    symmetric = bool(np.allclose(W, W.T, atol=TOL, rtol=0))
    if N == 1:
        lam2: complex = 0.0
    else:
        ev = np.linalg.eigvalsh((W + W.T) / 2) if symmetric else np.linalg.eigvals(W)
        ev = sorted(ev, key=lambda z: -abs(z))
        # drop the eigenvalue 1 of the consensus vector once (the one closest to 1)
        k = int(np.argmin([abs(z - 1.0) for z in ev]))
        rest = ev[:k] + ev[k + 1:]
        lam2 = rest[0]
    sigma2 = float(np.linalg.norm(W - np.full((N, N), 1.0 / N), 2)) if N > 1 else 0.0
    lam_abs = float(abs(lam2))
    out = {"lambda_2": float(np.real(lam2)), "lambda_2_abs": lam_abs,
           "spectral_gap": 1.0 - lam_abs, "sigma_2": sigma2, "rate": lam_abs,
           "symmetric": symmetric}
    if np.iscomplexobj(lam2) and abs(np.imag(lam2)) > 0:
        out["lambda_2_imag"] = float(np.imag(lam2))
    return out


def slowest_direction(W: np.ndarray) -> np.ndarray:
    """Unit vector v ⊥ 1 along W's eigenvector of second largest |λ| (real part for a
    non-symmetric W): a disagreement that pure gossip shrinks as slowly as possible."""
    N = W.shape[0]
    if N == 1:
        return np.zeros(1)
    if np.allclose(W, W.T, atol=TOL, rtol=0):
        vals, vecs = np.linalg.eigh((W + W.T) / 2)
    else:
        vals, vecs = np.linalg.eig(W)
    ones = np.full(N, 1.0 / math.sqrt(N))
    order = sorted(range(N), key=lambda i: -abs(vals[i]))
    for i in order:
        v = np.real(vecs[:, i]).astype(np.float64)
        v = v - ones * float(ones @ v)
        nv = float(np.linalg.norm(v))
        if nv > 1e-6 and abs(vals[i] - 1.0) > 1e-12:
            return v / nv
    v = np.zeros(N)
    v[0], v[1] = 1 / math.sqrt(2), -1 / math.sqrt(2)
    return v


# ---------------------------------------------------------------------------------------------
# Parameter vectors and the three methods' communication
# ---------------------------------------------------------------------------------------------

def _flat(params: Sequence[Tensor]) -> Tensor:
    return torch.cat([p.detach().reshape(-1) for p in params])


def _assign(params: Sequence[Tensor], flat: Tensor) -> None:
    with torch.no_grad():
        i = 0
        for p in params:
            n = p.numel()
            p.copy_(flat[i:i + n].view_as(p))
            i += n


def _to_dev(t: Tensor) -> Tensor:
    dev = _collective_device()
    return t if t.device == dev else t.to(dev)


class _Method:
    """Communication of one method around the local optimizer step: :meth:`before_step` (after
    backward, at x_t) and :meth:`after_step` (an optimizer step post-hook, before the auditor's)."""

    name = "ddp"

    def __init__(self, params: Sequence[Tensor], rank: int, world: int):
        self.params, self.rank, self.world = list(params), rank, world
        self.t = 0
        self._x: Tensor | None = None
        self.last_update: Tensor | None = None     # u_{i,t}: this rank's local optimizer step

    def before_step(self) -> None:
        self._x = _flat(self.params)

    def _local_update(self) -> None:
        """u_{i,t} = (parameters after the local optimizer step) − x_{i,t}, before any
        communication changes them."""
        if self._x is not None:
            self.last_update = _flat(self.params) - self._x
            self._x = None

    def after_step(self, optimizer, args, kwargs) -> None:
        self._local_update()
        self.t += 1

    def center(self) -> Tensor | None:
        return None


class DPSGD(_Method):
    name = "dpsgd"

    def __init__(self, params, rank, world, W: np.ndarray):
        super().__init__(params, rank, world)
        self.W = W
        row = W[rank]
        self.recv_from = [j for j in range(world) if j != rank and row[j] > 0]
        self.send_to = [j for j in range(world) if j != rank and W[j, rank] > 0]
        dense = all(W[i, j] > 0 for i in range(world) for j in range(world) if i != j)
        self.transport = "all_gather" if dense else "isend/irecv"
        self._mixed: Tensor | None = None

    def before_step(self) -> None:
        import torch.distributed as dist

        x = _flat(self.params)
        xd = _to_dev(x.clone())
        row = self.W[self.rank]
        if self.transport == "all_gather":
            parts = [torch.empty_like(xd) for _ in range(self.world)]
            dist.all_gather(parts, xd)
        else:
            parts = {j: torch.empty_like(xd) for j in self.recv_from}
            reqs = [dist.isend(xd, dst=j) for j in self.send_to]
            reqs += [dist.irecv(parts[j], src=j) for j in self.recv_from]
            for r in reqs:
                r.wait()
            parts = {**parts, self.rank: xd}
        mixed = torch.zeros_like(x)
        for j in range(self.world):
            if row[j] > 0:
                mixed.add_(parts[j].to(x.device), alpha=float(row[j]))
        self._x, self._mixed = x, mixed

    def after_step(self, optimizer, args, kwargs) -> None:
        self._local_update()
        if self._mixed is not None:
            # x_{t+1} = Σ_j W_ij x_{j,t} + (local step taken from x_t); exactly W x_t when it is 0
            _assign(self.params, self._mixed + self.last_update)
            self._mixed = None
        self.t += 1


class LocalSGD(_Method):
    name = "local-sgd"

    def __init__(self, params, rank, world, H: int):
        super().__init__(params, rank, world)
        self.H = int(H)

    def after_step(self, optimizer, args, kwargs) -> None:
        import torch.distributed as dist

        self._local_update()
        self.t += 1
        if self.t % self.H == 0:
            x = _to_dev(_flat(self.params))
            dist.all_reduce(x, op=dist.ReduceOp.SUM)
            _assign(self.params, x.to(self.params[0].device) / self.world)


class EASGD(_Method):
    name = "easgd"

    def __init__(self, params, rank, world, alpha: float):
        import torch.distributed as dist

        super().__init__(params, rank, world)
        self.alpha = float(alpha)
        x = _to_dev(_flat(self.params).clone())
        dist.all_reduce(x, op=dist.ReduceOp.SUM)
        self._center = x.to(self.params[0].device) / world     # x̃_0: the mean of the x_{i,0}
        self._elastic: Tensor | None = None
        self._sum: Tensor | None = None

    def before_step(self) -> None:
        import torch.distributed as dist

        super().before_step()
        diff = self._x - self._center                           # x_{i,t} − x̃_t
        s = _to_dev(diff.clone())
        dist.all_reduce(s, op=dist.ReduceOp.SUM)                # Σ_i (x_{i,t} − x̃_t)
        self._elastic, self._sum = diff, s.to(diff.device)

    def after_step(self, optimizer, args, kwargs) -> None:
        self._local_update()
        if self._elastic is not None:
            _assign(self.params, _flat(self.params) - self.alpha * self._elastic)
            self._center = self._center + self.alpha * self._sum
            self._elastic = self._sum = None
        self.t += 1

    def center(self) -> Tensor | None:
        return self._center


# ---------------------------------------------------------------------------------------------
# The auditor of one rank
# ---------------------------------------------------------------------------------------------

def _dec_probe(method: str) -> dict[str, Any]:
    keys = [k for k in DEC_KEYS if OBSERVABLES[k].method in (None, method)]
    return {"name": PROBE.decentralized,
            "estimates": ("consensus distance sqrt((1/N) Σ‖x_i − x̄‖²) and the spread of the "
                          "local steps sqrt((1/N) Σ‖u_i − ū‖²) every step; ‖x̄‖; f(x̄), "
                          "f(x̄) − f*, ‖x̄ − x*‖² at checkpoints (x̄ the mean of the ranks' "
                          "parameters)" + ("; EASGD's center x̃: f(x̃) and the ranks' "
                                           "disagreement on it" if method == "easgd" else "")),
            "direction": "exact", "key_directions": {k: OBSERVABLES[k].direction for k in keys},
            "every": 1, "keys": keys, "cost": Cost().as_dict(), "cost_is_bound": False,
            "free": True}


class DecentralizedAuditor(CollectiveAuditor):
    """The :class:`~.run.Auditor` of one rank of a decentralized run: its probes measure this
    rank's own x_i on its own batch; after every step the values are averaged over ranks (one
    ``all_reduce``) and the consensus probes are added (see the module docstring)."""

    def __init__(self, model, optimizer, *, rank: int, world: int, method: _Method,
                 info: Mapping[str, Any], loss_scale: float = 1.0, local_batch: int | None,
                 **kwargs):
        self.rank, self.world, self.method = rank, world, method
        self.info = dict(info)
        self.loss_scale = float(loss_scale)
        self.local_batch = local_batch
        self.nonfinite = False
        super().__init__(model, optimizer, **kwargs)
        self._keys = sorted({k for p in self.probes for k in p.keys})

    # ---- records
    def _emit(self, record: dict[str, Any]) -> None:
        kind = record.get("record")
        if kind == "start":
            record = dict(record)
            record["world_size"] = self.world
            record["probes"] = list(record["probes"]) + [_dec_probe(self.method.name)]
            record["decentralized"] = {
                **self.info, "backend": _backend(),
                "rank_mean_keys": sorted(self._probe_keys()),
                "costs": "the end record's costs are rank 0's passes; train_examples counts "
                         "every rank's batch"}
        elif kind in ("init", "final") and self._collectives:
            record = {**record, "method": self.method.name,
                      **self._dec_values(self._flat(), checkpoint=True)}
        elif kind == "step":
            record = {**record, "method": self.method.name}
            if self.local_batch is not None:
                record["batch_size"] = self.local_batch * self.world
                record["local_batch_size"] = self.local_batch
        elif kind == "end":
            costs = dict(record.get("costs") or {})
            costs["train_examples"] = int(costs.get("train_examples", 0)) * self.world
            costs["world_size"] = self.world
            record = {**record, "costs": costs}
        super()._emit(record)

    def _probe_keys(self) -> set[str]:
        return {k for p in self.probes for k in p.keys}

    def _checkpoint_values(self, params: FlatParams) -> dict[str, Any]:
        return {}          # dist_sq: the mean over ranks, from _dec_values

    def _flat_grad(self) -> Tensor:
        flat = super()._flat_grad()
        return flat / self.loss_scale if self.loss_scale != 1.0 else flat

    # ---- values across ranks
    def _loss_at(self, flat: Tensor) -> float:
        with torch.no_grad():
            return float(self.f(FlatParams(flat, self._layout), self.full_X, self.full_y))

    def _dec_values(self, x: Tensor, checkpoint: bool,
                    update: Tensor | None = None) -> dict[str, Any]:
        import torch.distributed as dist

        out: dict[str, Any] = {}
        d = x.numel()
        # x_i, and the local step u_i when there is one, in one all_reduce (float64: the mean
        # and the deviations carry no rounding beyond the parameters' own)
        parts = [x.detach().double().reshape(-1)]
        if update is not None:
            parts.append(update.detach().double().reshape(-1))
        xs = _to_dev(torch.cat(parts))
        dist.all_reduce(xs, op=dist.ReduceOp.SUM)
        xs = xs.to(x.device) / self.world
        xbar64 = xs[:d]
        xbar = xbar64.to(x.dtype)
        dev_sq = [float((x.double() - xbar64).pow(2).sum())]
        if update is not None:
            dev_sq.append(float((update.double() - xs[d:]).pow(2).sum()))
        extra = []
        if checkpoint and self._opt_flat is not None:
            extra.append(float((x - self._opt_flat).pow(2).sum()))
        sq = _to_dev(torch.tensor([*dev_sq, *extra], dtype=torch.float64))
        dist.all_reduce(sq, op=dist.ReduceOp.SUM)
        sq = sq.cpu()
        out[KEY.consensus_distance] = math.sqrt(max(float(sq[0]), 0.0) / self.world)
        out[KEY.avg_param_norm] = float(xbar64.norm())
        if update is not None:
            out[KEY.update_spread] = math.sqrt(max(float(sq[1]), 0.0) / self.world)
            extra_at = 2
        else:
            extra_at = 1
        if not bool(torch.isfinite(xbar).all()):
            self.nonfinite = True
        center = self.method.center()
        if center is not None:
            hi, lo = _to_dev(center.clone()), _to_dev(center.clone())
            dist.all_reduce(hi, op=dist.ReduceOp.MAX)
            dist.all_reduce(lo, op=dist.ReduceOp.MIN)
            out[KEY.center_disagreement] = float((hi - lo).abs().max()) if hi.numel() else 0.0
        if checkpoint and self.full_X is not None:
            out[KEY.avg_full_loss] = self._loss_at(xbar)
            cost = 1
            if self.facts.f_star is not None:
                out[KEY.avg_suboptimality] = out[KEY.avg_full_loss] - float(self.facts.f_star)
            if self._opt_flat is not None:
                out[KEY.avg_dist_sq] = float((xbar - self._opt_flat).pow(2).sum())
                out[KEY.dist_sq] = float(sq[extra_at]) / self.world
            if center is not None:
                out[KEY.center_full_loss] = self._loss_at(center)
                cost += 1
            self.costs.add_probe(PROBE.decentralized, Cost(forward=cost))
        return out

    def _combine_step_values(self, values, notes, ctx):
        import torch.distributed as dist

        keys = self._keys
        vec = torch.zeros(2 * len(keys), dtype=torch.float64)
        for i, k in enumerate(keys):
            v = values.get(k)
            if v is not None and not isinstance(v, bool):
                vec[2 * i] = float(v)
                vec[2 * i + 1] = 1.0
        vec = _to_dev(vec)
        dist.all_reduce(vec, op=dist.ReduceOp.SUM)
        vec = vec.cpu()
        out: dict[str, Any] = {}
        for i, k in enumerate(keys):
            if k not in values:
                continue                    # not due at this step (the same on every rank)
            if isinstance(values[k], bool):
                out[k] = values[k]
            elif vec[2 * i + 1] > 0:
                out[k] = float(vec[2 * i] / vec[2 * i + 1])
            else:
                out[k] = None
        update, self.method.last_update = self.method.last_update, None
        out.update(self._dec_values(ctx.flat_after, checkpoint=KEY.full_loss in values,
                                    update=update))
        if os.environ.get(ENV_GATHER) == "1":
            gathered: list[Any] = [None] * self.world
            dist.all_gather_object(gathered, {"values": dict(values),
                                              "x": ctx.flat_after.tolist()})
            out[KEY.rank_values] = gathered
        return out, notes


def _backend() -> str | None:
    import torch.distributed as dist
    return dist.get_backend() if dist.is_initialized() else None


# ---------------------------------------------------------------------------------------------
# The worker
# ---------------------------------------------------------------------------------------------

def _spread_init(params: Sequence[Tensor], spread: float, along: str, W: np.ndarray | None,
                 seed: int, rank: int, world: int) -> None:
    """x_i = x_0 + spread · ξ_i (see the module docstring); the same u on every rank."""
    x = _flat(params)
    d = x.numel()
    if along == "slowest":
        v = slowest_direction(W)
        g = torch.Generator().manual_seed(int(seed) + 7919)
        u = torch.randn(d, generator=g, dtype=torch.float64)
        u = u / u.norm()
        xi = u * float(v[rank]) * math.sqrt(world)
    else:
        g = torch.Generator().manual_seed(int(seed) * 1_000_003 + 7919 * (rank + 1))
        xi = torch.randn(d, generator=g, dtype=torch.float64) / math.sqrt(max(d, 1))
    _assign(params, x + spread * xi.to(dtype=x.dtype, device=x.device))


def train_rank(workload, model, optimizer, auditor: DecentralizedAuditor, method: _Method, *,
               steps: int, batch_size: int | None, sampling_seed: int, lr_at, rank: int,
               world: int, progress: dict[str, Any]) -> str:
    """One rank's loop: its own slice of the global minibatch (or its shard), the local step,
    the method's communication around it."""
    zero = os.environ.get(ENV_ZERO_GRAD) == "1"
    for t, Xb, yb in rank_batches(workload, optimizer, steps=steps, batch_size=batch_size,
                                  sampling_seed=sampling_seed, lr_at=lr_at, rank=rank,
                                  world=world, progress=progress):
        optimizer.zero_grad(set_to_none=True)
        loss = workload.criterion(model(Xb), yb) + workload.regularization(
            dict(model.named_parameters()))
        (loss * auditor.loss_scale if auditor.loss_scale != 1.0 else loss).backward()
        g = global_loss(loss, 1.0 / world)
        if zero:
            for p in model.parameters():
                if p.grad is not None:
                    p.grad.zero_()
        if not auditor.observe(Xb, yb, loss if math.isfinite(g) else g):
            return "diverged"
        method.before_step()
        optimizer.step()
        if auditor.nonfinite and not auditor.diverged:
            auditor._diverge(f"the parameters of some rank are not finite after step {t}")
        if auditor.diverged:
            return "diverged"
    return "completed"


def method_info(request, world: int, lr: float) -> tuple[dict, np.ndarray | None]:
    """The start record's ``decentralized`` entry and W (dpsgd) of a
    :class:`~.request.MethodRequest`."""
    m = request.name
    info: dict[str, Any] = {"method": m, "world_size": world}
    W = None
    if m == "dpsgd":
        W = mixing_matrix(request.mixing or "ring", world)
        info["mixing"] = request.mixing or "ring"
        info["W"] = W.tolist()
        info.update(mixing_spectrum(W))
        info["update"] = ("x_{i,t+1} = sum_j W_ij x_{j,t} + u_{i,t}, u_{i,t} the local optimizer "
                          "step from x_{i,t} (D-PSGD, Lian et al. 2017: gossip of the pre-step "
                          "parameters, gradient at the pre-gossip point)")
    elif m == "local-sgd":
        info["local_steps"] = int(request.local_steps)
        info["update"] = ("local optimizer steps; parameters averaged (all_reduce) after every "
                          "step t with (t + 1) % H == 0; optimizer state stays local")
    elif m == "easgd":
        a = float(request.easgd_alpha)
        info["easgd_alpha"] = a
        info["easgd_rho"] = a / lr if lr else None
        info["update"] = ("x_{i,t+1} = x_{i,t} - lr * g_i(x_{i,t}) - a (x_{i,t} - c_t); "
                          "c_{t+1} = c_t + a sum_i (x_{i,t} - c_t) (synchronous EASGD, Zhang, "
                          "Choromanska & LeCun 2015, a = lr * rho)")
    spread = float(request.init_spread or 0.0)
    if spread:
        info["init_spread"] = spread
        info["init_along"] = request.init_along or "random"
    return info, W


def method_symbols(info: Mapping[str, Any]) -> dict[str, float]:
    """The method's hyper-parameters in the symbol table's names (the consensus bounds):
    rho_W = ‖W − 11ᵀ/N‖₂ (dpsgd), alpha_ea = a (easgd), H (local-sgd)."""
    m = info.get("method")
    if m == "dpsgd":
        return {"rho_W": float(info["sigma_2"])}
    if m == "easgd":
        return {"alpha_ea": float(info["easgd_alpha"])}
    if m == "local-sgd":
        return {"H": float(info["local_steps"])}
    return {}


class GossipSetup(RankSetup):
    """``--method dpsgd|local-sgd|easgd`` for :func:`~.distributed.serve`: each rank its own
    model (spread from x_0 on request), the method's communication after the local step, the
    consensus probes of :class:`DecentralizedAuditor`."""

    def __init__(self, request, workload, **kw) -> None:
        super().__init__(request, workload, **kw)
        self.method = request.method
        self.info, self.W = method_info(self.method, self.world, self.spec.lr)

    def spec_dict(self) -> dict[str, Any]:
        return self.spec.to_dict() | {"symbol_values": {**self.spec.symbol_values,
                                                        **method_symbols(self.info)},
                                      "distributed_method": self.method.name}

    def _communication(self, params) -> _Method:
        m, rank, world = self.method, self.rank, self.world
        if m.name == "dpsgd":
            method: _Method = DPSGD(params, rank, world, self.W)
            self.info["transport"] = method.transport
            return method
        if m.name == "local-sgd":
            return LocalSGD(params, rank, world, int(m.local_steps))
        return EASGD(params, rank, world, float(m.easgd_alpha))

    def start(self, model, run, *, config, out, start_info, selected):
        params = [p for p in model.parameters() if p.requires_grad]
        spread = float(self.method.init_spread or 0.0)
        if spread:
            _spread_init(params, spread, self.method.init_along or "random", self.W,
                         config.seed, self.rank, self.world)
        opt = self.spec.build(model.parameters())
        method = self._communication(params)
        opt.register_step_post_hook(method.after_step)    # before the auditor's hook
        auditor = DecentralizedAuditor(
            model, opt, rank=self.rank, world=self.world, method=method, info=self.info,
            loss_scale=self.loss_scale(),
            local_batch=None if self.full_batch else config.batch_size // self.world,
            workload=self.workload, probes=config.probes, out=out, run=run,
            seed=config.seed + run, full_batch=self.full_batch, averages=False,
            start_info=start_info, trusted_gradients=True,
            probe_mode=config.probe_mode)

        def train(**kw):
            return train_rank(self.workload, model, opt, auditor, method, **kw)
        return auditor, train


def check_method_options(method: str | None, nproc: int, mixing: str | None,
                         local_steps: int | None, easgd_alpha: float | None,
                         init_spread: float | None, init_along: str | None) -> str:
    """The method of ``run`` after the checks (one-line :class:`InvalidValueError`); W is
    validated here too, in the launching process, so a bad file never starts a worker."""
    m = method or "ddp"
    if m not in METHODS:
        raise InvalidValueError(f"--method {m}: give one of {', '.join(METHODS)}")
    if m in DECENTRALIZED and nproc < 2:
        raise InvalidValueError(f"--method {m} needs --nproc 2 or more (its ranks are processes)")
    given = {"--mixing": (mixing, "dpsgd"), "--local-steps": (local_steps, "local-sgd"),
             "--easgd-alpha": (easgd_alpha, "easgd")}
    for flag, (value, owner) in given.items():
        if value is not None and m != owner:
            raise InvalidValueError(f"{flag} applies to --method {owner}, not {m}")
    if (init_spread is not None or init_along is not None) and m not in DECENTRALIZED:
        raise InvalidValueError("--init-spread/--init-along apply to --method dpsgd, local-sgd "
                                "or easgd (DDP ranks share one starting point)")
    if init_spread is not None and not (math.isfinite(init_spread) and init_spread >= 0):
        raise InvalidValueError(f"--init-spread {init_spread:g}: give a finite number ≥ 0")
    if init_along == "slowest" and m != "dpsgd":
        raise InvalidValueError("--init-along slowest needs --method dpsgd (the slowest "
                                "eigenvector of its mixing matrix)")
    if m == "local-sgd":
        if local_steps is None:
            raise InvalidValueError("--method local-sgd needs --local-steps H (average every H "
                                    "steps)")
        if local_steps < 1:
            raise InvalidValueError(f"--local-steps {local_steps}: give H ≥ 1")
    if m == "easgd":
        if easgd_alpha is None:
            raise InvalidValueError("--method easgd needs --easgd-alpha a (the moving rate "
                                    "a = lr·rho, e.g. 0.1/nproc)")
        if not (math.isfinite(easgd_alpha) and 0 < easgd_alpha < 1):
            raise InvalidValueError(f"--easgd-alpha {easgd_alpha:g}: give 0 < a < 1")
    if m == "dpsgd":
        mixing_matrix(mixing or "ring", nproc)
    return m
