"""What the report templates show, computed from a ``results.json`` document alone (the
templates compute nothing): the verdict, probe, constant and condition rows, the plots, the
stability section and the provenance table."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...bounds.errors import ApproxAuditError
from ..judge.selection import why_no_bound
from .format import _inline, _num, _safe, _scope_ids, cite_ref

PLOT_DIR = "report-plots"
VERDICT_ORDER = ("violated", "error", "inconclusive", "not_applicable", "consistent")


class ReportError(ApproxAuditError):
    """A results file that cannot be rendered (wrong schema, unreadable)."""


def check_results(results: Any) -> None:
    """Minimal structural check before rendering (the full JSON Schema is in ``results.py``)."""
    if not isinstance(results, Mapping):
        raise ReportError("results must be a JSON object")
    missing = [k for k in ("schema_version", "status", "counts", "verdicts", "workload",
                           "optimizer", "config", "provenance") if k not in results]
    if missing:
        raise ReportError(f"results lack {', '.join(missing)}; is this a results.json written by "
                          "approx-audit run?")


def _final(series: Mapping[str, list] | None, key: str) -> float | None:
    if not series or not series.get(key):
        return None
    return series[key][-1]


def _shown_point(v: Mapping[str, Any], s: Mapping[str, list] | None) -> dict[str, str]:
    """Predicted and observed where it matters: at the largest excess when there is one, else
    at the last checkpoint."""
    w = v.get("worst") or {}
    if v.get("verdict") in ("violated", "inconclusive") and (w.get("excess") or 0) > 0:
        return {"predicted": _num(w.get("predicted")), "observed": _num(w.get("observed")),
                "at": f"at K = {_num(w.get('k'))} (largest excess)"}
    k = _final(s, "k")
    return {"predicted": _num(_final(s, "predicted")), "observed": _num(_final(s, "observed")),
            "at": "" if k is None else f"at K = {_num(k)}"}


def _verdict_rows(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for v in results.get("verdicts", []):
        s = v.get("series")
        rows.append({
            "id": v["id"], "verdict": v["verdict"], "verdict_text": v["verdict"].replace("_", " "),
            "summary": v.get("summary", ""), "reason": v.get("reason", ""),
            "caveats": v.get("caveats") or [],
            "mathml": _inline(v.get("mathml")), "latex": v.get("latex", ""),
            "rhs": v.get("rhs", ""), "quantity": v.get("quantity", ""),
            "expectation": v.get("expectation", False),
            **_shown_point(v, s),
            "looseness": _num((v.get("looseness") or {}).get("final"), 3),
            "citation": v.get("citation", ""), "citation_ref": cite_ref(v.get("citation_url")),
            "constants": [
                {"name": n, "value": _num(c.get("value")), "kind": c.get("kind"),
                 "conservative": c.get("conservative"), "direction": c.get("direction"),
                 "source": c.get("source", "")}
                for n, c in (v.get("constants") or {}).items()],
            "conditions": v.get("conditions") or [],
        })
    rank = {name: i for i, name in enumerate(VERDICT_ORDER)}
    rows.sort(key=lambda r: rank.get(r["verdict"], 99))
    return rows


def _probe_rows(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for p in results.get("probes", []):
        keys = []
        for key, summ in (p.get("summary") or {}).items():
            keys.append({"key": key, "min": _num(summ.get("min")), "max": _num(summ.get("max")),
                         "last": _num(summ.get("last")), "count": summ.get("count"),
                         "direction": summ.get("direction")})
        cost = p.get("cost") or {}
        measured = p.get("measured_cost") or {}
        rows.append({"name": p["name"], "estimates": p.get("estimates", ""),
                     "direction": p.get("direction", ""), "every": p.get("every"),
                     "declared": (f"{cost.get('forward', 0)} fwd / {cost.get('backward', 0)} bwd"
                                  f" / {cost.get('hvp', 0)} hvp"
                                  + (" (at most)" if p.get("cost_is_bound") else "")),
                     "measured": (f"{measured.get('forward', 0)} fwd / "
                                  f"{measured.get('backward', 0)} bwd / {measured.get('hvp', 0)}"
                                  f" hvp / {measured.get('per_sample', 0)} per-sample"
                                  if measured else "none"),
                     "key_values": keys})
    return rows


def _constant_rows(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for name, c in (results.get("constants") or {}).items():
        rows.append({"name": name, "lo": _num(c.get("lo")), "hi": _num(c.get("hi")),
                     "asserted": c.get("asserted"), "conflict": c.get("conflict"),
                     "estimates": [{"value": _num(e.get("value")), "kind": e.get("kind"),
                                    "source": e.get("source", "")}
                                   for e in c.get("estimates", [])]})
    return rows


def _failed_conditions(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for v in results.get("verdicts", []):
        for c in v.get("conditions") or []:
            if c.get("status") in ("fails", "fails_at_estimate", "holds_at_estimate", "unknown"):
                rows.append({"bound": v["id"], "condition": c["condition"],
                             "status": c["status"].replace("_", " "), "text": c.get("text", ""),
                             "ratio": _num(c.get("ratio"), 3), "certain": c["status"] == "fails"})
    rows.sort(key=lambda r: (not r["certain"], r["bound"]))
    return rows


def no_plots() -> dict[str, Any]:
    """The plots section of a report drawn without plots."""
    return {"bounds": [], "probes": [], "sharpness": None, "frontier": None, "stability": None}


def _plots(results: Mapping[str, Any], compare: Mapping[str, Any] | None) -> dict[str, Any]:
    """SVG plots (strings) with captions and file names; empty when matplotlib fails.
    matplotlib's RuntimeWarnings on extreme axes (a diverged run's values near 1e38) are
    silenced here: the plots drop what they cannot draw and say so."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return _draw_plots(results, compare)


def _draw_plots(results: Mapping[str, Any], compare: Mapping[str, Any] | None
                ) -> dict[str, Any]:
    try:
        from . import plots
    except ImportError:  # pragma: no cover - the plots module ships with the package
        return no_plots()
    bounds = []
    for v in results.get("verdicts", []):
        svg = plots.bound_plot(v)
        if svg:
            bounds.append({"caption": f"{v['id']}: predicted and observed ({v['verdict']})",
                           "svg": _scope_ids(_inline(svg), f"b{len(bounds)}"),
                           "file": f"bound-{_safe(v['id'])}.svg"})
    probes = [{"caption": cap, "svg": _scope_ids(_inline(svg), f"p{i}"),
               "file": f"probe-{i}.svg"}
              for i, (cap, svg) in enumerate(plots.probe_plots(dict(results)))]
    sharp = plots.sharpness_plot(dict(results))
    stab = plots.stability_plot(dict(results)) if results.get("stability") else None
    cons = plots.consensus_plot(dict(results)) if results.get("decentralized") else None
    if cons:
        probes.append({"caption": "consensus distance against the consensus bound's "
                                  "prediction and the gossip contraction |λ₂|^t",
                       "svg": _scope_ids(_inline(cons), "cons"), "file": "consensus.svg"})
    frontier = plots.frontier_plot(dict(compare)) if compare else None
    return {"bounds": bounds, "probes": probes,
            "stability": None if not stab else {
                "caption": "generalization gap, measured loss difference and the stability "
                           "bound against T", "svg": _scope_ids(_inline(stab), "st"),
                "file": "stability.svg"},
            "sharpness": None if not sharp else {"caption": "sharpness against 2/η",
                                                 "svg": _scope_ids(_inline(sharp), "s"),
                                                 "file": "sharpness.svg"},
            "frontier": None if not frontier else {
                "caption": "quality against gradient evaluations",
                "svg": _scope_ids(_inline(frontier), "f"),
                "file": "frontier.svg"}}


def report_context(results: Mapping[str, Any], *, compare: Mapping[str, Any] | None = None,
                   with_plots: bool = True) -> dict[str, Any]:
    """Everything the templates show, computed here (templates never compute)."""
    check_results(results)
    counts = results.get("counts") or {}
    worst = next((v for v in VERDICT_ORDER if counts.get(v)), "consistent")
    if results.get("status") in ("diverged", "error", "interrupted"):
        worst = "error" if worst in ("consistent", "not_applicable", "inconclusive") else worst
    cfg = results.get("config") or {}
    opt = results.get("optimizer") or {}
    g = results.get("gradient_evaluations") or {}
    prov = results.get("provenance") or {}
    packages = prov.get("packages") or {}
    return {
        "title": f"approx-audit: {results['workload']['name']} with {opt.get('label', '?')}",
        "workload": results["workload"], "optimizer": opt, "config": cfg,
        "status": results.get("status"), "message": results.get("message"),
        "counts": [{"name": k, "text": k.replace("_", " "), "n": counts.get(k, 0)}
                   for k in ("consistent", "violated", "inconclusive", "not_applicable", "error")],
        "worst": worst,
        "headline": _headline(counts, results.get("status")),
        "steps": cfg.get("steps"), "seeds": cfg.get("seeds"),
        "batch": "full batch" if results.get("full_batch") else f"batch {cfg.get('batch_size')}",
        "grad": {"train": g.get("train_grad_evals"), "audit": g.get("probe_grad_evals"),
                 "ratio": _num(g.get("overhead_ratio"), 3),
                 "examples": g.get("train_examples")},
        "verdicts": _verdict_rows(results), "probes": _probe_rows(results),
        "no_bound_reason": None if results.get("verdicts") else why_no_bound(
            opt, bool(results.get("full_batch"))),
        "objective": _objective_line(results.get("objective")),
        "constants": _constant_rows(results), "conditions": _failed_conditions(results),
        "plots": _plots(results, compare) if with_plots else no_plots(),
        "compare": compare,
        "stability": _stability_context(results.get("stability")),
        "provenance": [
            ("approx-audit", prov.get("approx_audit")), ("python", prov.get("python")),
            *[(k, v) for k, v in packages.items()],
            ("torch CUDA", prov.get("torch_cuda")), ("device", prov.get("device")),
            ("device name", prov.get("device_name")), ("platform", prov.get("platform")),
            ("host", prov.get("host")), ("user", prov.get("user")), ("cwd", prov.get("cwd")),
            ("command", prov.get("command")), ("started", prov.get("started")),
            ("ended", prov.get("ended")), ("seconds", _num(prov.get("seconds"), 3)),
            ("seeds", ", ".join(str(r.get("seed")) for r in results.get("runs", []))),
            ("configuration file", cfg.get("config_file")),
            ("results schema", results.get("schema_version")),
        ],
        "config_items": sorted((k, _num(v) if isinstance(v, float) else v)
                               for k, v in cfg.items() if k not in ("optimizer",)),
        "redacted": bool(results.get("redacted")),
        "plot_dir": PLOT_DIR,
    }


def _objective_line(obj: Mapping[str, Any] | None) -> str | None:
    """One sentence: which function the probes measured (results.json's ``objective``)."""
    if not obj:
        return None
    mode = obj.get("mode")
    what = {"train": "the training objective as trained (train mode)",
            "eval": "the eval-mode objective (running statistics, no dropout)"}.get(
        mode, "the objective with each module's mode as it was")
    parts = [f"Audited function: {what}; inputs {obj.get('inputs')}, reduction "
             f"{obj.get('reduction')}; buffers {obj.get('buffers')}."]
    if obj.get("coupling_layers"):
        parts.append(f"Layers coupling the samples ({', '.join(obj['coupling_layers'])}) "
                     "normalize with the probe batch's own statistics; gradient noise from "
                     "microbatches.")
    if obj.get("frozen_modules"):
        parts.append(f"Modules training runs in eval mode ({', '.join(obj['frozen_modules'])}) "
                     "are audited in eval mode too.")
    if obj.get("stochastic_layers"):
        parts.append(f"Random layers ({', '.join(obj['stochastic_layers'])}): every probe "
                     "comparison uses common random numbers (one fixed draw); gradients are "
                     "stochastic even on the full data.")
    return " ".join(parts)


def _stability_context(st: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not st:
        return None
    info = st.get("info") or {}
    es = st.get("early_stopping") or {}
    return {"pairs": info.get("pairs"), "mode": info.get("mode"), "n": info.get("n"),
            "n_test": info.get("n_test"),
            "final_delta": _num((st.get("delta") or {}).get("mean", [None])[-1]),
            "max_delta": _num((st.get("delta") or {}).get("max", [None])[-1]),
            "early_k": es.get("k"), "early_test": _num(es.get("test_loss")),
            "early_gap": _num(es.get("generalization_gap")),
            "rows": [{"index": p.get("index"), "replacement": p.get("replacement"),
                      "final_delta": _num(p.get("final_delta"))} for p in st.get("pairs", [])]}


def _headline(counts: Mapping[str, int], status: str | None) -> str:
    if status in ("diverged", "error", "interrupted"):
        return f"The run {status}: verdicts cover the steps that exist."
    if counts.get("violated"):
        return f"{counts['violated']} bound(s) violated: observation beyond a proven prediction."
    if counts.get("inconclusive"):
        return "Nothing violated; some excesses or constants could not be settled."
    if counts.get("consistent"):
        return "Every applicable bound is consistent with the run."
    return "No bound applied to this run."
