"""``approx-audit report``: render results.json (or the trace of an interrupted run) again."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..bounds.errors import ApproxAuditError


MAX_VERDICTS = 2000      # the catalogue has ~40 bounds; 28,000 verdicts is not an audit


def _load(path: Path) -> tuple[dict, str]:
    """(results, where they came from): a results.json, a trace.jsonl, or a folder of either."""
    from ..auditor.results import results_from_trace, validate_results

    if path.is_dir():
        if (path / "results.json").is_file():
            path = path / "results.json"
        elif (path / "trace.jsonl").is_file():
            path = path / "trace.jsonl"
        else:
            raise ApproxAuditError(f"{path} holds neither results.json nor trace.jsonl")
    if not path.is_file():
        raise ApproxAuditError(f"{path} does not exist; give a results.json, a trace.jsonl or "
                               "the folder of an audit")
    if path.suffix == ".jsonl":
        return results_from_trace(path), f"rebuilt from {path}"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ApproxAuditError(f"{path} is not JSON ({exc}); give a results.json written by "
                               "approx-audit run, or its trace.jsonl") from None
    except RecursionError:
        raise ApproxAuditError(f"{path} is nested too deeply to be a results.json; give one "
                               "written by approx-audit run") from None
    n = len(data.get("verdicts") or []) if isinstance(data, dict) else 0
    if n > MAX_VERDICTS:
        raise ApproxAuditError(f"{path} holds {n} verdicts; an audit rules on at most a few "
                               f"hundred bounds (refused above {MAX_VERDICTS})")
    validate_results(data, source=str(path))
    return data, str(path)


@click.command("report")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["html", "md", "json"]), default="html",
              show_default=True)
@click.option("--out", "-o", "out_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Output file (default: report.html / report.md beside the input; json: "
                   "stdout).")
@click.option("--redact", is_flag=True, help="Remove user, host and paths from provenance.")
@click.option("--compare", "compare_file", type=click.Path(dir_okay=False, path_type=Path),
              help="A compare.json (approx-audit compare) whose frontier the report shows.")
def report(path, fmt, out_file, redact, compare_file):
    """Render PATH (results.json, trace.jsonl of an interrupted run, or an audit folder).

    \b
    approx-audit report audit/                      # audit/report.html
    approx-audit report audit/trace.jsonl --format md
    approx-audit report audit/results.json --redact --out shared/report.html
    """
    from ..auditor.report import (PLOT_DIR, redact as do_redact, render_html, render_markdown,
                                  write_text_atomic)
    from ..auditor.report.render import _svg_file

    results, source = _load(path)
    compare = None
    if compare_file is not None:
        try:
            compare = json.loads(compare_file.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ApproxAuditError(f"--compare {compare_file}: {exc}") from None
    if redact:
        results = do_redact(results)
    base = path if path.is_dir() else path.parent
    if fmt == "json":
        text = json.dumps(results, indent=1)
        if out_file is None:
            click.echo(text)
            return
        write_text_atomic(out_file, text + "\n")
        click.echo(f"wrote {out_file} ({source})", err=True)
        return
    if fmt == "html":
        target = out_file or base / "report.html"
        write_text_atomic(target, render_html(results, compare=compare))
        click.echo(f"wrote {target} ({source})", err=True)
        return
    target = out_file or base / "report.md"
    md, files = render_markdown(results, compare=compare)
    for name, svg in files.items():
        write_text_atomic(target.parent / PLOT_DIR / name, _svg_file(svg))
    write_text_atomic(target, md)
    click.echo(f"wrote {target} and {len(files)} plot(s) in {target.parent / PLOT_DIR} "
               f"({source})", err=True)
