"""``approx-audit compare``: several optimizers on one workload, quality against gradient evaluations."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ..auditor.observables import KEY
from .exits import EXIT_INTERNAL
from .options import (build_sinks, build_workload, check_out, command_line, resolve_device,
                      workload_option_decorator, workload_request)


compare_workload_options = workload_option_decorator(with_steps=False)


def write_compare_reports(cmp: dict) -> list[Path]:
    """Every optimizer's audit gets report.html/report.md with the comparison (table and
    frontier); --out/report.html and report.md are those of the optimizer with the best final
    quality. A report that cannot be rendered is skipped with a note on stderr."""
    from ..auditor.report import write_reports

    written: list[Path] = []
    best, best_q = None, None
    for o in cmp.get("optimizers", []):
        folder = Path(o["out"])
        res = folder / "results.json"
        if not res.is_file():
            continue
        try:
            results = json.loads(res.read_text(encoding="utf-8"))
            written += write_reports(results, folder, compare=cmp)
        except Exception as exc:  # noqa: BLE001 - the comparison itself is already written
            click.echo(f"note: no report for {o['label']}: {type(exc).__name__}: {exc}",
                       err=True)
            continue
        q = (o.get("final") or {}).get("quality")
        if q is not None and (best_q is None or q < best_q):
            best, best_q = (folder, results), q
    if best is not None:
        written += write_reports(best[1], Path(cmp["out"]), compare=cmp)
    return written


def _g(x, digits: int = 3) -> str:
    return "—" if x is None else f"{x:.{digits}e}"


def _frac(f: float) -> str:
    return f"{f:g}×Q0"


def compare_table(d: dict) -> str:
    """The text rendering of ``compare.json``'s content."""
    lines = []
    b = d["budget"]
    w = d["workload"]
    batch = ("full batch" if b["batch_size"] is None else
             f"minibatch B={b['batch_size']}: one gradient evaluation = {b['batch_size']} "
             "example gradients")
    lines.append(f"approx-audit compare: {w['name']}, budget {b['grad_evals']} gradient "
                 f"evaluations ({batch}), {d['seeds']} seed(s), checkpoint every "
                 f"{d['checkpoint_every']} step(s) — status {d['status']}")
    q = d["quality"]
    lines.append(f"  quality: {q['description']}" + (" (mean over seeds)" if d["seeds"] > 1
                                                      else "") + "; lower is better")
    if q["ratio"]:
        lines.append(f"  also: {q['ratio_description']} (column F/f*)")
    init = next((o["initial"] for o in d["optimizers"] if o["initial"]), None)
    if init is not None:
        lines.append(f"  initial quality Q0 = {_g(init['quality'])} (F = {init[KEY.full_loss]:.6g})")
    lines.append("")
    rows = []
    head = ["#", "optimizer", "status", "final", "best", "best at"]
    if q["ratio"]:
        head.append("F/f* final")
    head += [f"≤{_frac(t)}" for t in d["targets"]] + ["frontier"]
    for o in d["optimizers"]:
        fin, best = o["final"], o["best"]
        row = [str(o["index"]), o["label"], o["status"],
               _g(fin["quality"]) if fin else "—", _g(best["quality"]) if best else "—",
               str(best["grad_evals"]) if best else "—"]
        if q["ratio"]:
            row.append(f"{fin['ratio']:.6g}" if fin and fin.get("ratio") is not None else "—")
        for t in o["targets"]:
            if t["target"] is None:
                row.append("n/a")
            else:
                row.append("not reached" if t["grad_evals"] is None else str(t["grad_evals"]))
        row.append(f"yes ({o['frontier_points']})" if o["on_frontier"] else "no")
        rows.append(row)
    widths = [max(len(r[i]) for r in [head] + rows) for i in range(len(head))]
    left = {1, 2}
    for r in [head] + rows:
        lines.append("  " + "  ".join(c.ljust(widths[i]) if i in left else c.rjust(widths[i])
                                      for i, c in enumerate(r)).rstrip())
    lines.append("  (final/best: quality at the last checkpoint and the lowest; best at and "
                 "≤t×Q0: training gradient evaluations, first checkpoint reaching it)")
    for o in d["optimizers"]:
        if o["status"] != "completed" and o.get("message"):
            lines.append(f"  {o['index']} {o['label']}: {o['message']}")
    lines.append("")
    front = d["frontier"]
    if len(d["optimizers"]) == 1:
        lines.append("Pareto frontier: trivial with one optimizer (its own non-increasing "
                     "envelope)")
    else:
        lines.append(f"Pareto frontier (gradient evaluations → quality), {len(front)} "
                     "point(s), by segment:")
    seg: list[dict] = []
    segments = []
    for p in front:
        if seg and seg[-1]["optimizer"] != p["optimizer"]:
            segments.append(seg)
            seg = []
        seg.append(p)
    if seg:
        segments.append(seg)
    for s in segments:
        a, z = s[0], s[-1]
        span = (f"{a['grad_evals']}" if a is z else f"{a['grad_evals']}–{z['grad_evals']}")
        qs = _g(a["quality"]) if a is z else f"{_g(a['quality'])} → {_g(z['quality'])}"
        lines.append(f"  grad evals {span:>11}  quality {qs:<23}  {s[0]['optimizer']} "
                     f"{s[0]['label']}  ({len(s)} point{'s' if len(s) > 1 else ''})")
    if not front:
        lines.append("  (no point: no optimizer got past its first step)")
    if d.get("message"):
        lines.append("")
        lines.append(f"  {d['message']}")
    return "\n".join(lines)


@click.command("compare")
@compare_workload_options
@click.option("--optimizer", "-O", "optimizers", multiple=True, required=True,
              help="An optimizer spec with its hyper-parameters inline, e.g. sgd:lr=0.5 or "
                   "adam:lr=0.01; give it once per optimizer.")
@click.option("--budget", type=int, required=True,
              help="Training gradient evaluations per optimizer (= steps; a minibatch step is "
                   "one gradient evaluation of B examples).")
@click.option("--seeds", type=click.IntRange(min=1), default=1, show_default=True,
              help="Runs per optimizer with different minibatch orders; quality is the mean.")
@click.option("--checkpoints", "-C", type=click.IntRange(min=1), default=50, show_default=True,
              help="About how many full-batch quality checkpoints per run.")
@click.option("--out", "-o", type=click.Path(file_okay=False, path_type=Path),
              default=Path("compare"), show_default=True)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True)
@click.option("--tensorboard", "tensorboard_dir", type=click.Path(file_okay=False,
                                                                  path_type=Path),
              help="Also write TensorBoard event files: DIR/NN-<label>/ per optimizer (needs "
                   "approx-audit[tensorboard]).")
@click.option("--quiet", is_flag=True, help="No progress bar (drawn only on a terminal).")
def compare(workload, workload_option, model, data, loss, seed, dtype, device, batch_size,
            optimizers, budget, seeds, checkpoints, out, fmt, tensorboard_dir, quiet):
    """Quality against gradient evaluations for several optimizers, and the Pareto frontier.

    \b
    approx-audit compare -w logistic -O sgd:lr=0.3 -O sgd:lr=0.3,momentum=0.9 \\
        -O defossez-adam:lr=0.05 --budget 300
    approx-audit compare -w mlp-digits -O sgd:lr=0.1 -O adam:lr=1e-3 -B 64 --budget 500

    Each optimizer is audited into --out/NN-<label>/ (trace.jsonl, results.json);
    --out/compare.json holds the comparison. Exit codes: 0 done (some runs may have diverged),
    2 usage or input error, 3 every run failed.
    """
    from ..auditor.compare import compare as run_compare
    from ..auditor.compare import distinct_specs
    from ..bounds.errors import InvalidValueError

    if budget < 1:
        raise InvalidValueError(f"--budget {budget}: give a positive number of gradient "
                                "evaluations, e.g. --budget 300")
    specs = distinct_specs(optimizers)   # unknown names, duplicates: one-line error, exit 2
    check_out(out)
    dev = resolve_device(device)
    w = build_workload(workload_request(workload, workload_option, model, data, loss, seed,
                                        dtype), dev)
    if len(specs) == 1:
        click.echo("note: one optimizer: the frontier is trivial", err=True)
    click.echo(f"comparing {len(specs)} optimizer(s) on {w.name} ({dev}): budget {budget} "
               f"gradient evaluations each → {out}", err=True)
    # a missing package: a one-line error, exit 2, before any work (a sink opens no file
    # until its first record)
    build_sinks(budget, seeds, tensorboard_dir, None, True)

    def sinks_for(curve) -> list:
        tb = None if tensorboard_dir is None else tensorboard_dir / curve.out.name
        return build_sinks(budget, seeds, tb, None, quiet)
    try:
        result = run_compare(w, specs, budget, batch_size=batch_size, seeds=seeds, seed=seed,
                             checkpoints=checkpoints, out=out, device=dev,
                             command=command_line(click.get_current_context()),
                             progress=lambda m: click.echo(m, err=True), sinks_for=sinks_for)
    except KeyboardInterrupt as exc:
        result = getattr(exc, "compare_result", None)
        if result is None:
            raise
    data_ = result.to_dict()
    reports = write_compare_reports(data_)
    if fmt == "json":
        click.echo(json.dumps(json.loads((out / "compare.json").read_text(encoding="utf-8")),
                              indent=1))
    else:
        click.echo(compare_table(data_))
    n_reports = sum(p.name == "report.html" for p in reports)
    click.echo(f"wrote {out / 'compare.json'}" + (f" and {n_reports} HTML report(s) with the "
                                                 f"comparison; {out / 'report.html'} is the "
                                                 "best optimizer's" if n_reports else ""),
               err=True)
    if result.status in ("failed", "interrupted"):
        sys.exit(EXIT_INTERNAL)
    sys.exit(0)
