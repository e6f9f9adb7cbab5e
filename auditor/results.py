"""``results.json``, the single source of truth of an audit: its assembly, its versioned JSON
Schema (``results.schema.json``, shipped in the package), its atomic write, and its rebuild from
a ``trace.jsonl`` alone. The reports (:mod:`.report`) render only from it.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import sys
import time
from collections.abc import Mapping
from functools import lru_cache
from importlib.resources import files
from pathlib import Path
from typing import Any

import torch

from ..bounds.errors import ApproxAuditError
from .trace import clean, read_trace
from .judge import Facts, judge, summarize
from .judge import downsample as _downsample
from .observables import KEY, OBSERVABLES, PROBE, keys_where

RESULTS_SCHEMA_VERSION = "1.0"

__all__ = ["RESULTS_SCHEMA_VERSION", "ResultsSchemaError", "assemble", "provenance",
           "results_from_trace", "results_schema", "validate_results", "write_json_atomic"]

SCHEMA_FILE = "results.schema.json"


class ResultsSchemaError(ApproxAuditError):
    """A results document that does not follow the schema."""


@lru_cache(maxsize=1)
def results_schema() -> dict[str, Any]:
    return json.loads(files("approx_audit.auditor").joinpath(SCHEMA_FILE).read_text("utf-8"))


def validate_results(data: Any, source: str = "results") -> None:
    """Raise :class:`ResultsSchemaError` with the first problem, in one line."""
    import jsonschema

    version = data.get("schema_version") if isinstance(data, dict) else None
    if isinstance(version, str) and not version.startswith("1."):
        raise ResultsSchemaError(f"{source}: schema_version {version!r} is not 1.x; this "
                                 "approx-audit reads results schema 1.x")
    validator = jsonschema.Draft202012Validator(results_schema())
    error = jsonschema.exceptions.best_match(validator.iter_errors(data))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(top level)"
        raise ResultsSchemaError(f"{source}: {where}: {error.message}")


def provenance(device: str, command: str | None, started: float, ended: float
                ) -> dict[str, Any]:
    """Who ran the audit where, with which versions, from when to when."""
    import importlib.metadata as md

    def ver(name: str) -> str | None:
        try:
            return md.version(name)
        except md.PackageNotFoundError:
            return None

    return {
        "approx_audit": ver("approx-audit"),
        "python": platform.python_version(),
        "packages": {p: ver(p) for p in ("torch", "numpy", "sympy", "cvxpy", "scikit-learn")},
        "torch_cuda": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(),
        "device": device,
        "device_name": (torch.cuda.get_device_name(0) if device.startswith("cuda")
                        and torch.cuda.is_available() else platform.processor() or "cpu"),
        "platform": platform.platform(),
        "host": platform.node(),
        "user": os.environ.get("USER") or os.environ.get("USERNAME"),
        "cwd": os.getcwd(),
        "command": command or " ".join(sys.argv),
        "started": _dt.datetime.fromtimestamp(started, _dt.timezone.utc).isoformat(),
        "ended": _dt.datetime.fromtimestamp(ended, _dt.timezone.utc).isoformat(),
        "seconds": ended - started,
    }


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON through a temporary file and a rename: never a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(clean(data), indent=1, allow_nan=False), encoding="utf-8")
    os.replace(tmp, path)


def _probe_summaries(runs, probes_described: list[dict]) -> list[dict[str, Any]]:
    out = []
    for desc in probes_described:
        keys = {}
        for key in desc["keys"]:
            vals = [v for r in runs for _, v in r.values(key)]
            if vals:
                keys[key] = {"count": len(vals), "min": min(vals), "max": max(vals),
                             "last": vals[-1],
                             "direction": desc["key_directions"].get(key, desc["direction"])}
        cost = {}
        for r in runs:
            c = ((r.end or {}).get("costs") or {}).get("by_probe", {}).get(desc["name"])
            if c:
                for k, v in c.items():
                    cost[k] = cost.get(k, 0) + v
        series = {}
        for key in keys:
            pts = [(k + 1 if _after(key) else k, v)
                   for k, v in (runs[0].values(key) if runs else [])]
            if pts:
                idx = _downsample(len(pts))
                series[key] = {"k": [pts[i][0] for i in idx], "value": [pts[i][1] for i in idx]}
        out.append({**desc, "summary": keys, "measured_cost": cost, "series": series,
                    "series_run": 0})
    return out


# probe keys measured at x_{t+1} (after the step), whose series points sit at k = step + 1.
# The decentralized auditor's consensus keys are measured at x_{t+1} too, and the judge's
# consensus series use step + 1: they sit there (they sat at k = step, one step off the
# bound's curve in the consensus plot).
_AT_AFTER = frozenset(keys_where(at="x_t+1", origin="probe")) | frozenset(
    k for k in keys_where(at="x_t+1") if OBSERVABLES[k].probe == PROBE.decentralized)


def _after(key: str) -> bool:
    return key in _AT_AFTER


def assemble(config: Mapping[str, Any], description: str, verdicts, extra, status, message,
             facts: Facts, prov: Mapping[str, Any]) -> dict[str, Any]:
    """``results.json``'s content from the verdicts and the judge's ``extra`` (constants,
    runs, hyperparameters, full_batch)."""
    runs = extra["runs"]
    probes = runs[0].start.get("probes", []) if runs else []
    costs = {"train_grad_evals": 0, "probe_grad_evals": 0, "train_examples": 0}
    per_run = []
    for r in runs:
        c = (r.end or {}).get("costs") or {}
        for k in costs:
            costs[k] += int(c.get(k, 0) or 0)
        per_run.append({"run": r.run, "seed": r.start.get("seed"), "status": r.status,
                        "steps": r.n_steps,
                        "message": (r.end or {}).get("message") or (r.diverged or {}).get("message"),
                        "probe_errors": (r.end or {}).get("probe_errors", {}), "costs": c,
                        "final": _final_values(r)})
    costs["overhead_ratio"] = (costs["probe_grad_evals"] / costs["train_grad_evals"]
                               if costs["train_grad_evals"] else None)
    return {
        "schema_version": RESULTS_SCHEMA_VERSION,
        "status": status,
        "message": message,
        "counts": summarize(verdicts),
        "config": dict(config),
        "workload": {**facts.to_dict(), "description": description},
        "optimizer": dict(config["optimizer"]),
        "hyperparameters": extra["hyperparameters"],
        "full_batch": extra["full_batch"],
        "verdicts": [v.to_dict() for v in verdicts],
        "constants": extra["constants"],
        "probes": _probe_summaries(runs, probes),
        "runs": per_run,
        "lr_series": _lr_series(runs),
        "decentralized": (runs[0].start.get("decentralized") if runs else None),
        "objective": (runs[0].start.get("objective") if runs else None),
        "gradient_evaluations": costs,
        "provenance": dict(prov),
    }


def _lr_series(runs) -> dict[str, list]:
    """The step size used at each step of the first run (downsampled): η_t for step t."""
    if not runs:
        return {"step": [], "lr": []}
    pts = [(int(r["step"]), float(r["lr"])) for r in runs[0].steps if r.get("lr") is not None]
    idx = _downsample(len(pts)) if pts else []
    return {"step": [pts[i][0] for i in idx], "lr": [pts[i][1] for i in idx]}


def _final_values(r) -> dict[str, Any]:
    last = None
    for rec in ([r.init] if r.init else []) + r.steps + ([r.final] if r.final else []):
        if rec.get(KEY.full_loss) is not None:
            last = rec
    if last is None:
        return {}
    return {k: last.get(k) for k in ("k", KEY.full_loss, KEY.full_grad_norm, KEY.suboptimality,
                                     KEY.dist_sq)}


def results_from_trace(path: str | Path) -> dict[str, Any]:
    """``results.json``'s content rebuilt from a ``trace.jsonl`` alone (e.g. of a run killed
    before it could write its results): the start records carry the configuration and the
    workload's facts; the verdicts are ruled again on the steps that exist."""
    records = read_trace(path)
    starts = [r for r in records if r["record"] == "start"]
    if not starts or "facts" not in starts[0] or "config" not in starts[0]:
        raise ApproxAuditError(f"{path} has no start record with the run's configuration; "
                               "it was not written by approx-audit run")
    start = starts[0]
    facts = Facts.from_dict(start["facts"])
    last_end = next((r for r in reversed(records) if r["record"] == "end"), {})
    # a user's loop (Auditor) knows its schedule and length only at the end: its end record
    # carries the final spec and configuration
    config = dict(last_end.get("config") or start["config"])
    spec = last_end.get("optimizer") or start["optimizer"]
    n_steps = sum(r["record"] == "step" for r in records)
    if not config.get("steps"):
        config["steps"] = max(1, n_steps)
    verdicts, extra = judge(records, facts, spec, bounds=config.get("bounds"),
                            assume=config.get("assume") or {})
    ends = [r for r in records if r["record"] == "end"]
    broken = next((f"run {r.run}: steps not contiguous: {r.contiguity}" for r in extra["runs"]
                   if r.contiguity is not None), None)
    if broken is not None:
        status = "error"    # a hand-edited or concatenated trace: no run here is complete
    elif any(r.get("status") in ("diverged", "error", "interrupted") for r in ends):
        status = next(r["status"] for r in ends if r.get("status") in
                      ("diverged", "error", "interrupted"))
    elif len(ends) < len(starts) or len(starts) < int(config.get("seeds") or 1):
        status = "interrupted"
    else:
        status = "completed"
    message = (None if status == "completed" else
               f"rebuilt from {Path(path).name}: {sum(r['record'] == 'step' for r in records)} "
               "steps recorded" + (f"; {broken}" if broken else ""))
    wall = [r.get("wall_time") for r in starts if r.get("wall_time")]
    started = min(wall) if wall else time.time()
    prov = provenance(config.get("device", "cpu"), None, started, time.time())
    prov["command"] = f"approx-audit report {path} (rebuilt from the trace)"
    return assemble(config, start["facts"].get("description", facts.name), verdicts, extra,
                    status, message, facts, prov)
