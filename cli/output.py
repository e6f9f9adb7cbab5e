"""What the audit commands print and write after a run: the summary table, the reports
beside results.json, the results on stdout as ``--format`` asks."""

from __future__ import annotations

import json
from pathlib import Path

import click

def _short(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def summary_table(results: dict) -> str:
    lines = []
    c = results["counts"]
    w = results["workload"]["name"]
    lines.append(f"approx-audit: {w} with {results['optimizer']['label']}, "
                 f"{results['config']['steps']} steps × {results['config']['seeds']} seed(s) — "
                 f"status {results['status']}")
    lines.append("  " + ", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in c.items()))
    g = results["gradient_evaluations"]
    ratio = g.get("overhead_ratio")
    lines.append(f"  gradient evaluations: training {g['train_grad_evals']}, audit "
                 f"{g['probe_grad_evals']}" + (f" ({ratio:.2f}× training)" if ratio is not None
                                               else ""))
    lines.append("")
    method = results["config"].get("method")
    if not results["verdicts"] and method in ("dpsgd", "local-sgd", "easgd"):
        lines.append(f"  --method {method}: no catalogue bound covers this method (their "
                     "constants are not confirmed); see the consensus probes in the trace")
    elif not results["verdicts"]:
        from ..auditor.judge.selection import why_no_bound

        lines.append("  no catalogue bound matches this run: "
                     + why_no_bound(results["optimizer"], bool(results.get("full_batch"))))
    width = max([len(v["id"]) for v in results["verdicts"]] + [5])
    if results["verdicts"]:
        lines.append(f"  {'bound':<{width}}  {'verdict':<14}  {'pred/obs':>9}  reason")
    for v in results["verdicts"]:
        loose = (v.get("looseness") or {}).get("final")
        ls = "—" if loose is None else f"{loose:.3g}"
        lines.append(f"  {v['id']:<{width}}  {v['verdict']:<14}  {ls:>9}  "
                     f"{_short(v['reason'], 110)}")
    if results.get("message"):
        lines.append("")
        lines.append(f"  {results['message']}")
    return "\n".join(lines)


def write_run_reports(results: dict, out: Path, fmt: str) -> list[Path]:
    """report.html / report.md beside results.json as --format asks; the Markdown summary is
    appended to $GITHUB_STEP_SUMMARY when that is set. A failed render is reported on stderr
    and never loses the results already written."""
    from ..auditor.report import append_step_summary, write_reports

    formats = {"text": ("html", "md"), "json": ("html", "md"), "html": ("html",),
               "md": ("md",), "none": ()}[fmt]
    written: list[Path] = []
    try:
        if formats:
            written = [p for p in write_reports(results, out, formats)
                       if p.name in ("report.html", "report.md")]
        append_step_summary(results)
    except Exception as exc:  # noqa: BLE001 - the audit's results are already on disk
        click.echo(f"error: the report could not be rendered ({type(exc).__name__}: {exc}); "
                   f"results.json is intact — retry with approx-audit report {out}", err=True)
    return written


def echo_results(results: dict, out: Path, fmt: str, written: list[Path]) -> None:
    """The results on stdout as ``--format`` asks (JSON, the Markdown report, or the summary
    table) and the files written on stderr."""
    if fmt == "json":
        click.echo(json.dumps(results, indent=1))
    elif fmt == "md":
        click.echo((out / "report.md").read_text(encoding="utf-8"))
    else:
        click.echo(summary_table(results))
    names = ", ".join(str(p) for p in [out / "trace.jsonl", out / "results.json", *written])
    click.echo(f"wrote {names}", err=True)
