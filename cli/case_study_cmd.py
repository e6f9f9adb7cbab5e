"""``approx-audit case-study ...``: run a case study and write its report.

Results (where they went, a summary table) go to stdout; progress goes to stderr. Bad options
raise a one-line error (exit 2); a failed agreement check (a bug in the study or the solver,
never a finding) exits 3 after the report has been written.
"""

from __future__ import annotations

import json
import sys

import click


def _int_list(text: str | None, name: str) -> tuple[int, ...] | None:
    from ..case_studies.two_layer_hardness.errors import StudyInputError

    if text is None:
        return None
    try:
        vals = tuple(int(v) for v in text.replace(" ", "").split(",") if v != "")
    except ValueError:
        raise StudyInputError(f"--{name} takes comma-separated integers such as 10,20,40; "
                              f"got {text!r}") from None
    if not vals:
        raise StudyInputError(f"--{name} needs at least one value, got {text!r}")
    return vals


@click.group("case-study")
def case_study() -> None:
    """Case studies that use the library as a user would, each producing a report."""


@case_study.command("two-layer-hardness")
@click.option("--quick", is_flag=True,
              help="CI-sized run (about a minute on 2 cores); explicit options override it.")
@click.option("--sizes", help="Planted instance sizes n, comma-separated (full: 10,...,160).")
@click.option("--dims", help="Planted input dimensions d, comma-separated (full: 2,4,8).")
@click.option("--reps", type=int, help="Planted instances per (n, d).")
@click.option("--time-limit", type=float, help="Seconds per MILP solve (full: 60).")
@click.option("--restarts", type=int, help="Random restarts of the relaxation (full: 16).")
@click.option("--steps", type=int, help="Optimizer steps per restart (full: 2000).")
@click.option("--elements", help="Set-Splitting sizes k for reduction instances (full: 6,...,14).")
@click.option("--noise", type=float, help="Fraction of planted labels flipped (default 0.1).")
@click.option("--output", "output_fn", type=click.Choice(["and", "threshold"]),
              help="Output unit of the planted teacher and of the trained network.")
@click.option("--seed", type=int, help="Master seed (default 0).")
@click.option("--out", "out_dir", default="out/two-layer-hardness", show_default=True,
              help="Folder for results.json, report.md and the figures.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="Summary on stdout as a table or as JSON.")
def two_layer_hardness(quick, sizes, dims, reps, time_limit, restarts, steps, elements, noise,
                       output_fn, seed, out_dir, fmt) -> None:
    """Exact (MILP) vs approximate (SGD/Adam) training of the Blum–Rivest 3-node network."""
    import dataclasses

    from ..case_studies.two_layer_hardness import QUICK, StudyOptions, run_study

    base = QUICK if quick else StudyOptions()
    given = {"sizes": _int_list(sizes, "sizes"), "dims": _int_list(dims, "dims"),
             "reps": reps, "time_limit": time_limit, "restarts": restarts, "steps": steps,
             "elements": _int_list(elements, "elements"), "noise": noise,
             "output": output_fn, "seed": seed}
    opts = dataclasses.replace(base, **{k: v for k, v in given.items() if v is not None})
    results = run_study(opts, out_dir, command=["approx-audit"] + sys.argv[1:],
                        progress=lambda msg: click.echo(msg, err=True))
    summary = results["summary"]
    checks = results["checks"]
    if fmt == "json":
        click.echo(json.dumps({"out": out_dir, "summary": summary,
                               "checks": [{k: c[k] for k in ("name", "status", "passed", "failed",
                                                             "inconclusive")} for c in checks]},
                              indent=2, allow_nan=False))
    else:
        _print_summary(results, out_dir)
    if any(c["status"] == "failed" for c in checks):
        from .exits import EXIT_INTERNAL

        click.echo("error: an agreement check failed (see report.md); this is a bug in the "
                   "study or the solver, not a finding", err=True)
        sys.exit(EXIT_INTERNAL)


def _print_summary(results: dict, out_dir: str) -> None:
    import os

    s = results["summary"]
    click.echo(f"results: {os.path.join(out_dir, 'results.json')}")
    click.echo(f"report:  {os.path.join(out_dir, 'report.md')}")
    click.echo("")
    click.echo(f"{'d':>3} {'n':>5} {'inst':>5} {'t/o':>4} {'median MILP s':>14} {'max s':>8}")
    for t in s["timing"]:
        med = ("≥" if t["median_is_lower_bound"] else " ") + f"{t['median_time_s']:.2f}"
        click.echo(f"{t['d']:>3} {t['n']:>5} {t['instances']:>5} {t['timeouts']:>4} "
                   f"{med:>14} {t['max_time_s']:>8.2f}")
    click.echo("")
    for k, r in s["relaxation_vs_opt"].items():
        name = "SGD " if k == "sgd" else "Adam"
        ratio = ("–" if r["ratio_median"] is None else
                 f"{r['ratio_min']:.2f}/{r['ratio_median']:.2f}/{r['ratio_max']:.2f}")
        click.echo(f"{name}: errors/OPT min/median/max {ratio} over {r['proven_opt_positive']} "
                   f"proven OPT>0; OPT=0 solved {r['opt_zero_found']}/{r['proven_opt_zero']}; "
                   f"beats timed-out MILP {r['beats_milp_incumbent']}/{r['unproven']}")
    split = s["reduction_splittable"]
    succ = s["reduction_success"]
    click.echo(f"reductions: {s['reduction_instances']} instances, {split} splittable; "
               f"consistent network found by SGD {succ['and']['sgd']}/{split}, "
               f"Adam {succ['and']['adam']}/{split} (AND), SGD {succ['threshold']['sgd']}/{split}, "
               f"Adam {succ['threshold']['adam']}/{split} (3-node with gadget)")
    click.echo("checks: " + ", ".join(f"{c['name']} {c['status']}" for c in results["checks"]))
