"""Rendering of ``results.json`` into ``report.md`` and three SVG figures beside it.

:func:`render_report` is the one entry point; it only reads the results dict (nothing here
computes: every number printed is looked up or is a plain formatting of one that was
measured), so a report rebuilt from the file is byte-identical to the first.

What comes from the library, as a user would take it: every file is written with
:func:`approx_audit.auditor.report.write_text_atomic` (a temporary file, then a rename), the
series colours are its :data:`~approx_audit.auditor.report.plots.PALETTE`, and figures follow its
plotting rule (``matplotlib.figure.Figure`` on an explicit Agg canvas inside
``rc_context``: no pyplot, no global state). Why not the library's report itself: its
templates and :func:`~approx_audit.auditor.report.report_context` render an *audit's*
``results.json`` (verdicts on bounds, probes, constants; ``check_results`` refuses anything
else), while this study's document holds MILP optima, certified ratios and agreement checks;
and its Jinja environment is private to :mod:`approx_audit.auditor.report.render` and bound to
the audit templates, so the study's tables are built here, one small function per section.
SVG output is deterministic: fixed ``svg.hashsalt`` and no date in the metadata.
"""

from __future__ import annotations

import io
import os

import numpy as np

from ...auditor.report import write_text_atomic
from ...auditor.report.plots import PALETTE

FIGURES = {"time": "exact_time_vs_n.svg", "ratio": "ratio_vs_grad_evals.svg",
           "success": "reduction_success.svg"}
COLORS = {"sgd": PALETTE[0], "adam": PALETTE[1]}

THEOREM = (
    "**Theorem (Blum & Rivest 1992; NIPS 1988).** Consider the network with n inputs, two "
    "hidden linear-threshold units and one linear-threshold output unit (an *arbitrary* "
    "threshold function of the two hidden outputs). Given O(n) labelled examples, deciding "
    "whether weights exist that classify every example correctly is NP-complete. The special "
    "case with AND output (\"2-linear confinement of positive Boolean examples\") is "
    "NP-complete as well; the proof reduces Set-Splitting to it: the origin is labelled +, "
    "every unit vector e_i −, every subset's indicator vector +, and a 6-point gadget in 3 "
    "extra coordinates rules out the other output functions.\n\n"
    "A. Blum, R. L. Rivest, *Training a 3-node neural network is NP-complete*, Neural "
    "Networks 5(1):117–127, 1992 (doi:10.1016/S0893-6080(05)80010-3).")

CAVEATS = [
    "**Not a demonstration of NP-hardness.** NP-completeness is a worst-case statement about "
    "every algorithm. Solve times that grow on random instances are evidence about *this* "
    "solver (HiGHS), *this* big-M formulation (whose LP relaxation bound is ≈ 0) and *these* "
    "instance distributions — not a proof of anything.",
    "**For fixed d the problem is polynomial in n** (Megiddo 1988): the d = 2 exhaustive search "
    "used as a check here runs in O(n⁵). Growth at fixed d is a property of branch-and-bound, "
    "not of the problem. Hardness needs d to grow with n, as in the reduction.",
    "**Reduction instances are not hard instances.** The reduction carries worst-case, not "
    "average-case, hardness; small random Set-Splitting instances are solved quickly.",
    "**No approximation ratio is guaranteed.** Deciding OPT = 0 is NP-hard, so unless P = NP "
    "no polynomial-time method has any finite multiplicative ratio errors/OPT; Khot & Saket "
    "(STOC 2008) rule out even accuracy 1/2 + ε when OPT = 0 (unless NP = RP). The ratios "
    "reported here are empirical, on these distributions only. When OPT = 0 the additive excess is "
    "reported; when the MILP timed out, only a certified range.",
    "**Exactness of the MILP rests on a margin ε.** Strict inequalities are replaced by a "
    "margin ε; this can only raise the optimum, and is exact when some optimal network has "
    "normalised margin ≥ ε. It is checked against the ε-free exhaustive search for d = 2 and "
    "against Set-Splitting ground truth, not proved for every planted instance.",
    "**Timings are specific** to this machine, HiGHS version, cvxpy's compilation and the "
    "time limit; time-outs are censored observations (the true time is larger), kept as rows "
    "and drawn as crosses, never dropped or extrapolated.",
    "**The sigmoid relaxation is a surrogate** for training the threshold network; it says "
    "nothing about the hardness of training sigmoid networks (a different question).",
]


def _fmt(x, digits=2):
    if x is None:
        return "–"
    if isinstance(x, float):
        if x == int(x) and abs(x) < 1e6 and digits == 0:
            return str(int(x))
        return f"{x:.{digits}f}"
    return str(x)


def _set(values) -> str:
    return "{" + ", ".join(str(v) for v in values) + "}"


def _table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _best_so_far(rec: dict) -> tuple[np.ndarray, np.ndarray]:
    """Gradient evaluations and the fewest errors of any hard network seen by then."""
    errs = np.array(rec["checkpoint_errors"]).min(axis=0)
    return np.array(rec["checkpoint_grad_evals"]), np.minimum.accumulate(errs)


def _new_figure(ncols: int = 1, figsize=(6, 4)):
    """A figure on its own Agg canvas (no pyplot: nothing global is touched) and its axes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig, fig.subplots(1, ncols)


def _save(fig, out_dir: str, key: str) -> None:
    fig.tight_layout()
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None})
    write_text_atomic(os.path.join(out_dir, FIGURES[key]), buf.getvalue())


def _time_figure(planted: list, tl: float, out_dir: str) -> None:
    """Exact solve time vs n, one series per d; time-outs as crosses at their time."""
    import matplotlib

    fig, ax = _new_figure()
    dims = sorted({r["d"] for r in planted})
    cmap = matplotlib.colormaps["viridis"].resampled(max(len(dims), 2))
    for j, d in enumerate(dims):
        rs = [r for r in planted if r["d"] == d]
        ns = sorted({r["n"] for r in rs})
        med = [np.median([r["exact"]["time_s"] for r in rs if r["n"] == n]) for n in ns]
        ax.plot(ns, med, "-", color=cmap(j), label=f"MILP, d = {d} (median)")
        ok = [r for r in rs if r["status"] == "optimal"]
        to = [r for r in rs if r["status"] != "optimal"]
        ax.plot([r["n"] for r in ok], [r["exact"]["time_s"] for r in ok], "o",
                color=cmap(j), ms=4, alpha=0.7)
        ax.plot([r["n"] for r in to], [r["exact"]["time_s"] for r in to], "x",
                color="tab:red", ms=7, mew=1.5)
    ns = sorted({r["n"] for r in planted})
    rel = [np.median([r["relaxed"]["adam"]["time_s"] for r in planted if r["n"] == n])
           for n in ns]
    ax.plot(ns, rel, "--", color="grey", label="Adam relaxation, all restarts (median)")
    ax.axhline(tl, color="tab:red", lw=0.8, ls=":", label=f"time limit {tl:g} s")
    ax.plot([], [], "x", color="tab:red", label="time-out (true time is larger)")
    ax.set_yscale("log")
    ax.set_xlabel("n (points)")
    ax.set_ylabel("wall time (s)")
    ax.set_title("Exact training (MILP, AND-output 3-node network)")
    ax.legend(fontsize=7)
    _save(fig, out_dir, "time")


def _ratio_curves(planted: list, a1, a2) -> None:
    """Best-so-far ratio (OPT > 0 proven) on ``a1``, additive excess (OPT = 0) on ``a2``, and
    the certified range at the final cost where the MILP timed out."""
    unproven = [r["name"] for r in planted if not r["opt_proven"]]
    for r in planted:
        for k in ("sgd", "adam"):
            g, e = _best_so_far(r["relaxed"][k])
            c = r["certified"][k]
            if r["opt_proven"] and r["opt_lower"] > 0:
                a1.plot(g, e / r["opt_lower"], color=COLORS[k], alpha=0.35, lw=1)
            elif r["opt_proven"]:
                a2.plot(g, e, color=COLORS[k], alpha=0.35, lw=1)
            else:
                lo = c["ratio_low"] or 0.0
                hi = c["ratio_high"]
                top = hi if hi is not None else a1.get_ylim()[1]
                j = unproven.index(r["name"]) + 1  # spread the bars so none hides another
                a1.vlines(g[-1] * 1.07 ** (j if k == "adam" else -j), lo, top,
                          color=COLORS[k], lw=2, alpha=0.8)


def _ratio_figure(planted: list, out_dir: str) -> None:
    """Ratio and additive excess vs gradient evaluations (see :func:`_ratio_curves`)."""
    fig, (a1, a2) = _new_figure(2, figsize=(9, 3.8))
    _ratio_curves(planted, a1, a2)
    a1.axhline(1, color="k", lw=0.8)
    for k in ("sgd", "adam"):
        a1.plot([], [], color=COLORS[k], label=k.upper() if k == "sgd" else "Adam")
    a1.plot([], [], color="grey", lw=2.5, label="certified range (MILP timed out)")
    a1.set_xscale("log")
    a1.set_xlabel("gradient evaluations (per example, all restarts)")
    a1.set_ylabel("errors / OPT (best so far)")
    a1.set_title("OPT > 0 (proven) or bracketed")
    a1.legend(fontsize=7)
    a2.set_xscale("log")
    a2.set_xlabel("gradient evaluations (per example, all restarts)")
    a2.set_ylabel("errors − OPT (OPT = 0)")
    a2.set_title("OPT = 0: additive excess")
    _save(fig, out_dir, "ratio")


def _success_figure(reductions: list, out_dir: str) -> None:
    """Success rate on splittable reduction instances vs gradient evaluations."""
    fig, ax = _new_figure(figsize=(6, 3.8))
    split = [r for r in reductions if r["splittable"]]
    for variant, style, what in (("and", "-", "AND output, no gadget"),
                                 ("threshold", "--", "threshold output, gadget")):
        for k in ("sgd", "adam"):
            if not split:
                break
            curves = [_best_so_far(r[variant]["relaxed"][k]) for r in split]
            rate = np.mean([c[1] == 0 for c in curves], axis=0)
            ax.plot(curves[0][0], rate, style, marker="o" if k == "sgd" else "s",
                    color=COLORS[k], ms=3, alpha=0.85,
                    label=f"{'SGD' if k == 'sgd' else 'Adam'}, {what}")
    ax.axhline(1.0, color="k", lw=0.8, ls=":", label="MILP (exact; when it finishes)")
    ax.set_xscale("log")
    ax.set_ylim(-0.03, 1.05)
    ax.set_xlabel("gradient evaluations (per example, all restarts)")
    ax.set_ylabel("fraction with a consistent network")
    ax.set_title(f"Splittable Blum–Rivest instances ({len(split)} instances)")
    ax.legend(fontsize=7)
    _save(fig, out_dir, "success")


def _figures(results: dict, out_dir: str) -> None:
    import matplotlib

    with matplotlib.rc_context({"svg.hashsalt": "approx-audit", "font.size": 9}):
        _time_figure(results["planted"], results["provenance"]["options"]["time_limit"],
                     out_dir)
        _ratio_figure(results["planted"], out_dir)
        _success_figure(results["reductions"], out_dir)


def _md_intro(results: dict) -> list[str]:
    """Title, headline, the theorem and what was run."""
    prov, summ = results["provenance"], results["summary"]
    opts = prov["options"]
    v = prov["versions"]
    out = [f"# {results['title']}", ""]
    checks_ok = all(c["status"] == "passed" for c in results["checks"])
    out += [f"**{summ['planted_instances']} planted instances "
            f"({summ['planted_timeouts']} MILP time-outs at {opts['time_limit']:g} s), "
            f"{summ['reduction_instances']} reduction instances "
            f"({summ['reduction_splittable']} splittable); agreement checks: "
            f"{'all passed' if checks_ok else 'NOT all passed — see below'}.**", ""]
    out += ["## The theorem", "", THEOREM, ""]
    out += ["## What was run", "",
            f"* Planted: x ~ N(0, I_d), labels from a random 3-node network "
            f"(output {opts['output'].upper() if opts['output'] == 'and' else 'threshold'}), "
            f"{opts['noise']:.0%} of labels flipped; n ∈ {_set(opts['sizes'])}, "
            f"d ∈ {_set(opts['dims'])}, "
            f"{opts['reps']} instance(s) each.",
            f"* Reductions: random Set-Splitting with k ∈ {_set(opts['elements'])} elements and "
            f"round({opts['subset_ratio']}·k) random 3-subsets, {opts['reduction_reps']} each, "
            "plus all 3-subsets of 5 elements and the Fano plane (unsplittable) and all "
            "3-subsets of 4 (splittable); each as AND instance (no gadget) and as full 3-node "
            "instance (gadget, any threshold output).",
            f"* Exact: MILP (hardness.md §2.2–2.3) via cvxpy {v.get('cvxpy')} + HiGHS "
            f"(highspy {v.get('highspy')}), margin ε = {opts['eps']:g}, time limit "
            f"{opts['time_limit']:g} s per MILP; every answer re-evaluated in numpy.",
            f"* Approximate: SGD and Adam on the sigmoid relaxation (torch {v.get('torch')}), "
            f"{opts['restarts']} restarts × {opts['steps']} steps, minibatch "
            f"{opts['batch_size']}; scored as the hardened (threshold) network. Compute is "
            "counted in per-example gradient evaluations over all restarts.", ""]
    return out


def _md_checks_and_timing(results: dict) -> list[str]:
    """The agreement checks (and what failed), then the exact-training time table."""
    summ = results["summary"]
    out = ["## Agreement checks", "",
           _table(["check", "status", "passed", "failed", "inconclusive", "what"],
                  [[c["name"], c["status"], c["passed"], c["failed"], c["inconclusive"],
                    c["description"]] for c in results["checks"]]), ""]
    for c in results["checks"]:
        if c["failures"]:
            out.append(f"* {c['name']} failed on: {', '.join(c['failures'])}")
    out.append("")
    out += ["## Exact training time", "", f"![exact time vs n]({FIGURES['time']})", "",
            "Median over instances; a median marked ≥ is censored (half or more of its "
            "instances timed out, so the true median is at least the value shown).", "",
            _table(["d", "n", "instances", "time-outs", "median MILP time (s)",
                    "max (s)", "median Adam time (s)"],
                   [[t["d"], t["n"], t["instances"], t["timeouts"],
                     ("≥ " if t["median_is_lower_bound"] else "") + _fmt(t["median_time_s"]),
                     _fmt(t["max_time_s"]), _fmt(t["median_relaxed_time_s"]["adam"])]
                    for t in summ["timing"]]), ""]
    return out


def _md_ratio_cell(c: dict) -> str:
    """A relaxation's ratio to OPT, its additive excess (OPT = 0) or its certified range."""
    if c["opt_proven"]:
        return _fmt(c["ratio"]) if c["ratio"] is not None else f"+{c['excess']}"
    hi = _fmt(c["ratio_high"]) if c["ratio_high"] is not None else "∞"
    return f"[{_fmt(c['ratio_low'])}, {hi}]"


def _md_approximate(results: dict) -> list[str]:
    """Relaxation vs the exact optimum: the summary table, then one row per instance."""
    out = ["## Approximate vs exact training", "", f"![ratio vs gradient evaluations]"
           f"({FIGURES['ratio']})", ""]
    rows = []
    for k, s in results["summary"]["relaxation_vs_opt"].items():
        rows.append([k.upper() if k == "sgd" else "Adam", s["proven_opt_positive"],
                     _fmt(s["ratio_min"]), _fmt(s["ratio_median"]), _fmt(s["ratio_max"]),
                     s["exactly_optimal"], f"{s['opt_zero_found']}/{s['proven_opt_zero']}",
                     _fmt(s["opt_zero_max_excess"]),
                     f"{s['beats_milp_incumbent']}/{s['unproven']}"])
    out += [_table(["optimizer", "OPT>0 proven", "ratio min", "median", "max", "ratio = 1",
                    "OPT=0: found 0", "OPT=0: max excess", "beats timed-out MILP incumbent"],
                   rows), ""]
    out += ["Per instance (errors of the best hardened network; OPT or its certified range "
            "[lower bound, best verified network]):", ""]
    prow = []
    for r in results["planted"]:
        opt = (str(r["opt_lower"]) if r["opt_proven"]
               else f"[{r['opt_lower']}, {r['opt_upper']}]")
        cells = [r["name"], r["status"], _fmt(r["exact"]["time_s"]), r["exact"]["errors"], opt,
                 r["teacher_errors"]]
        for k in ("sgd", "adam"):
            cells += [r["certified"][k]["errors"], _md_ratio_cell(r["certified"][k])]
        prow.append(cells)
    out += [_table(["instance", "MILP status", "time (s)", "MILP errors", "OPT", "teacher",
                    "SGD", "SGD ratio", "Adam", "Adam ratio"], prow), ""]
    return out


def _md_reductions(results: dict) -> list[str]:
    """The reduction instances: success counts, then one row per instance."""
    split = results["summary"]["reduction_splittable"]
    succ = results["summary"]["reduction_success"]
    out = ["## Reduction instances", "", f"![success on reduction instances]"
           f"({FIGURES['success']})", "",
           f"On the {split} splittable instances a consistent network exists (Blum & Rivest's "
           "weights and the MILP both confirm it when the MILP finishes). The relaxation found "
           f"one in {succ['and']['sgd']}/{split} (SGD) and {succ['and']['adam']}/{split} (Adam) "
           "cases on the AND instances (no gadget), and in "
           f"{succ['threshold']['sgd']}/{split} (SGD) and {succ['threshold']['adam']}/{split} "
           "(Adam) cases on the full 3-node instances (gadget, threshold output). Columns "
           "SGD/Adam give the fewest errors of the hardened network (AND / 3-node).", ""]
    rrow = []
    for r in results["reductions"]:
        a, t = r["and"], r["threshold"]
        rrow.append([r["name"], f"{r['n_elements']}/{r['n_subsets']}",
                     "yes" if r["splittable"] else "no", f"{t['n']}×{t['d']}",
                     f"{a['exact']['errors']} ({a['status']})",
                     f"{t['exact']['errors']} ({t['status']})", _fmt(t["exact"]["time_s"]),
                     _fmt(t["blum_rivest_errors"]),
                     f"{a['relaxed']['sgd']['errors']} / {t['relaxed']['sgd']['errors']}",
                     f"{a['relaxed']['adam']['errors']} / {t['relaxed']['adam']['errors']}"])
    out += [_table(["instance", "k/m", "splittable", "n×d (gadget)", "OPT AND", "OPT 3-node",
                    "time (s)", "Blum–Rivest weights", "SGD", "Adam"], rrow), ""]
    return out


def _md_closing(results: dict) -> list[str]:
    """The d = 2 exhaustive check, the caveats and the provenance table."""
    prov = results["provenance"]
    opts, v = prov["options"], prov["versions"]
    ex = results["exhaustive_checks"]
    out = ["## Independent check: exhaustive search (d = 2)", "",
           _table(["instance", "output", "dichotomies", "exhaustive OPT", "MILP OPT", "status"],
                  [[r["name"], r["output"], r["exhaustive"]["n_dichotomies"],
                    r["exhaustive"]["errors"], r["exact"]["errors"], r["status"]] for r in ex]),
           ""]
    out += ["## What the measurements show and do not show", ""]
    out += [f"* {c}" for c in CAVEATS]
    out += ["", "## Provenance", "",
            _table(["item", "value"],
                   [["start / end (UTC)", f"{prov['start']} / {prov['end']}"],
                    ["duration (s)", _fmt(prov["duration_s"], 1)],
                    ["seed", prov["seed"]], ["quick mode", opts["quick"]],
                    ["command", " ".join(prov["command"]) if prov.get("command") else "–"],
                    ["platform", prov["platform"]], ["CPUs", prov["cpu_count"]],
                    ["solver", prov["solver"]],
                    ["versions", ", ".join(f"{k} {val}" for k, val in v.items())]]),
            "", "`results.json` beside this file holds every number above, per instance.", ""]
    return out


def _markdown(results: dict) -> str:
    sections = (_md_intro, _md_checks_and_timing, _md_approximate, _md_reductions, _md_closing)
    return "\n".join(line for section in sections for line in section(results))


def render_report(results: dict, out_dir: str) -> dict:
    """Write ``report.md`` and the SVG figures for ``results`` into ``out_dir``; return paths."""
    _figures(results, out_dir)
    path = os.path.join(out_dir, "report.md")
    write_text_atomic(path, _markdown(results))
    return {"report": path, **{k: os.path.join(out_dir, f) for k, f in FIGURES.items()}}
