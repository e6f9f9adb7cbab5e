"""The observables table: every key a trace record carries a measurement under, declared once.

A row says what the number under a key *means*, so that the probes, the judge, the results
writer, the plots and the multi-process auditors read it from one place instead of each
spelling its own copy:

``key``        the trace key (``KEY.local_smoothness == "local_smoothness"``);
``probe``      the probe that emits it in step records (``PROBE.local_smoothness``), or the
               multi-process auditor's pseudo-probe (``dist_gradient_noise``,
               ``decentralized``), or None for the run loop's own checkpoint values;
``origin``     who computes it: ``probe``, ``run loop``, ``distributed`` or ``decentralized``;
``direction``  which way it can be wrong as an estimate of a global constant: ``lower``,
               ``upper``, ``exact``, ``unbiased`` or ``n/a`` (see :mod:`.probes`);
``at``         where it is measured: ``x_t`` (the step's start point) or ``x_t+1`` (after it);
``ranks``      how a data-parallel (DDP) run combines the ranks' values: ``same`` (identical
               on every rank, kept), ``linear`` (the example-weighted mean over ranks is the
               global-batch value), ``recomputed`` (from global sums, never averaged),
               ``rank-mean`` (a mean of per-shard values: no estimate of the whole objective's
               constant), ``collective`` (measured across all ranks by the multi-process
               auditor itself), ``rank-local`` (each rank's own, gathered) or ``loop`` (the
               run loop's checkpoint values on the synchronized parameters). The
               decentralized auditor averages every probe key (each rank has its own x_i);
``unit``       what it is measured in (``f`` a loss value, ``L`` a curvature, ``1`` a ratio …);
``label``      its legend label in plots and reports;
``estimates``  the constant (``L``, ``mu``, ``sigma``, ``G``, ``G_inf``, ``R``, ``C0``, ``Su``)
               the judge estimates from it, or None;
``when``/``source``  for the keys whose maximum over the path is a lower estimate of their
               constant (:data:`~.judge.estimates.PATH_MAXIMA`): ``always`` or ``full_batch``
               (single-process or not a rank mean), and the estimate's source text with
               ``{n}`` the number of values the maximum is over;
``method``     the decentralized method a key needs (``easgd``'s center), else None.

Torch-free and importing nothing of the package: the judge (which never imports torch) and
every other layer read it. Record fields that are no measurements (``step``, ``k``, ``lr``,
``time``, ``notes`` …) are :data:`RECORD_FIELDS`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from types import MappingProxyType

__all__ = ["DIRECTIONS", "KEY", "OBSERVABLES", "Observable", "PROBE", "PROBE_NAMES", "RANKS",
           "RECORD_FIELDS", "keys_of", "keys_where"]

DIRECTIONS = ("lower", "upper", "exact", "unbiased", "n/a")
RANKS = ("same", "linear", "recomputed", "rank-mean", "collective", "rank-local", "loop")
ORIGINS = ("probe", "run loop", "distributed", "decentralized")


@dataclass(frozen=True)
class Observable:
    """One trace key and what it means (the fields are described in the module docstring)."""

    key: str
    probe: str | None
    origin: str
    direction: str
    at: str
    ranks: str
    unit: str
    label: str
    estimates: str | None = None
    when: str | None = None
    source: str | None = None
    method: str | None = None

    def __post_init__(self) -> None:
        for name, value, allowed in (("direction", self.direction, DIRECTIONS),
                                     ("at", self.at, ("x_t", "x_t+1")),
                                     ("ranks", self.ranks, RANKS),
                                     ("origin", self.origin, ORIGINS),
                                     ("when", self.when, (None, "always", "full_batch"))):
            if value not in allowed:
                raise ValueError(f"observable {self.key!r}: {name}={value!r}, not one of "
                                 f"{allowed}")


def _probe(probe: str, at: str, rows: list[tuple]) -> Iterator[Observable]:
    # rows: (key, direction, ranks, unit, label, {optional fields})
    for key, direction, ranks, unit, label, *extra in rows:
        yield Observable(key, probe, "probe", direction, at, ranks, unit, label,
                         **(extra[0] if extra else {}))


_SMOOTHNESS_SRC = "max over {n} steps of ‖∇F(x_t+1) − ∇F(x_t)‖/‖x_t+1 − x_t‖ (full batch)"
_FULL_SECANT_SRC = ("max over {n} pairs of consecutive full-data checkpoints of the secant "
                    "‖∇F(x_b) − ∇F(x_a)‖/‖x_b − x_a‖ (every secant is ≤ L)")
_SHARPNESS_SRC = ("max over {n} checkpoints of the Hessian's top eigenvalue (Rayleigh quotient "
                  "≤ λ_max ≤ L, full batch)")
_GINF_SRC = ("max over {n} steps of ‖g‖_∞ of the stochastic gradient (an almost-sure bound is "
             "at least any observed value)")


def _probe_rows() -> Iterator[Observable]:
    """The per-step probes' keys, each probe's keys in the order it returns them."""
    yield from _probe("loss", "x_t", [
        ("loss", "exact", "linear", "f", "minibatch loss f(x_t; batch)")])
    yield from _probe("grad_norm", "x_t", [
        ("grad_norm", "lower", "recomputed", "‖∇f‖", "minibatch ‖g‖", {"estimates": "G"}),
        ("grad_inf_norm", "lower", "recomputed", "‖∇f‖∞", "‖g‖∞",
         {"estimates": "G_inf", "when": "always", "source": _GINF_SRC}),
        ("grad_norm_raw", "lower", "same", "‖∇f‖", "‖g‖ before clipping"),
        ("grad_clipped", "n/a", "recomputed", "flag", "the step's gradient was clipped")])
    yield from _probe("update_norm", "x_t+1", [
        ("update_norm", "exact", "same", "‖x‖", "‖x_{t+1} − x_t‖"),
        ("effective_lr", "exact", "recomputed", "‖x‖/‖∇f‖", "‖Δx‖/‖g‖"),
        ("update_correlation", "exact", "rank-mean", "1", "cos∠(Δx_t, Δx_{t−1})")])
    yield from _probe("distance_from_start", "x_t+1", [
        ("distance_from_start", "lower", "same", "‖x‖", "‖x_{t+1} − x_0‖")])
    yield from _probe("local_smoothness", "x_t+1", [
        ("local_smoothness", "lower", "recomputed", "L", "local secant (same batch)",
         {"estimates": "L", "when": "full_batch", "source": _SMOOTHNESS_SRC}),
        ("loss_after", "exact", "linear", "f", "f(x_{t+1}; batch_t)"),
        ("convexity_gap", "n/a", "linear", "f", "f(x_{t+1}) − f(x_t) − ⟨∇f(x_t), Δx⟩"),
        ("convexity_gap_reverse", "n/a", "linear", "f", "f(x_t) − f(x_{t+1}) + ⟨∇f(x_{t+1}), Δx⟩"),
        ("convexity_numerator", "exact", "linear", "f", "⟨∇f(x_{t+1}), Δx⟩"),
        ("convexity_denominator", "exact", "linear", "f", "f(x_{t+1}) − f(x_t)"),
        ("convexity_ratio", "n/a", "recomputed", "1", "convexity ratio"),
        ("convexity_gap_normalized", "n/a", "recomputed", "1", "gap / ((L̂/2)‖Δx‖²)")])
    yield from _probe("full_batch", "x_t+1", [
        ("full_loss", "exact", "same", "f", "full loss F(x)"),
        ("full_grad_norm", "exact", "same", "‖∇f‖", "full ‖∇F‖"),
        ("suboptimality", "exact", "same", "f", "F − f*"),
        ("full_smoothness", "lower", "same", "L", "full-data secant",
         {"estimates": "L", "when": "always", "source": _FULL_SECANT_SRC}),
        ("full_convexity_gap", "n/a", "same", "f", "full-data convexity gap")])
    yield from _probe("pl_ratio", "x_t+1", [
        ("pl_ratio", "upper", "same", "L", "PL ratio", {"estimates": "mu"}),
        ("pl_gap", "exact", "same", "f", "F − f* (or F − f_lower)"),
        ("pl_uses_f_star", "n/a", "same", "flag", "PL ratio uses the exact f*")])
    yield from _probe("gradient_noise", "x_t", [
        ("gradient_noise", "unbiased", "recomputed", "‖∇f‖²", "per-example gradient noise σ²"),
        ("gradient_noise_batch", "unbiased", "recomputed", "‖∇f‖²", "batch gradient noise",
         {"estimates": "sigma"}),
        ("gradient_snr", "n/a", "recomputed", "1", "gradient signal-to-noise ratio"),
        ("gradient_noise_se", "n/a", "rank-mean", "‖∇f‖²", "standard error of σ² (microbatch)"),
        ("gradient_noise_microbatch", "n/a", "same", "count",
         "examples per gradient in the noise estimate (1: per-example)")])
    yield from _probe("sharpness", "x_t+1", [
        ("sharpness", "lower", "rank-mean", "L", "top Hessian eigenvalue",
         {"estimates": "L", "when": "full_batch", "source": _SHARPNESS_SRC}),
        ("sharpness_residual", "n/a", "rank-mean", "L", "Lanczos residual ‖Hv − λv‖"),
        ("sharpness_n_hvp", "exact", "rank-mean", "count", "Hessian-vector products"),
        ("sharpness_converged", "n/a", "rank-mean", "flag", "Lanczos converged"),
        ("sharpness_cold_start", "n/a", "rank-mean", "flag", "Lanczos cold start"),
        ("sharpness_2_over_lr", "exact", "same", "L", "2/η"),
        ("sharpness_lr_ratio", "lower", "rank-mean", "1", "λ·η/2")])
    yield from _probe("adam_sharpness", "x_t+1", [
        ("adam_sharpness", "lower", "rank-mean", "1/η", "λ_max(P⁻¹H)"),
        ("adam_threshold", "exact", "same", "1/η", "(2+2β₁)/((1−β₁)η)"),
        ("adam_sharpness_ratio", "lower", "rank-mean", "1", "λ_max(P⁻¹H) / threshold"),
        ("adam_sharpness_residual", "n/a", "rank-mean", "1/η", "Lanczos residual"),
        ("adam_sharpness_n_hvp", "exact", "rank-mean", "count", "Hessian-vector products"),
        ("adam_sharpness_converged", "n/a", "rank-mean", "flag", "Lanczos converged")])


def _other_rows() -> Iterator[Observable]:
    """Keys of the multi-process auditors and of the run loop's checkpoints."""
    dist = ("distributed", "unbiased", "x_t", "collective", "‖∇f‖²")
    yield Observable("dist_gradient_noise", "dist_gradient_noise", *dist,
                     "per-example noise from the ranks' spread", estimates="sigma")
    yield Observable("dist_gradient_noise_local", "dist_gradient_noise", *dist,
                     "local-batch noise from the ranks' spread")
    yield Observable("dist_gradient_noise_batch", "dist_gradient_noise", *dist,
                     "global-batch noise from the ranks' spread")
    yield Observable("rank_values", None, "distributed", "n/a", "x_t+1", "rank-local", "-",
                     "every rank's raw step values (a test hook)")
    dec = ("decentralized", "decentralized", "exact", "x_t+1", "collective")
    yield Observable("consensus_distance", *dec, "‖x‖", "consensus distance", estimates="C0")
    yield Observable("update_spread", *dec, "‖x‖", "spread of the local steps",
                     estimates="Su")
    yield Observable("avg_param_norm", *dec, "‖x‖", "‖x̄‖")
    yield Observable("avg_full_loss", *dec, "f", "F(x̄)")
    yield Observable("avg_suboptimality", *dec, "f", "F(x̄) − f*")
    yield Observable("avg_dist_sq", *dec, "‖x‖²", "‖x̄ − x*‖²")
    yield Observable("center_full_loss", *dec, "f", "F(x̃) of EASGD's center", method="easgd")
    yield Observable("center_disagreement", *dec, "‖x‖", "ranks' disagreement on the center",
                     method="easgd")
    loop = (None, "run loop", "exact", "x_t+1", "loop")
    yield Observable("dist_sq", *loop, "‖x‖²", "‖x − x*‖²", estimates="R")
    yield Observable("avg_loss_0", *loop, "f", "F of the average of x_0..x_{k−1}")
    yield Observable("avg_loss_1", *loop, "f", "F of the average of x_1..x_k")
    yield Observable("wavg_loss", *loop, "f", "F of Σ_s 2s/(k(k+1)) x_{s−1}")


def _build() -> Mapping[str, Observable]:
    table: dict[str, Observable] = {}
    for row in (*_probe_rows(), *_other_rows()):
        if row.key in table:
            raise ValueError(f"observable {row.key!r} declared twice")
        table[row.key] = row
    return MappingProxyType(table)


OBSERVABLES: Mapping[str, Observable] = _build()

# fields of a trace record that are bookkeeping, not measurements
RECORD_FIELDS = frozenset({"record", "run", "step", "k", "lr", "batch_size", "local_batch_size",
                           "method", "train_grad_evals", "probe_grad_evals", "time", "notes"})

_FIELDS = frozenset(f.name for f in fields(Observable))


def keys_where(**criteria) -> tuple[str, ...]:
    """Keys (in table order) whose rows have every given field equal to the given value:
    ``keys_where(ranks="same")``, ``keys_where(probe="decentralized", method=None)``."""
    unknown = set(criteria) - _FIELDS
    if unknown:
        raise TypeError(f"keys_where: no field {sorted(unknown)}; fields are {sorted(_FIELDS)}")
    return tuple(k for k, o in OBSERVABLES.items()
                 if all(getattr(o, f) == v for f, v in criteria.items()))


def keys_of(probe: str) -> tuple[str, ...]:
    """The keys ``probe`` emits, in the order it returns them (empty for an unknown name)."""
    return keys_where(probe=probe)


class _Names:
    """Read-only attributes naming declared strings: ``KEY.sharpness == "sharpness"``, so code
    names a key without spelling its literal, and a typo is an AttributeError."""

    def __init__(self, names) -> None:
        self.__dict__.update({n: n for n in names})

    def __setattr__(self, name, value) -> None:
        raise AttributeError(f"{name}: the names are read-only (declare a key in the table)")

    def __iter__(self):
        return iter(self.__dict__)

    def __contains__(self, name) -> bool:
        return name in self.__dict__


KEY = _Names(OBSERVABLES)
# the probes the table names, with the multi-process auditors' pseudo-probes (the entries
# they add to the start record's probe list): ``dist_gradient_noise``, ``decentralized``
PROBE_NAMES: tuple[str, ...] = tuple(dict.fromkeys(
    o.probe for o in OBSERVABLES.values() if o.probe is not None))
PROBE = _Names(PROBE_NAMES)
