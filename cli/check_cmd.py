"""``approx-audit check``: a catalogue bound or a user's claim against exact PEP worst cases."""

from __future__ import annotations

import json
import math
import os

import click

from ..bounds import catalogue, pep
from ..bounds import symbols as S
from ..bounds.certify import SPECS, check_bound, check_claim
from ..bounds.errors import InvalidValueError
from ..bounds.parser import parse_expression
from .options import progress_callback
from .values import parse_assignments

EXIT_INVALID = 1


def _positive_int(ctx, param, value):
    if value is None:
        return value
    if value < 1:
        raise click.BadParameter(f"must be >= 1, got {value}")
    if value > 500:
        raise click.BadParameter(f"at most 500 (one SDP per horizon), got {value}")
    return value


@click.command("check")
@click.argument("bound_id", required=False)
@click.argument("values", nargs=-1)
@click.option("--horizon", "-N", type=int, required=True, callback=_positive_int,
              help="Check horizons K = 1..N.")
@click.option("--solver", type=click.Choice(["clarabel", "scs"]), default="clarabel",
              show_default=True)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True)
@click.option("--claim", help='A claimed upper bound, e.g. "L*R**2/(4*K+2)" (safe parser).')
@click.option("--method", type=click.Choice(sorted(pep.METHODS)), help="Method of the claim.")
@click.option("--step", help="Step size of gd / heavy-ball, e.g. 1/L.")
@click.option("--momentum", help="Momentum beta of heavy-ball.")
@click.option("--class", "fclass", type=click.Choice(sorted(pep.CLASSES)), default="smooth-convex",
              show_default=True)
@click.option("--metric", type=click.Choice(sorted(pep.METRICS)), default="f-gap", show_default=True)
@click.option("--initial", multiple=True, type=click.Choice(sorted(pep.INITIAL_CONDITIONS)),
              help="Initial condition(s): distance (uses R), gap or gap-last (use Delta).")
@click.option("--certificate-out", "cert_dir", type=click.Path(file_okay=False),
              help="Write each row's certificate or counterexample as JSON into this folder "
                   "(re-check with approx-audit verify FILE).")
@click.option("--quiet", is_flag=True, help="No progress bar (drawn only on a terminal).")
def check(bound_id, values, horizon, solver, fmt, claim, method, step, momentum, fclass, metric,
          initial, cert_dir, quiet):
    """Check BOUND_ID (or --claim) against exact worst cases for K = 1..--horizon.

    \b
    approx-audit check gd.smooth_convex.drori_teboulle_2014 --horizon 10
    approx-audit check --claim "L*R**2/(4*K+2)" --method gd --step 1/L \\
        --class smooth-convex --metric f-gap --initial distance --horizon 5 L=1 R=1

    Each row is proved (an exact rational dual certificate, with the factor the bound was
    inflated by), refuted (an exact counterexample) or inconclusive (the numbers shown);
    exit code 1 only when some row is refuted; inconclusive rows do not fail.
    """
    horizons = range(1, horizon + 1)
    if claim is None:
        if bound_id is None:
            raise InvalidValueError("give a bound id (approx-audit check ID --horizon N) or --claim "
                                    "EXPR with --method, --class, --metric and --initial")
        if "=" in bound_id:
            raise InvalidValueError(f"expected a bound id first, got {bound_id!r}")
        for name, val in (("--method", method), ("--step", step), ("--momentum", momentum),
                          ("--initial", initial or None)):
            if val:
                raise InvalidValueError(f"{name} is only used with --claim; a catalogue bound "
                                        "brings its own method")
        bound = catalogue.get(bound_id)
        points = None
        if values:
            vals = parse_assignments(values)
            if "K" in vals:
                raise InvalidValueError("K comes from --horizon, not from K=...")
            points = [dict(vals)]
        if bound.id not in SPECS:
            raise InvalidValueError(
                f"{bound.id} cannot be checked by PEP (stochastic, asymptotic or not a fixed-step "
                f"method); checkable: {', '.join(sorted(SPECS))}")
        result = _solved(lambda: check_bound(bound, horizons, solver=solver, points=points,
                                             progress=progress_callback(quiet)))
        _write_certificates(cert_dir, bound.id, result.rows)
        _emit(result.to_dict(), result.rows, fmt, title=bound.id, note=result.note)
        if result.refuted:
            raise SystemExit(EXIT_INVALID)
        return

    # a user's claim
    if bound_id is not None and "=" not in bound_id:
        raise InvalidValueError("give either a bound id or --claim, not both")
    if bound_id is not None:
        values = (bound_id,) + tuple(values)
    if method is None:
        raise InvalidValueError("--claim needs --method (gd, heavy-ball, fgm, fgm-strongly-convex, ogm)")
    if not initial:
        raise InvalidValueError("--claim needs --initial distance, gap or gap-last")
    vals = parse_assignments(values)
    if "K" in vals:
        raise InvalidValueError("K comes from --horizon, not from K=...")
    expr = parse_expression(claim)
    L = _need(vals, "L", "the function class")
    mu = float(vals.get("mu", 0.0)) if fclass == "smooth-strongly-convex" else 0.0
    if fclass != "smooth-strongly-convex" and "mu" in vals and method != "fgm-strongly-convex":
        raise InvalidValueError(f"mu is only used by --class smooth-strongly-convex, not {fclass}")
    if fclass == "smooth-strongly-convex" and "mu" not in vals:
        raise InvalidValueError("--class smooth-strongly-convex needs mu=VALUE (0 < mu < L)")
    fc = pep.FunctionClass(fclass, L=L, mu=mu)
    init = {}
    for name in initial:
        init[name] = _need(vals, "R" if name == "distance" else "Delta", f"--initial {name}")
    factory = _method_factory(method, step, momentum, vals, L, fclass)
    result = _solved(lambda: check_claim(expr, factory, fc, metric, init, horizons, vals,
                                         solver=solver, progress=progress_callback(quiet)))
    d = result.to_dict()
    d["id"] = "claim"
    d["claim"] = claim
    _write_certificates(cert_dir, "claim", result.rows)
    _emit(d, result.rows, fmt, title=f"claim {claim}")
    if result.refuted:
        raise SystemExit(EXIT_INVALID)


def _solved(solve):
    """The check's result; values whose worst-case program overflows floating point (L=1e300,
    R=1e300) are an input error, not an internal one."""
    try:
        return solve()
    except (OverflowError, FloatingPointError) as exc:
        raise InvalidValueError(f"the values overflow the worst-case program in floating point "
                                f"({exc}); the bounds scale: check at L=1, R=1 and rescale"
                                ) from None


def _need(vals: dict, name: str, what: str) -> float:
    if name not in vals:
        raise InvalidValueError(f"{what} needs {name}=VALUE")
    v = float(vals[name])
    if not (v > 0 and math.isfinite(v)):
        raise InvalidValueError(f"{name} must be a finite number > 0, got {v}")
    return v


def _eval(text: str, vals: dict, what: str) -> float:
    expr = parse_expression(text)
    missing = [n for n in S.names_in(expr) if n not in vals]
    if missing:
        raise InvalidValueError(f"{what} {text!r} needs {', '.join(missing)}=VALUE")
    num = complex(expr.subs({S.SYMBOLS[n].symbol: vals[n] for n in S.names_in(expr)}).evalf())
    if num.imag != 0 or not math.isfinite(num.real):
        raise InvalidValueError(f"{what} {text!r} is not a finite real number")
    return num.real


def _method_factory(method, step, momentum, vals, L, fclass):
    if method in ("gd", "heavy-ball"):
        if step is None:
            raise InvalidValueError(f"--method {method} needs --step (e.g. --step 1/L)")
        eta = _eval(step, vals, "--step")
        if not 0 < eta * L < 2:
            raise InvalidValueError(f"step {step} = {eta:g} is out of range: it must lie in "
                                    f"(0, 2/L) = (0, {2 / L:g})")
        if method == "gd":
            if momentum is not None:
                raise InvalidValueError("--momentum is only used by --method heavy-ball")
            return lambda K: pep.gd(K, eta * L)
        if momentum is None:
            raise InvalidValueError("--method heavy-ball needs --momentum (0 <= beta < 1)")
        beta = _eval(momentum, vals, "--momentum")
        if not 0 <= beta < 1:
            raise InvalidValueError(f"momentum {momentum} = {beta:g} must lie in [0, 1)")
        return lambda K: pep.heavy_ball(K, eta * L, beta)
    if step is not None or momentum is not None:
        raise InvalidValueError(f"--method {method} has fixed steps; drop --step/--momentum")
    if method == "fgm":
        return pep.fgm
    if method == "ogm":
        return pep.ogm
    mu = vals.get("mu")
    if mu is None:
        raise InvalidValueError("--method fgm-strongly-convex needs mu=VALUE (0 < mu < L)")
    ratio = float(mu) / L
    if not 0 < ratio < 1:
        raise InvalidValueError(f"fgm-strongly-convex needs 0 < mu < L, got mu = {mu}, L = {L}")
    return lambda K: pep.fgm_strongly_convex(K, ratio)


def _write_certificates(folder, name: str, rows) -> None:
    """One JSON file per proved or refuted row: ``<name>.K<K>[.p<point>].<proof|counterexample>.json``."""
    if not folder:
        return
    os.makedirs(folder, exist_ok=True)
    points = []
    for r in rows:
        key = json.dumps(r.params, sort_keys=True)
        if key not in points:
            points.append(key)
        if r.document is None:
            continue
        tag = f".p{points.index(key)}" if len(points) > 1 or points.index(key) else ""
        path = os.path.join(folder, f"{name}.K{r.K}{tag}.{r.document['kind']}.json")
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(r.document, fh, indent=1)


def _emit(d: dict, rows, fmt: str, title: str, note: str = "") -> None:
    """The table, then one evidence line per row (the certificate, counterexample or numbers)."""
    if fmt == "json":
        click.echo(json.dumps(d, indent=2, default=float))
        return
    click.echo(f"{title}: worst case (PEP) vs bound; outcome verified in exact arithmetic")
    click.echo(f"{'K':>4}  {'params':<32} {'worst case':>14} {'bound':>14} {'ratio':>9}  "
               f"{'status':<12} {'outcome':<12} solver")
    for r in rows:
        params = ",".join(f"{k}={v:g}" for k, v in r.params.items())
        click.echo(f"{r.K:>4}  {params:<32} {r.worst_case:>14.8g} {r.bound:>14.8g} "
                   f"{r.ratio:>9.6f}  {r.status:<12} {r.outcome:<12} {r.solver}")
    for r in rows:
        click.echo(f"  K={r.K}: {r.evidence}")
    if note:
        click.echo(f"note: {note}")
    outcomes = [r.outcome for r in rows]
    if "refuted" in outcomes:
        click.echo("REFUTED: an exact counterexample violates the bound (see above)")
    elif "inconclusive" in outcomes:
        click.echo(f"not refuted: {outcomes.count('proved')} rows proved, "
                   f"{outcomes.count('inconclusive')} inconclusive (inconclusive rows do not fail)")
    else:
        click.echo("proved: the bound (times the stated factor) holds at every horizon, exactly")
