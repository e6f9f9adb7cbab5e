"""``approx-audit stability``: train on neighbouring datasets, measure divergence, check the
stability bounds."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from .exits import exit_code_for
from .options import (FAIL_ON, build_workload, check_out, command_line, optimizer_options,
                      optimizer_spec, parse_assume, parse_bound_ids, progress_bar,
                      resolve_device, workload_option_decorator, workload_request)
from .output import summary_table, write_run_reports


@click.command("stability")
@workload_option_decorator(with_steps=True)
@optimizer_options
@click.option("--pairs", "-P", type=click.IntRange(min=1), default=5, show_default=True,
              help="Pairs of neighbouring datasets (S, S').")
@click.option("--mode", type=click.Choice(["random", "adversarial"]), default="random",
              show_default=True, help="Which example is replaced: at random, or the one with "
                                      "the largest gradient at the start.")
@click.option("--holdout", type=float, default=0.2, show_default=True,
              help="Share of the data held out to measure loss differences.")
@click.option("--bounds", "bounds_", help="Stability bound ids (default: the catalogue's).")
@click.option("--assume", multiple=True, help="Assert a constant, NAME=VALUE.")
@click.option("--out", "-o", type=click.Path(file_okay=False, path_type=Path),
              default=Path("stability"), show_default=True)
@click.option("--format", "fmt", type=click.Choice(["text", "json", "html", "md", "none"]),
              default="text", show_default=True)
@click.option("--fail-on", type=click.Choice(FAIL_ON), default="violated", show_default=True)
@click.option("--quiet", is_flag=True, help="No progress bar (drawn only on a terminal).")
def stability(workload, workload_option, model, data, loss, seed, dtype, device, steps,
              batch_size, optimizer, lr, momentum, nesterov, beta1, beta2, eps, alpha,
              weight_decay, schedule, pairs, mode, holdout, bounds_, assume, out, fmt, fail_on,
              quiet):
    """Train on S and on S' (one example replaced) with the same seed and sample order, for
    several pairs; measure the divergence and loss differences; rule on the stability bounds.

    \b
    approx-audit stability -w logistic -O sgd --lr 0.015 -B 8 -K 300 --pairs 6
    approx-audit stability -w mlp-digits -O sgd --lr 0.1 -B 32 -K 500 --mode adversarial

    Writes results.json (with a "stability" section) and the reports into --out.
    """
    from ..auditor.stability import stability_audit

    spec = optimizer_spec(optimizer, lr, momentum, nesterov, beta1, beta2, eps, alpha,
                          weight_decay, schedule)
    ids = parse_bound_ids(bounds_)
    assumed = parse_assume(assume)
    if not 0.0 < holdout < 0.9:             # before any work or progress line
        from ..bounds.errors import InvalidValueError
        raise InvalidValueError(f"--holdout {holdout:g} must be in (0, 0.9): the share of the "
                                "data held out to measure loss differences")
    check_out(out)
    dev = resolve_device(device)
    w = build_workload(workload_request(workload, workload_option, model, data, loss, seed,
                                        dtype), dev)
    click.echo(f"stability audit of {w.name} with {spec.label()}: {pairs} pair(s) × {steps} "
               f"steps, {mode} replacement → {out}", err=True)
    result = stability_audit(w, spec, steps=steps, batch_size=batch_size, pairs=pairs,
                             seed=seed, mode=mode, holdout=holdout, bounds=ids, assume=assumed,
                             out=out, device=dev,
                             command=command_line(click.get_current_context()),
                             progress=progress_bar(steps, pairs, quiet))
    write_run_reports(result.results, out, fmt)
    if fmt == "json":
        click.echo(json.dumps(result.results, indent=1))
    elif fmt == "md":
        click.echo((out / "report.md").read_text(encoding="utf-8"))
    else:
        click.echo(summary_table(result.results))
        st = result.results.get("stability") or {}
        es = st.get("early_stopping")
        if es:
            click.echo(f"\n  best early-stopping point by held-out loss: T = {es['k']} "
                       f"(generalization gap {es['generalization_gap']:.4g})")
    sys.exit(exit_code_for(result.status, result.counts, fail_on))
