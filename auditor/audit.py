"""An audit end to end: workload, optimizer, seeds, the run loop, verdicts and ``results.json``.

:func:`run_audit` is what ``approx-audit run`` calls. One run per seed (``seeds`` runs with
sampling seeds ``seed, seed + 1, …``; the initial point is the workload's, the same for every
run, so R and Δ are shared and only the minibatch order changes); all runs append to one
``trace.jsonl``. Whatever ends the runs — the last step, a non-finite loss, Ctrl-C, an
exception or a ``sys.exit()`` in the user's code — ``results.json`` is written for what exists
before the exception goes on.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..bounds import catalogue as _catalogue
from ..bounds.errors import ApproxAuditError
from .optimizers import OptimizerSpec
from .results import assemble, provenance, write_json_atomic
from .run import Auditor, train
from .judge import Facts, Verdict, judge, select_bounds, summarize

__all__ = ["AUDIT_FILES", "AuditConfig", "AuditResult", "UserExitError", "facts_of",
           "prepare_out", "run_audit"]


@dataclass
class AuditConfig:
    workload: Any                       # a built Workload
    optimizer: OptimizerSpec
    steps: int
    batch_size: int | None = None       # None: full batch
    seeds: int = 1
    seed: int = 0
    probes: str = "standard"
    bounds: Sequence[str] | None = None
    assume: Mapping[str, float] = field(default_factory=dict)
    out: Path | None = None
    device: str = "cpu"
    probe_mode: str = "train"           # the audited function: train-mode or eval-mode
    command: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    # where the records also go (auditor/sinks.py: TensorBoard, W&B, a progress bar); objects,
    # not configuration: never in to_dict
    sinks: list = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        w = self.workload
        return {"workload": w.name, "workload_options": dict(w.options),
                "optimizer": self.optimizer.to_dict(), "steps": self.steps,
                "batch_size": self.batch_size, "seeds": self.seeds, "seed": self.seed,
                "probes": self.probes, "bounds": list(self.bounds) if self.bounds else None,
                "assume": dict(self.assume), "out": None if self.out is None else str(self.out),
                "device": self.device, "probe_mode": self.probe_mode, **dict(self.extra)}


@dataclass
class AuditResult:
    status: str                       # completed | diverged | interrupted | error
    verdicts: list[Verdict]
    results: dict[str, Any]
    message: str | None = None

    @property
    def counts(self) -> dict[str, int]:
        return summarize(self.verdicts)


def facts_of(workload: Any, sampling: str = "iid") -> Facts:
    """The verdict engine's view of a workload."""
    user = workload.name.startswith("user:")
    params = [p for p in workload.model.parameters() if p.requires_grad]
    return Facts(
        name=workload.name,
        convex=None if user else bool(workload.convex),
        quadratic=workload.name in ("quadratic", "least-squares"),
        f_star=workload.f_star, f_lower=workload.f_lower,
        constants={k: (float(v.value), v.kind, v.source) for k, v in workload.constants.items()},
        n=workload.n, d=sum(p.numel() for p in params),
        dtype=str(params[0].dtype).replace("torch.", "") if params else "float32",
        sampling=sampling)


def run_start_info(config: AuditConfig, spec_dict: Mapping[str, Any], full_batch: bool
                   ) -> dict[str, Any]:
    """What every run's start record carries, so that a trace alone can be judged again
    (:func:`results_from_trace`). Shared by the one-process, DDP and decentralized loops."""
    w = config.workload
    return {"optimizer": dict(spec_dict), "workload": w.name,
            "facts": {**facts_of(w).to_dict(), "description": w.description},
            "config": config.to_dict(), "steps": config.steps,
            "batch_size": None if full_batch else config.batch_size}


def finish_results(config: AuditConfig, spec_dict: Mapping[str, Any], records, status: str,
                   message: str | None, started: float, device: str | None = None
                   ) -> tuple[list[Verdict], dict[str, Any]]:
    """Rule on the bounds from the records and assemble ``results.json``'s content (written by
    the caller's rank 0 / single process)."""
    w = config.workload
    wanted = None if config.bounds is None else list(config.bounds)
    facts = facts_of(w)
    verdicts, extra = judge(records, facts, spec_dict, bounds=wanted, assume=config.assume)
    results = assemble(config.to_dict(), w.description, verdicts, extra, status, message, facts,
                       provenance(device or config.device, config.command, started,
                                  time.time()))
    return verdicts, results


def _write_unruled(config: AuditConfig, records, started: float) -> dict[str, Any]:
    """results.json without verdicts, for an interrupt during the ruling (written when the
    audit has an output folder)."""
    from .judge import runs_from_records

    runs = runs_from_records(records)
    extra = {"runs": runs, "hyperparameters": {}, "constants": {},
             "full_batch": bool(runs) and all(r.full_batch for r in runs)}
    trace = "the trace" if config.out is None else str(config.out / "trace.jsonl")
    message = (f"interrupted while ruling on the bounds; every finished step is in {trace}: "
               f"approx-audit report {trace} rules on them again")
    results = assemble(config.to_dict(), config.workload.description, [], extra,
                       "interrupted", message, facts_of(config.workload),
                       provenance(config.device, config.command, started, time.time()))
    if config.out is not None:
        write_json_atomic(config.out / "results.json", results)
    return results


def _finish_sinks(sinks, verdicts, step: int) -> None:
    """The verdicts to every sink, then close them; a failing sink never loses the results."""
    import warnings

    for sink in sinks:
        for call in (lambda: sink.verdicts([v.to_dict() for v in verdicts], step), sink.close):
            try:
                call()
            except Exception as exc:  # noqa: BLE001 - results.json is what matters
                warnings.warn(f"approx-audit: the {type(sink).__name__} sink failed "
                              f"({type(exc).__name__}: {exc})", RuntimeWarning, stacklevel=2)
                break


class UserExitError(RuntimeError):
    """The user's code called ``sys.exit()`` during training: a failed run (exit 3, with what
    was measured written), never the normal end of the process that SystemExit would be."""


def _failure(i: int, exc: BaseException) -> tuple[str, BaseException]:
    """The message of run ``i`` failing with ``exc``, and what :func:`run_audit` re-raises
    (a SystemExit becomes a :class:`UserExitError`: callers catching Exception see it)."""
    if isinstance(exc, SystemExit):
        message = f"run {i} failed: the user's code called sys.exit({exc.code!r}) during training"
        err = UserExitError(message)
        err.__cause__ = exc
        return message, err
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"run {i} failed: {type(exc).__name__}: {text}", exc


def _close_failed(auditor: Auditor, message: str) -> None:
    """End a failed run's records. A user's forward that exits once exits again at the final
    checkpoint: then the run is closed without one (the steps already recorded stay)."""
    try:
        auditor.close("error", message)
    except SystemExit as exc:
        auditor.full_X = None
        auditor.probe_errors["checkpoints"] = f"SystemExit: sys.exit({exc.code!r}) at x_K"
        auditor.close("error", message)


# what an audit writes into its folder; anything else there is the user's and stays
AUDIT_FILES = ("trace.jsonl", "results.json", "report.html", "report.md")


def prepare_out(out: Path) -> None:
    """Create ``out`` and remove the previous audit's own files from it (trace, results, both
    reports, the report's plots), so that nothing there can be mistaken for this run's; files
    the user put there stay. A file that cannot be removed is a one-line input error."""
    from .report import PLOT_DIR

    out.mkdir(parents=True, exist_ok=True)
    plots = out / PLOT_DIR
    old = [out / name for name in AUDIT_FILES]
    if plots.is_dir() and not plots.is_symlink():
        old += sorted(plots.glob("*.svg"))
    try:
        for p in old:
            if p.is_file() or p.is_symlink():
                p.unlink()
        if plots.is_dir() and not plots.is_symlink() and not any(plots.iterdir()):
            plots.rmdir()
    except OSError as exc:
        raise ApproxAuditError(f"--out {out}: cannot remove the previous audit's "
                               f"{Path(exc.filename or '').name or 'files'} "
                               f"({exc.strerror or exc}); remove it or choose another --out"
                               ) from None


def run_audit(config: AuditConfig) -> AuditResult:
    """Run every seed, rule on the bounds, write ``results.json`` into ``config.out``."""
    w, spec = config.workload, config.optimizer
    full_batch = config.batch_size is None or config.batch_size >= w.n
    wanted = None if config.bounds is None else list(config.bounds)
    spec_dict = spec.to_dict() | {"symbol_values": spec.symbol_values}
    selected = select_bounds(_catalogue, spec_dict, full_batch, wanted)
    averages = any(b.quantity.value == "averaged_iterate_gap" for b in selected)
    if config.out is not None:
        prepare_out(config.out)
    records: list[dict[str, Any]] = []
    status, message = "completed", None
    started = time.time()
    interrupt: BaseException | None = None
    for i in range(config.seeds):
        model = w.fresh_model()
        opt = spec.build(model.parameters())
        auditor = None
        try:
            auditor = Auditor(model, opt, workload=w, probes=config.probes, out=config.out, run=i,
                              seed=config.seed + i, full_batch=full_batch, averages=averages,
                              start_info=run_start_info(config, spec_dict, full_batch),
                              probe_mode=config.probe_mode, trusted_gradients=True,
                              sinks=config.sinks)
            st = train(w, model, opt, auditor, steps=config.steps,
                       batch_size=None if full_batch else config.batch_size,
                       sampling_seed=config.seed + i, lr_at=spec.lr_at)
            auditor.close(st)
            if st == "diverged":
                status, message = "diverged", next(
                    (r["message"] for r in auditor.records if r["record"] == "diverged"), None)
        except KeyboardInterrupt as exc:
            status, message = "interrupted", f"interrupted by the user during run {i}"
            if auditor is not None:
                auditor.close("interrupted", message)
            interrupt = exc
        except ApproxAuditError:
            if auditor is not None:
                auditor.close("error", "stopped by an input error")
                records.extend(auditor.records)
            raise
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - recorded, written, re-raised
            status = "error"
            message, interrupt = _failure(i, exc)
            if auditor is not None:
                _close_failed(auditor, message)
                records.extend(auditor.records)
            break
        if auditor is not None:
            records.extend(auditor.records)
        if interrupt is not None:
            break
    try:
        verdicts, results = finish_results(config, spec_dict, records, status, message, started)
    except KeyboardInterrupt as exc:
        # Ctrl-C (or SIGTERM) while ruling: what was measured is kept; the verdicts can be
        # ruled again from the trace (approx-audit report DIR)
        results = _write_unruled(config, records, started)
        exc.audit_result = AuditResult("interrupted", [], results,   # type: ignore[attr-defined]
                                       results["message"])
        raise exc
    _finish_sinks(config.sinks, verdicts, len(records))
    if config.out is not None:
        write_json_atomic(config.out / "results.json", results)
    result = AuditResult(status, verdicts, results, message)
    if interrupt is not None:
        interrupt.audit_result = result  # type: ignore[attr-defined]
        raise interrupt
    return result
