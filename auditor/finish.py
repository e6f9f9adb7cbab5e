"""An API run's results: what ``approx-audit run`` writes, for an :class:`~.run.Auditor` in a
user's own loop (or a Lightning / Hugging Face callback).

The loop's facts are what the user says (``convex``, ``f_lower``, ``assume``); its
optimizer spec is read from the optimizer's class and first param group with the run's *first*
step size (a scheduler has moved the group's lr by the end) and the schedule the recorded
step sizes show; its configuration records the model, optimizer, scheduler and clipping, so
``results.json`` has ``approx-audit run``'s schema and ``approx-audit report`` re-renders it
(the end record carries the final spec and configuration for a rebuild from the trace).
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .judge import Facts, judge
from .judge.evidence import runs_from_records
from .optimizers import OptimizerSpecError, spec_from_optimizer
from .results import assemble, provenance, write_json_atomic

__all__ = ["loop_config", "loop_facts", "loop_spec", "loop_results", "write_loop_results"]


def _rows(x: Any) -> int | None:
    from . import measure as M

    return None if x is None else int(M._leading_dim(x))


def describe_schedule(name: str | None, lrs: Sequence[Any]) -> str:
    """'constant', or the user's schedule by name with the step sizes it produced."""
    vals = [float(v) for v in lrs if isinstance(v, (int, float))]
    if len(set(vals)) <= 1:
        return "constant"
    who = name or "the user's schedule"
    return (f"{who}: η_k from {vals[0]:.3g} to {vals[-1]:.3g} (range {min(vals):.3g}–"
            f"{max(vals):.3g}) over {len(vals)} steps")


def loop_spec(auditor) -> dict[str, Any]:
    """The optimizer's spec as the run used it: first positive step size, the schedule."""
    lrs = [r["lr"] for r in auditor.records if r["record"] == "step"]
    base = next((v for v in lrs if isinstance(v, (int, float)) and v > 0), None)
    name = None if auditor.scheduler is None else type(auditor.scheduler).__name__
    schedule = describe_schedule(name, lrs)
    try:
        spec = spec_from_optimizer(auditor.optimizer, base)
    except OptimizerSpecError:
        # LBFGS, SAM wrappers, …: recorded as they are; no catalogue bound will match
        cls = type(auditor.optimizer).__name__
        lr = base if base is not None else auditor.optimizer.param_groups[0].get("lr")
        return {"name": cls.lower(), "lr": lr, "hparams": {}, "schedule": schedule,
                "schedule_params": {}, "label": f"{cls}(lr={lr:g})" if lr else cls,
                "symbol_values": {}}
    return spec.to_dict() | {"symbol_values": spec.symbol_values, "schedule": schedule}


def loop_facts(auditor, convex: bool | None = None, f_lower: float | None = None) -> Facts:
    """Nothing is known of a user's objective but what the user says."""
    params = [p for p in auditor.model.parameters() if p.requires_grad]
    return Facts(name="user loop", convex=convex, quadratic=False, f_star=auditor.facts.f_star,
                 f_lower=auditor.facts.f_lower if f_lower is None else f_lower, constants={},
                 n=_rows(auditor.full_X), d=sum(p.numel() for p in params),
                 dtype=str(params[0].dtype).replace("torch.", "") if params else "float32",
                 sampling="user")


def _clipping(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    runs = runs_from_records(list(records))
    n, seen, raw, applied = runs[0].clipped() if runs else (0, 0, None, None)
    return {"clipped_steps": n, "steps_with_norms": seen, "largest_raw_norm": raw,
            "applied_norm_there": applied}


def loop_config(auditor, *, assume: Mapping[str, float] | None = None,
                bounds: Sequence[str] | None = None, out: Path | None = None) -> dict[str, Any]:
    """``results.json``'s ``config`` for a user's loop (the schema of ``approx-audit run``)."""
    steps = [r for r in auditor.records if r["record"] == "step"]
    sizes = [r.get("batch_size") for r in steps if r.get("batch_size")]
    first = next(auditor.model.parameters(), None)
    return {"workload": f"user loop: {type(auditor.model).__name__}", "workload_options": {},
            "optimizer": loop_spec(auditor), "steps": max(1, len(steps)),
            "batch_size": max(sizes) if sizes else None, "seeds": 1,
            "seed": int(auditor.seed or 0), "probes": auditor.probe_spec,
            "bounds": None if bounds is None else list(bounds), "assume": dict(assume or {}),
            "out": None if out is None else str(out),
            "device": str(first.device) if first is not None else "cpu",
            "probe_mode": auditor.f.mode or "as-is",
            "api": {"model": type(auditor.model).__name__,
                    "optimizer": type(auditor.optimizer).__name__,
                    "scheduler": (None if auditor.scheduler is None
                                  else type(auditor.scheduler).__name__),
                    "unaudited_steps": sum(bool(r.get("unaudited")) for r in steps),
                    "clipping": _clipping(auditor.records)}}


# the judge's reasons name the command line's options; in a user's loop they name keywords
_API_WORDS = (
    (re.compile(r"--assume (\w+)=(VALUE|…)"), r"assume={'\1': \2}"),
    (re.compile(r"\(--assume\)"), "(assume=)"),
    (re.compile(r"audit --optimizer defossez-(\w+)"),
     r"train with approx_audit.auditor.optimizers.DefossezAdam (defossez-\1)"),
)


def api_words(text: Any) -> Any:
    """``text`` with the CLI's option names replaced by the API's keywords."""
    if not isinstance(text, str):
        return text
    for pattern, repl in _API_WORDS:
        text = pattern.sub(repl, text)
    return text


def speak_api(verdicts: Sequence[Any]) -> list:
    """The verdicts with their reasons, caveats and assumption notes in the API's words."""
    out = []
    for v in verdicts:
        out.append(dataclasses.replace(
            v, reason=api_words(v.reason), caveats=tuple(api_words(c) for c in v.caveats),
            assumptions=tuple({k: api_words(x) for k, x in a.items()} for a in v.assumptions)))
    return out


def loop_results(auditor, *, convex: bool | None = None, f_lower: float | None = None,
                 assume: Mapping[str, float] | None = None, bounds: Sequence[str] | None = None,
                 out: Path | None = None, command: str | None = None):
    """(verdicts, results.json's content) of a closed auditor."""
    facts = loop_facts(auditor, convex, f_lower)
    config = loop_config(auditor, assume=assume, bounds=bounds, out=out)
    verdicts, extra = judge(auditor.records, facts, config["optimizer"],
                            bounds=None if bounds is None else list(bounds), assume=assume)
    verdicts = speak_api(verdicts)
    for c in extra["constants"].values():
        for e in c.get("estimates", []):
            e["source"] = api_words(e.get("source"))
    end = next((r for r in reversed(auditor.records) if r["record"] == "end"), {})
    status = end.get("status", "completed")
    started = auditor.records[0].get("wall_time") or time.time()
    description = (f"{type(auditor.model).__name__} trained in the user's own loop with "
                   f"{type(auditor.optimizer).__name__}; nothing known about the objective but "
                   "what the caller said")
    results = assemble(config, description, verdicts, extra, status, end.get("message"), facts,
                       provenance(config["device"], command or "Auditor.finish()", started,
                                  time.time()))
    return verdicts, results


def write_loop_results(results: Mapping[str, Any], out: Path,
                       formats: Sequence[str] = ("html", "md")) -> list[Path]:
    """results.json, then the reports (a failed render never loses results.json)."""
    from .report import write_reports

    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "results.json", dict(results))
    written = [out / "results.json"]
    if formats:
        written += [p for p in write_reports(dict(results), out, tuple(formats))
                    if p.name in ("report.html", "report.md")]
    return written
