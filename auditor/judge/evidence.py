"""A run's evidence: the records of one run of the trace, with accessors keyed by iterate k."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from ..observables import KEY
from ..trace import by_run


@dataclass(frozen=True)
class RunEvidence:
    """One run's records from the trace, with accessors keyed by iterate index k."""

    run: int
    records: tuple[dict[str, Any], ...]

    def _first(self, kind: str) -> dict[str, Any] | None:
        return next((r for r in self.records if r["record"] == kind), None)

    @cached_property
    def start(self) -> dict[str, Any]:
        return self._first("start") or {}

    @cached_property
    def init(self) -> dict[str, Any] | None:
        return self._first("init")

    @cached_property
    def steps(self) -> list[dict[str, Any]]:
        return [r for r in self.records if r["record"] == "step"]

    @cached_property
    def final(self) -> dict[str, Any] | None:
        return self._first("final")

    @cached_property
    def end(self) -> dict[str, Any] | None:
        return self._first("end")

    @cached_property
    def diverged(self) -> dict[str, Any] | None:
        return self._first("diverged")

    @cached_property
    def contiguity(self) -> str | None:
        """None when the step records are steps 0..n−1 in file order, each once, with the
        init record at k = 0 and the final one at k = n; else the first offences in one line.
        A hand-edited or concatenated trace would otherwise be ruled on as if complete."""
        return _contiguity(self.records, self.steps)

    @property
    def status(self) -> str:
        if self.end is not None:
            return self.end.get("status", "completed")
        return "diverged" if self.diverged else "interrupted"

    @property
    def stochastic_layers(self) -> list[str]:
        """The audited function's random layers (dropout in train mode), from the start
        record's objective: with them even a full-data step has a random gradient."""
        return list((self.start.get("objective") or {}).get("stochastic_layers") or ())

    @property
    def full_batch(self) -> bool:
        """Every step's gradient is the objective's exact gradient: the whole data *and* no
        random layer (full-batch SGD with dropout is a stochastic method)."""
        return bool(self.start.get("full_batch")) and not self.stochastic_layers

    def clipped(self) -> tuple[int, int, float | None, float | None]:
        """(steps clipped, steps with the flag recorded, largest raw norm of a clipped step,
        the applied norm there)."""
        flagged = [r for r in self.steps if r.get(KEY.grad_clipped) is not None]
        hit = [r for r in flagged if r[KEY.grad_clipped]]
        if not hit:
            return 0, len(flagged), None, None
        top = max(hit, key=lambda r: float(r.get(KEY.grad_norm_raw) or 0.0))
        return (len(hit), len(flagged), top.get(KEY.grad_norm_raw), top.get(KEY.grad_norm))

    @property
    def n_steps(self) -> int:
        return len(self.steps)

    def checkpoints(self, key: str) -> dict[int, float]:
        """k -> value of a quantity measured at x_k (init, checkpoints after steps, final)."""
        out: dict[int, float] = {}
        ends = ([self.init] if self.init else []), ([self.final] if self.final else [])
        for r in ends[0] + self.steps + ends[1]:
            v = r.get(key)
            if v is not None:
                out[int(r["k"])] = float(v)
        return out

    def objective(self) -> dict[int, float]:
        """F(x_k): full-data checkpoints, plus the training loss of full-batch steps (at x_t)."""
        out = self.checkpoints(KEY.full_loss)
        if self.full_batch:
            for r in self.steps:
                if r.get(KEY.loss) is not None:
                    out.setdefault(int(r["step"]), float(r[KEY.loss]))
        return out

    def grad_norm_sq(self) -> dict[int, float]:
        """‖∇F(x_k)‖²: checkpoints, plus the training gradient of full-batch steps."""
        out = {k: v * v for k, v in self.checkpoints(KEY.full_grad_norm).items()}
        if self.full_batch:
            for r in self.steps:
                if r.get(KEY.grad_norm) is not None:
                    out.setdefault(int(r["step"]), float(r[KEY.grad_norm]) ** 2)
        return out

    def grad_norm_sq_estimate(self) -> tuple[dict[int, float], str, str]:
        """‖∇F(x_k)‖² at every iterate 0..N−1 of a minibatch run, with its kind and a note.

        Exact where a full-data checkpoint exists; elsewhere ‖g_k‖² − σ̂²_B from the training
        gradient g_k (free) minus the minibatch noise the gradient-noise probe measured
        (interpolated between its steps): E‖g_k‖² = ‖∇F(x_k)‖² + σ_B², so this is unbiased up
        to the interpolation of σ²_B. Without noise measurements ‖g_k‖² alone over-estimates
        in expectation (kind ``upper``).
        """
        exact = self.grad_norm_sq()
        g = {int(r["step"]): float(r[KEY.grad_norm]) ** 2 for r in self.steps
             if r.get(KEY.grad_norm) is not None}
        noise = self.values(KEY.gradient_noise_batch)
        out: dict[int, float] = {}
        if noise:
            nk = np.array([k for k, _ in noise], dtype=float)
            nv = np.array([v for _, v in noise])
        for k in range(self.n_steps):
            if k in exact:
                out[k] = exact[k]
            elif k in g:
                out[k] = g[k] - (float(np.interp(k, nk, nv)) if noise else 0.0)
        if noise:
            return out, "estimate", ("‖g_k‖² − σ̂²_B (minibatch gradient minus measured noise) "
                                     "between full-data checkpoints: an estimate")
        return out, "upper", ("‖g_k‖² of the minibatch gradient between full-data checkpoints: "
                              "over-estimates ‖∇F‖² in expectation by σ²_B")

    def values(self, key: str) -> list[tuple[int, float]]:
        """(step, value) of a per-step probe key, skipping missing values."""
        return [(int(r["step"]), float(r[key])) for r in self.steps if r.get(key) is not None]

    def lrs(self) -> list[float]:
        return [float(r["lr"]) for r in self.steps if r.get("lr") is not None]


def _index(value: Any) -> int | None:
    """A record's step index or k, when it is a plain integer (a JSON bool or text is not)."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _listed(values: Sequence[int], total: int, what: str) -> str:
    """'17 missing', '17, 18, 19 missing', '17, 18, 19, … missing (12 in all)'."""
    head = ", ".join(str(v) for v in values[:3])
    return head + (f", … {what} ({total} in all)" if total > 3 else f" {what}")


def _first_missing(uniq: Sequence[int], most: int = 3) -> list[int]:
    """The first ``most`` indices ≥ 0 absent from the sorted, distinct, non-negative ``uniq``
    (walking the gaps: a hostile index of 10¹² costs nothing)."""
    out: list[int] = []
    prev = -1
    for v in uniq:
        out.extend(range(prev + 1, min(v, prev + 1 + most - len(out))))
        if len(out) >= most:
            break
        prev = v
    return out


def _contiguity(records: Sequence[dict[str, Any]], steps: Sequence[dict[str, Any]]
                ) -> str | None:
    """The offences of :attr:`RunEvidence.contiguity`, in the order a reader checks them."""
    idx = [_index(r.get("step")) for r in steps]
    bad = next((j for j, i in enumerate(idx) if i is None or i < 0), None)
    if bad is not None:
        return f"a step record has step index {steps[bad].get('step')!r}, not an integer ≥ 0"
    problems = []
    uniq = sorted(set(idx))
    n_missing = uniq[-1] + 1 - len(uniq) if uniq else 0
    if n_missing:
        problems.append(_listed(_first_missing(uniq), n_missing, "missing"))
    dupes = sorted(t for t, c in Counter(idx).items() if c > 1)
    if dupes:
        problems.append(_listed(dupes, len(dupes), "duplicated"))
    back = next((i for i in range(1, len(idx)) if idx[i] < idx[i - 1]), None)
    if back is not None:
        problems.append(f"{idx[back - 1]} before {idx[back]}")
    counts = Counter(r.get("record") for r in records)
    problems += [f"{counts[kind]} {kind} records" for kind in ("start", "init", "final", "end")
                 if counts[kind] > 1]
    init = next((r for r in records if r.get("record") == "init"), None)
    if init is not None and _index(init.get("k")) != 0:
        problems.append(f"the init record is at k = {init.get('k')!r}, not 0")
    final = next((r for r in records if r.get("record") == "final"), None)
    if final is not None and not (n_missing or dupes) and _index(final.get("k")) != len(idx):
        problems.append(f"the final record is at k = {final.get('k')!r}, after {len(idx)} steps")
    return ", ".join(problems) or None


def runs_from_records(records: Iterable[dict[str, Any]]) -> list[RunEvidence]:
    """One :class:`RunEvidence` per run of the trace, in run order."""
    return [RunEvidence(i, tuple(recs)) for i, recs in sorted(by_run(records).items())]
