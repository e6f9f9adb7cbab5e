"""The case study: exact vs approximate training of the 3-node network, with agreement checks.

:func:`run_study` builds the instances, solves each exactly (MILP, with a time limit) and
approximately (SGD and Adam on the sigmoid relaxation), runs the independent checks, and
returns one JSON-ready dict — the source of truth for the report. Nothing in it is typed in:
every number comes from the run.

How it uses the library: the relaxation trains the library's ``ThreeNodeNet`` under an
``Auditor`` attached to the study's own loop (:mod:`.relaxation`), and the files are written
atomically by the library's ``write_text_atomic``. The run is not an ``approx-audit run``
(``run_audit``): that audits one optimizer against the bound catalogue, while this study's
loop must keep its own schedule (all restarts on one minibatch, hard scoring at geometric
checkpoints) and its results are MILP optima and ratios, not verdicts — so it writes its own
``results.json`` (schema :data:`SCHEMA`) and renders it with :mod:`.report`.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import math
import os
import platform
import sys
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .errors import OutputDirError, StudyInputError
from .exhaustive import MAX_EXHAUSTIVE_POINTS, exhaustive_train
from .instances import (FANO_PLANE, MAX_BRUTE_FORCE_ELEMENTS, all_subsets_instance,
                        blum_rivest_network, planted_instance, random_set_splitting,
                        reduction_instance, set_splitting_brute_force)
from .milp import DEFAULT_EPS, exact_train
from .relaxation import relaxed_train

SCHEMA = "approx-audit/case-study/two-layer-hardness/1"
OPTIMIZERS = ("sgd", "adam")


@dataclass(frozen=True)
class StudyOptions:
    """What to run. The defaults are the full study; :data:`QUICK` is the CI-sized one.

    ``sizes`` × ``dims`` × ``reps`` planted instances (``noise`` label noise, teacher output
    ``output``); reduction instances with ``elements`` set elements and
    ``round(subset_ratio · k)`` random 3-subsets, ``reduction_reps`` each, plus three fixed
    ones (all 3-subsets of 5 elements and the Fano plane — unsplittable; all 3-subsets of 4 —
    splittable); d = 2 exhaustive checks at ``check_sizes`` × ``check_reps``. Every MILP gets
    ``time_limit`` seconds; the relaxation runs ``restarts`` × ``steps`` minibatch steps.
    """

    sizes: tuple[int, ...] = (10, 20, 40, 80, 120, 160)
    dims: tuple[int, ...] = (2, 4, 8)
    reps: int = 3
    time_limit: float = 60.0
    restarts: int = 16
    steps: int = 2000
    batch_size: int = 16
    seed: int = 0
    noise: float = 0.1
    output: str = "and"
    elements: tuple[int, ...] = (6, 8, 10, 12, 14)
    subset_ratio: float = 2.5
    reduction_reps: int = 4
    check_sizes: tuple[int, ...] = (8, 14, 20, 26)
    check_reps: int = 2
    eps: float = DEFAULT_EPS
    quick: bool = False

    def validate(self) -> "StudyOptions":
        """Raise :class:`StudyInputError` (one line) for any option the study cannot use."""
        def ints(name, vals, lo, hi=None):
            if not vals:
                raise StudyInputError(f"--{name} needs at least one value")
            for v in vals:
                if not isinstance(v, (int, np.integer)) or v < lo or (hi is not None and v > hi):
                    rng = f">= {lo}" if hi is None else f"in {lo}..{hi}"
                    raise StudyInputError(f"--{name} values must be integers {rng}, got {v}")
        ints("sizes", self.sizes, 1)
        ints("dims", self.dims, 1)
        ints("elements", self.elements, 3, MAX_BRUTE_FORCE_ELEMENTS)
        ints("check-sizes", self.check_sizes, 1, MAX_EXHAUSTIVE_POINTS)
        for name in ("reps", "restarts", "steps", "batch_size", "reduction_reps", "check_reps"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or v < 1:
                flag = name.replace("_", "-")
                raise StudyInputError(f"--{flag} must be an integer >= 1, got {v}")
        if not (isinstance(self.time_limit, (int, float)) and self.time_limit > 0
                and math.isfinite(self.time_limit)):
            raise StudyInputError(f"--time-limit must be a positive number of seconds, "
                                  f"got {self.time_limit}")
        if not 0 <= self.noise < 0.5:
            raise StudyInputError(f"--noise must lie in [0, 0.5), got {self.noise}")
        if self.output not in ("and", "threshold"):
            raise StudyInputError(f"--output must be 'and' or 'threshold', got {self.output!r}")
        if not self.subset_ratio > 0:
            raise StudyInputError(f"subset_ratio must be positive, got {self.subset_ratio}")
        if not 0 < self.eps < 1:
            raise StudyInputError(f"eps must lie in (0, 1), got {self.eps}")
        if not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            raise StudyInputError(f"--seed must be a non-negative integer, got {self.seed}")
        return self


QUICK = StudyOptions(sizes=(10, 20, 40, 80, 120), dims=(2, 4), reps=2, time_limit=5.0,
                     restarts=8, steps=400, elements=(6, 8, 10), reduction_reps=3,
                     check_sizes=(8, 14, 20), check_reps=2, quick=True)


def _seed(master: int, *parts) -> int:
    """A per-instance seed derived deterministically from the master seed and a label."""
    key = [master] + [sum(ord(ch) for ch in p) if isinstance(p, str) else int(p) for p in parts]
    return int(np.random.SeedSequence(key).generate_state(1)[0])


def check_out_dir(out_dir) -> str:
    """Create ``out_dir`` if needed and prove it writable; raise :class:`OutputDirError` if not."""
    path = os.path.abspath(os.fspath(out_dir))
    try:
        os.makedirs(path, exist_ok=True)
        probe = os.path.join(path, ".write-test")
        with open(probe, "w") as fh:
            fh.write("ok")
        os.remove(probe)
    except OSError as exc:
        raise OutputDirError(f"--out {out_dir}: cannot write there ({exc.strerror or exc}); "
                             "choose a writable folder") from None
    return path


def _versions() -> dict:
    import importlib.metadata as md

    out = {"python": sys.version.split()[0]}
    for pkg in ("approx-audit", "numpy", "scipy", "cvxpy", "highspy", "torch", "matplotlib"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = None
    return out


def _certify(errors: int, lower: int, upper: int, proven: bool) -> dict:
    """How a relaxation's error count compares with the optimum, as far as it is known.

    ``proven``: OPT = lower = upper. Then a ratio errors/OPT (OPT > 0) or an additive excess
    (OPT = 0: no finite ratio exists). Otherwise OPT ∈ [lower, upper] and the ratio lies in
    [errors/upper, errors/lower] (upper end ``None`` = unbounded, when lower = 0).
    """
    rec = {"errors": errors, "opt_lower": lower, "opt_upper": upper, "opt_proven": proven}
    if proven:
        rec["ratio"] = errors / lower if lower > 0 else None
        rec["excess"] = errors - lower
        rec["ratio_low"] = rec["ratio_high"] = rec["ratio"]
    else:
        rec["ratio"] = None
        rec["excess"] = None
        rec["ratio_low"] = errors / upper if upper > 0 else None
        rec["ratio_high"] = errors / lower if lower > 0 else None
    return rec


def _relax_all(inst, output, opts, label) -> dict:
    out = {}
    for opt_name in OPTIMIZERS:
        r = relaxed_train(inst.X, inst.y, output=output, optimizer=opt_name,
                          restarts=opts.restarts, steps=opts.steps,
                          batch_size=opts.batch_size, seed=_seed(opts.seed, label, opt_name))
        out[opt_name] = r
    return out


def _planted_rows(opts, say) -> list[dict]:
    rows = []
    total = len(opts.sizes) * len(opts.dims) * opts.reps
    i = 0
    for d in opts.dims:
        for n in opts.sizes:
            for rep in range(opts.reps):
                i += 1
                inst = planted_instance(n, d, noise=opts.noise, output=opts.output,
                                        seed=_seed(opts.seed, "planted", n, d, rep))
                ex = exact_train(inst.X, inst.y, output=opts.output, time_limit=opts.time_limit,
                                 eps=opts.eps)
                relaxed = _relax_all(inst, opts.output, opts, inst.name)
                upper = min([ex.errors, inst.meta["teacher_errors"]]
                            + [r.errors for r in relaxed.values()])
                proven = ex.status == "optimal"
                say(f"[planted {i}/{total}] n={n} d={d} rep={rep}: MILP {ex.status} "
                    f"{ex.errors} (bound {ex.bound}) in {ex.time:.2f}s; "
                    + ", ".join(f"{k} {r.errors}" for k, r in relaxed.items()))
                rows.append({
                    "name": inst.name, "n": n, "d": d, "rep": rep, "seed": inst.meta["seed"],
                    "noise": opts.noise, "output": opts.output,
                    "n_pos": int(np.sum(inst.y == 1)),
                    "teacher_errors": inst.meta["teacher_errors"],
                    "status": ex.status, "exact": ex.to_dict(),
                    "opt_lower": ex.bound, "opt_upper": upper, "opt_proven": proven,
                    "relaxed": {k: r.to_dict() for k, r in relaxed.items()},
                    "certified": {k: _certify(r.errors, ex.bound, upper, proven)
                                  for k, r in relaxed.items()},
                })
    return rows


def _reduction_cases(opts) -> list[tuple[str, int, tuple]]:
    cases = []
    for k in opts.elements:
        m = int(round(opts.subset_ratio * k))
        m = min(m, math.comb(k, 3))
        for rep in range(opts.reduction_reps):
            subs = random_set_splitting(k, m, seed=_seed(opts.seed, "setsplit", k, rep))
            cases.append((f"random-k{k}-m{m}-r{rep}", k, subs))
    cases.append(("all-3-subsets-of-5", 5, all_subsets_instance(5, 3)))
    cases.append(("fano-plane", 7, FANO_PLANE))
    cases.append(("all-3-subsets-of-4", 4, all_subsets_instance(4, 3)))
    return cases


def _reduction_rows(opts, say) -> list[dict]:
    rows = []
    cases = _reduction_cases(opts)
    for i, (name, k, subs) in enumerate(cases, 1):
        split = set_splitting_brute_force(k, subs)
        row = {"name": name, "n_elements": k, "n_subsets": len(subs),
               "subsets": [list(c) for c in subs], "splittable": split is not None,
               "split": list(split) if split is not None else None}
        for variant, gadget, output in (("and", False, "and"), ("threshold", True, "threshold")):
            inst = reduction_instance(k, subs, gadget=gadget, name=f"{name}-{variant}")
            ex = exact_train(inst.X, inst.y, output=output, time_limit=opts.time_limit,
                             eps=opts.eps)
            br = (blum_rivest_network(k, split, gadget=gadget).errors(inst.X, inst.y)
                  if split is not None else None)
            row[variant] = {"n": inst.n, "d": inst.d, "gadget": gadget, "output": output,
                            "status": ex.status, "exact": ex.to_dict(),
                            "blum_rivest_errors": br}
            relaxed = _relax_all(inst, output, opts, inst.name)
            row[variant]["relaxed"] = {kk: r.to_dict() for kk, r in relaxed.items()}
        row["status"] = ("optimal" if all(row[v]["status"] == "optimal"
                                          for v in ("and", "threshold")) else "time_limit")
        say(f"[reduction {i}/{len(cases)}] {name}: splittable={split is not None}, "
            f"OPT_AND={row['and']['exact']['errors']} ({row['and']['status']}), "
            f"OPT_3node={row['threshold']['exact']['errors']} ({row['threshold']['status']}); "
            + "; ".join(f"{var}: " + ", ".join(f"{kk} {v['errors']}"
                                               for kk, v in row[var]["relaxed"].items())
                        for var in ("and", "threshold")))
        rows.append(row)
    return rows


def _exhaustive_rows(opts, say) -> list[dict]:
    rows = []
    for n in opts.check_sizes:
        for rep in range(opts.check_reps):
            for output in ("and", "threshold"):
                inst = planted_instance(n, 2, noise=0.15, output=output,
                                        seed=_seed(opts.seed, "check", n, rep, output))
                ex = exact_train(inst.X, inst.y, output=output, time_limit=opts.time_limit,
                                 eps=opts.eps)
                bf = exhaustive_train(inst.X, inst.y, output=output)
                rows.append({"name": f"{inst.name}-{output}", "n": n, "d": 2, "output": output,
                             "status": ex.status, "exact": ex.to_dict(),
                             "exhaustive": bf.to_dict()})
    say(f"[checks] {len(rows)} d=2 instances: MILP vs exhaustive search done")
    return rows


def _check(name: str, description: str, outcomes: list[tuple[str, bool | None]]) -> dict:
    failed = [k for k, v in outcomes if v is False]
    inconclusive = [k for k, v in outcomes if v is None]
    passed = sum(1 for _, v in outcomes if v is True)
    status = ("failed" if failed else "inconclusive" if inconclusive or not outcomes
              else "passed")
    return {"name": name, "description": description, "status": status, "passed": passed,
            "failed": len(failed), "inconclusive": len(inconclusive),
            "failures": failed, "inconclusive_instances": inconclusive}


def _checks(planted, reductions, exhaustive) -> list[dict]:
    ex_out = [(r["name"], (r["exact"]["errors"] == r["exhaustive"]["errors"])
               if r["status"] == "optimal" else None) for r in exhaustive]
    red_out, br_out = [], []
    for r in reductions:
        for v in ("and", "threshold"):
            rec = r[v]
            red_out.append((f"{r['name']}-{v}", ((rec["exact"]["errors"] == 0) == r["splittable"])
                            if rec["status"] == "optimal" else None))
            if r["splittable"]:
                br_out.append((f"{r['name']}-{v}", rec["blum_rivest_errors"] == 0))
    all_exact = ([(r["name"], r["exact"]) for r in planted + exhaustive]
                 + [(f"{r['name']}-{v}", r[v]["exact"]) for r in reductions
                    for v in ("and", "threshold")])
    ver_out = []
    for name, ex in all_exact:
        for s in ex["subsolves"]:
            if s["objective"] is None:  # no incumbent: the constant fallback, nothing to compare
                ver_out.append((f"{name}:{s['labels']}", None))
            else:
                ver_out.append((f"{name}:{s['labels']}", bool(s["verified"])))
    # every verified network is an upper bound on OPT, so no lower bound may exceed one
    lb_out = []
    for r in planted:
        uppers = [r["teacher_errors"], r["exact"]["errors"]] + [
            v["errors"] for v in r["relaxed"].values()]
        lb_out.append((r["name"], r["exact"]["bound"] <= min(uppers)))
    for r in exhaustive:
        lb_out.append((r["name"], r["exact"]["bound"] <= r["exhaustive"]["errors"]))
    for r in reductions:
        for v in ("and", "threshold"):
            rec = r[v]
            uppers = [rec["exact"]["errors"]] + [x["errors"] for x in rec["relaxed"].values()]
            if rec["blum_rivest_errors"] is not None:
                uppers.append(rec["blum_rivest_errors"])
            lb_out.append((f"{r['name']}-{v}", rec["exact"]["bound"] <= min(uppers)))
    return [
        _check("milp_vs_exhaustive_d2",
               "d = 2: the MILP optimum equals the exhaustive search over all half-plane "
               "dichotomies (no margin, no solver), for AND and for any threshold output",
               ex_out),
        _check("reduction_opt_zero_iff_splittable",
               "Blum–Rivest instances: OPT = 0 exactly when brute force finds a split "
               "(AND output without the gadget; any threshold output with it)", red_out),
        _check("blum_rivest_certificate",
               "on splittable instances the weights of Blum & Rivest's proof misclassify "
               "no point", br_out),
        _check("milp_verified_in_numpy",
               "every MILP incumbent, its biases shifted by −ε/2, misclassifies in numpy "
               "exactly as many points as the MILP objective (proven optima) or at most as "
               "many (time-limited incumbents, whose error flags may be loose)", ver_out),
        _check("lower_bounds_below_every_network",
               "the MILP's proven lower bound never exceeds the error of any verified network "
               "(teacher, MILP incumbent, SGD, Adam, exhaustive, Blum–Rivest weights)", lb_out),
    ]


def _median(xs):
    return float(np.median(xs)) if len(xs) else None


def _summary(planted, reductions, opts) -> dict:
    timing = []
    for d in opts.dims:
        for n in opts.sizes:
            rs = [r for r in planted if r["n"] == n and r["d"] == d]
            times = [r["exact"]["time_s"] for r in rs]
            outs = [r for r in rs if r["status"] != "optimal"]
            timing.append({
                "n": n, "d": d, "instances": len(rs), "timeouts": len(outs),
                "median_time_s": _median(times),
                "median_is_lower_bound": len(outs) * 2 >= len(rs) and len(outs) > 0,
                "max_time_s": max(times) if times else None,
                "median_relaxed_time_s": {k: _median([r["relaxed"][k]["time_s"] for r in rs])
                                          for k in OPTIMIZERS}})
    ratios = {}
    for k in OPTIMIZERS:
        prov_pos = [r["certified"][k]["ratio"] for r in planted
                    if r["opt_proven"] and r["opt_lower"] > 0]
        zero = [r["certified"][k]["excess"] for r in planted
                if r["opt_proven"] and r["opt_lower"] == 0]
        unproven = [r for r in planted if not r["opt_proven"]]
        ratios[k] = {
            "proven_opt_positive": len(prov_pos),
            "ratio_min": min(prov_pos) if prov_pos else None,
            "ratio_median": _median(prov_pos),
            "ratio_max": max(prov_pos) if prov_pos else None,
            "exactly_optimal": sum(1 for x in prov_pos if x == 1.0),
            "proven_opt_zero": len(zero),
            "opt_zero_found": sum(1 for x in zero if x == 0),
            "opt_zero_max_excess": max(zero) if zero else None,
            "unproven": len(unproven),
            "beats_milp_incumbent": sum(1 for r in unproven
                                        if r["relaxed"][k]["errors"] < r["exact"]["errors"]),
        }
    splittable = [r for r in reductions if r["splittable"]]
    success = {v: {k: sum(1 for r in splittable if r[v]["relaxed"][k]["errors"] == 0)
                   for k in OPTIMIZERS} for v in ("and", "threshold")}
    return {
        "planted_instances": len(planted),
        "planted_timeouts": sum(1 for r in planted if r["status"] != "optimal"),
        "timing": timing, "relaxation_vs_opt": ratios,
        "reduction_instances": len(reductions), "reduction_splittable": len(splittable),
        "reduction_timeouts": sum(1 for r in reductions if r["status"] != "optimal"),
        "reduction_success": success,
        "reduction_max_time_s": max((r[v]["exact"]["time_s"] for r in reductions
                                     for v in ("and", "threshold")), default=None),
    }


def _warm_up() -> None:
    """Import cvxpy/HiGHS/torch and solve a tiny MILP so no timed solve pays the import."""
    exact_train(np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0]]), np.array([1, -1, 1]),
                time_limit=10)
    relaxed_train(np.array([[0.0], [1.0]]), np.array([1, -1]), restarts=1, steps=1)


def run_study(options: StudyOptions | None = None, out_dir=None, *,
              progress: Callable[[str], None] | None = None,
              command: list[str] | None = None) -> dict:
    """Run the case study; return the results dict and, with ``out_dir``, write the report.

    Writes ``results.json`` (the source of truth), ``report.md`` and the figures (SVG) into
    ``out_dir``. Options are validated and ``out_dir`` checked writable before any work.
    Deterministic in ``options.seed`` except wall-clock times and what a time limit cuts off.
    """
    opts = (options or StudyOptions()).validate()
    path = check_out_dir(out_dir) if out_dir is not None else None
    say = progress or (lambda msg: None)
    start = _dt.datetime.now(_dt.timezone.utc)
    t0 = time.perf_counter()
    _warm_up()
    exhaustive = _exhaustive_rows(opts, say)
    reductions = _reduction_rows(opts, say)
    planted = _planted_rows(opts, say)
    end = _dt.datetime.now(_dt.timezone.utc)
    results = {
        "schema": SCHEMA,
        "study": "two-layer-hardness",
        "title": "Hardness of small two-layer networks (Blum & Rivest 1992)",
        "provenance": {
            "versions": _versions(), "seed": opts.seed,
            "options": dataclasses.asdict(opts),
            "start": start.isoformat(timespec="seconds"),
            "end": end.isoformat(timespec="seconds"),
            "duration_s": time.perf_counter() - t0,
            "platform": platform.platform(), "machine": platform.machine(),
            "cpu_count": os.cpu_count(), "torch_threads": 1, "command": command,
            "solver": "HiGHS through cvxpy (mip_rel_gap=0, mip_abs_gap=0.99, random_seed=0)",
            "grad_evals_unit": "per-example gradient evaluations (restarts × steps × batch)",
        },
        "planted": planted,
        "reductions": reductions,
        "exhaustive_checks": exhaustive,
    }
    results["checks"] = _checks(planted, reductions, exhaustive)
    results["summary"] = _summary(planted, reductions, opts)
    text = json.dumps(results, indent=1, allow_nan=False)
    results = json.loads(text)  # what is returned and rendered is exactly what the file holds
    if path is not None:
        from ...auditor.report import write_text_atomic
        from .report import render_report

        write_text_atomic(os.path.join(path, "results.json"), text + "\n")
        render_report(results, path)
    return results
