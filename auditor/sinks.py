"""Sinks: where an audit's trace records go besides ``trace.jsonl`` (issue 20).

A sink is any object with ``write(record)`` (every trace record, as emitted),
``verdicts(verdicts, step)`` (the :meth:`~.judge.Verdict.to_dict` list at the end) and
``close()``. The Auditor calls them and drops a sink that raises (with one warning), so a
logging backend can never stop the user's training. Three sinks live here:

* :class:`TensorBoardSink`: event files (``torch.utils.tensorboard``, extra ``[tensorboard]``);
* :class:`WandbSink`: a Weights & Biases run (extra ``[wandb]``);
* :class:`ProgressSink`: a one-line progress bar on stderr, no dependency.

What is logged: ``lr`` and every observable key (:data:`~.observables.OBSERVABLES`) of a record
that holds a finite number, as ``audit/<key>`` at step ``k`` (the record's horizon: 0 for the
init record, t + 1 after step t, K for the final checkpoint). Bookkeeping fields
(:data:`~.observables.RECORD_FIELDS`), None, NaN and booleans are left out.

Torch-free at import: each framework is imported when its sink is built, and a missing one is
a one-line :class:`MissingExtraError` naming the extra to install.
"""

from __future__ import annotations

import math
import os
import re
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from numbers import Real
from pathlib import Path
from typing import Any, TextIO

from ..bounds.errors import ApproxAuditError
from .observables import KEY, OBSERVABLES

__all__ = ["MissingExtraError", "ProgressSink", "TensorBoardSink", "WandbSink", "scalars_of"]

PREFIX = "audit"


class MissingExtraError(ApproxAuditError, ImportError):
    """A sink whose framework is not installed (the message names the pip extra)."""


def _finite(value: Any) -> float | None:
    """``value`` as a float when it is a finite real number (booleans are flags, not values)."""
    if isinstance(value, bool) or not isinstance(value, Real):
        return None
    x = float(value)
    return x if math.isfinite(x) else None


def scalars_of(record: Mapping[str, Any]) -> dict[str, float]:
    """The loggable numbers of one trace record: ``lr`` and the observable keys holding a
    finite number, in the record's order (so every sink logs the same set)."""
    out: dict[str, float] = {}
    for key, value in record.items():
        if key != "lr" and key not in OBSERVABLES:
            continue
        x = _finite(value)
        if x is not None:
            out[key] = x
    return out


def _tag(key: str, run: int, by_folder: bool) -> str:
    """``audit/<key>``; when runs share one place (no sub-folder per run), runs after the
    first get ``audit/run<i>/<key>`` so a later seed never overwrites the first one's curve."""
    if by_folder or run == 0:
        return f"{PREFIX}/{key}"
    return f"{PREFIX}/run{run}/{key}"


def _series_points(verdict: Mapping[str, Any]) -> list[tuple[int, float | None, float | None]]:
    """(K, observed, predicted) of a verdict's series (``k`` in results.json; ``K`` accepted
    too); non-finite values are None, and a verdict without a series gives nothing."""
    s = verdict.get("series") or {}
    ks = s.get("k", s.get("K")) or []
    obs, pred = s.get("observed") or [], s.get("predicted") or []
    points = []
    for i, k in enumerate(ks):
        kk = _finite(k)
        if kk is None:
            continue
        points.append((int(round(kk)), _finite(obs[i]) if i < len(obs) else None,
                       _finite(pred[i]) if i < len(pred) else None))
    return points


def _missing(what: str, package: str, extra: str) -> MissingExtraError:
    return MissingExtraError(f"{what} needs the {package} package: "
                             f"pip install 'approx-audit[{extra}]'")


class TensorBoardSink:
    """TensorBoard event files of an audit.

    Layout (``run_prefix=True``, the default): one sub-folder per run, ``logdir/run0``,
    ``logdir/run1`` … — also for a single seed, so the layout never depends on the seed count
    (which a sink only learns from the start record); TensorBoard shows each as a run. The
    verdicts (observed and predicted per bound, over all runs) go to ``logdir/verdicts`` with
    the custom-scalars layout. ``run_prefix=False`` writes everything into ``logdir`` itself
    (e.g. a folder a training logger already owns); runs after the first then use the tags
    ``audit/run<i>/<key>``.
    """

    def __init__(self, logdir: str | Path, *, run_prefix: bool = True) -> None:
        try:
            import tensorboard  # noqa: F401 - SummaryWriter's backend
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise _missing("TensorBoard logging", "tensorboard", "tensorboard") from None
        self._writer_cls = SummaryWriter
        self.logdir = Path(logdir)
        self.run_prefix = run_prefix
        self._writers: dict[str, Any] = {}

    def _writer(self, folder: str):
        """The writer of ``logdir/folder`` (``""``: logdir), opened on first use — also after
        :meth:`close`, so records that arrive later are still written (to a new event file)."""
        w = self._writers.get(folder)
        if w is None:
            w = self._writer_cls(log_dir=str(self.logdir / folder) if folder else
                                 str(self.logdir))
            self._writers[folder] = w
        return w

    def write(self, record: Mapping[str, Any]) -> None:
        """Every loggable number of the record as ``audit/<key>`` at global step ``k``."""
        k = _finite(record.get("k"))
        if k is None:
            return
        values = scalars_of(record)
        if not values:
            return
        run = int(record.get("run") or 0)
        w = self._writer(f"run{run}" if self.run_prefix else "")
        for key, x in values.items():
            w.add_scalar(_tag(key, run, self.run_prefix), x, global_step=int(round(k)))

    def verdicts(self, verdicts: Sequence[Mapping[str, Any]], step: int) -> None:
        """Observed and predicted of every bound with a series, a "margin" chart per bound
        showing both together, and a table of the rulings as text."""
        w = self._writer("verdicts" if self.run_prefix else "")
        charts: dict[str, list] = {}
        for v in verdicts:
            points = _series_points(v)
            if not points:
                continue
            bid = str(v.get("id"))
            for name, j in (("observed", 1), ("predicted", 2)):
                for p in points:
                    if p[j] is not None:
                        w.add_scalar(f"{PREFIX}/{bid}/{name}", p[j], global_step=p[0])
            charts[bid] = ["Multiline", [f"^{PREFIX}/{re.escape(bid)}/observed$",
                                         f"^{PREFIX}/{re.escape(bid)}/predicted$"]]
        if charts:
            w.add_custom_scalars({"margin": charts})
        if verdicts:
            rows = ["| bound | verdict | reason |", "|---|---|---|"]
            rows += [f"| {v.get('id')} | {v.get('verdict')} | "
                     f"{str(v.get('reason') or '').replace('|', '/')} |" for v in verdicts]
            w.add_text(f"{PREFIX}/verdicts", "\n".join(rows), global_step=int(step))
        w.flush()

    def close(self) -> None:
        """Flush and close every writer (idempotent)."""
        writers, self._writers = self._writers, {}
        for w in writers.values():
            w.flush()
            w.close()


class WandbSink:
    """A Weights & Biases run of the audit: an existing ``wandb.run`` if there is one (so an
    audit inside a training script logs beside its own metrics), else ``wandb.init(project=,
    name=run, **init_kwargs)`` — finished at :meth:`close` only when this sink started it.

    One ``wandb.log`` per record, with the record's ``k`` as ``audit/k`` (the step metric of
    ``audit/*``; W&B's own step is left to the training's logging). Runs after the first log
    under ``audit/run<i>/<key>``. Only the process that built the sink logs: a forked worker
    (a DataLoader, a DDP rank started by fork) is silently ignored.
    """

    def __init__(self, project: str | None = None, run: str | None = None,
                 **init_kwargs: Any) -> None:
        try:
            import wandb
        except ImportError:
            raise _missing("W&B logging", "wandb", "wandb") from None
        self._wandb = wandb
        self._pid = os.getpid()
        self._owned = wandb.run is None
        if self._owned:
            kwargs = {"project": project, "name": run, **init_kwargs}
            self._run = wandb.init(**{k: v for k, v in kwargs.items() if v is not None})
        else:
            self._run = wandb.run
        self._run.define_metric(f"{PREFIX}/k")
        self._run.define_metric(f"{PREFIX}/*", step_metric=f"{PREFIX}/k")
        self._closed = False

    def _active(self) -> bool:
        return not self._closed and os.getpid() == self._pid

    def write(self, record: Mapping[str, Any]) -> None:
        """The record's loggable numbers in one ``wandb.log`` call."""
        k = _finite(record.get("k"))
        if not self._active() or k is None:
            return
        run = int(record.get("run") or 0)
        values = {_tag(key, run, False): x for key, x in scalars_of(record).items()}
        if values:
            self._run.log({f"{PREFIX}/k": int(round(k)), **values})

    def verdicts(self, verdicts: Sequence[Mapping[str, Any]], step: int) -> None:
        """Observed and predicted per bound at each K of its series (one log per K), and each
        ruling in the run's summary."""
        if not self._active():
            return
        for v in verdicts:
            bid = str(v.get("id"))
            self._run.summary[f"{PREFIX}/{bid}/verdict"] = v.get("verdict")
            for k, obs, pred in _series_points(v):
                row = {f"{PREFIX}/{bid}/{n}": x for n, x in (("observed", obs),
                                                             ("predicted", pred))
                       if x is not None}
                if row:
                    self._run.log({f"{PREFIX}/k": k, **row})

    def close(self) -> None:
        """Finish the W&B run if this sink started it (idempotent)."""
        if self._closed or os.getpid() != self._pid:
            return
        self._closed = True
        if self._owned:
            self._run.finish()


def _clock_text(seconds: float) -> str:
    s = max(0, int(round(seconds)))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


class ProgressSink:
    """A one-line progress bar: run i/n, steps done/total, the current loss and the run's ETA,
    redrawn in place with ``\\r`` at most every ``min_interval`` seconds and finished with a
    newline at each run's end record. No dependency.

    ``stream`` defaults to ``sys.stderr`` as it is when the sink is built (a test's or click's
    replacement included); ``enabled=None`` draws only when the stream is a terminal, so logs
    and pipes never fill with carriage returns. ``clock`` (default ``time.monotonic``) is
    injectable so tests do not depend on timing. ``runs`` defaults to the start record's
    ``config.seeds`` (else 1).
    """

    def __init__(self, total_steps: int, *, stream: TextIO | None = None,
                 enabled: bool | None = None, runs: int | None = None,
                 clock: Callable[[], float] = time.monotonic, min_interval: float = 0.1,
                 width: int = 20) -> None:
        self.total = max(0, int(total_steps))
        self.stream = sys.stderr if stream is None else stream
        if enabled is None:
            isatty = getattr(self.stream, "isatty", None)
            enabled = bool(isatty()) if callable(isatty) else False
        self.enabled = enabled
        self.runs = runs
        self.clock, self.min_interval, self.width = clock, min_interval, width
        self._run, self._done, self._loss = 0, 0, None
        self._minibatch = False  # the loss shown is the training loss once one was seen
        self._t0: float | None = None
        self._last_draw: float | None = None
        self._shown = 0          # length of the line on screen (0: nothing to finish)

    def write(self, record: Mapping[str, Any]) -> None:
        """Follow the run's progress; redraw when enough time passed or the run ended."""
        if not self.enabled:
            return
        kind = record.get("record")
        if kind == "start":
            self._start(record)
            return
        k = _finite(record.get("k"))
        if kind == "step" and k is not None:
            self._done = int(round(k))
        loss = _finite(record.get(KEY.loss))
        if loss is not None:
            self._loss, self._minibatch = loss, True
        elif not self._minibatch and _finite(record.get(KEY.full_loss)) is not None:
            self._loss = _finite(record.get(KEY.full_loss))   # no minibatch loss probe
        if kind == "end":
            self._draw()
            self._finish()
        elif kind == "step":
            now = self.clock()
            if self._last_draw is None or now - self._last_draw >= self.min_interval:
                self._draw(now)

    def _start(self, record: Mapping[str, Any]) -> None:
        self._finish()
        self._run = int(record.get("run") or 0)
        if self.runs is None:
            seeds = (record.get("config") or {}).get("seeds")
            self.runs = int(seeds) if isinstance(seeds, int) and seeds > 0 else 1
        self._done, self._loss, self._last_draw, self._minibatch = 0, None, None, False
        self._t0 = self.clock()

    def line(self, now: float | None = None) -> str:
        """The bar's text: ``run 1/2  3/10 [######--------------]  30%  loss 1.234  ETA 00:07``."""
        total = self.total
        frac = min(1.0, self._done / total) if total else 0.0
        fill = int(round(frac * self.width))
        parts = []
        if (self.runs or 1) > 1:
            parts.append(f"run {self._run + 1}/{self.runs}")
        parts.append(f"{self._done}/{total} [{'#' * fill}{'-' * (self.width - fill)}] "
                     f"{frac * 100:3.0f}%")
        if self._loss is not None:
            parts.append(f"loss {self._loss:.4g}")
        now = self.clock() if now is None else now
        if self._done and self._t0 is not None:
            eta = (now - self._t0) / self._done * max(0, total - self._done)
            parts.append(f"ETA {_clock_text(eta)}")
        else:
            parts.append("ETA --:--")
        return "  ".join(parts)

    def _draw(self, now: float | None = None) -> None:
        now = self.clock() if now is None else now
        text = self.line(now)
        pad = " " * max(0, self._shown - len(text))   # erase a longer previous line
        self.stream.write("\r" + text + pad)
        self.stream.flush()
        self._shown = max(1, len(text))
        self._last_draw = now

    def _finish(self) -> None:
        if self._shown:
            self.stream.write("\n")
            self.stream.flush()
            self._shown = 0

    def verdicts(self, verdicts: Sequence[Mapping[str, Any]], step: int) -> None:
        """Nothing: the command prints the verdicts."""

    def close(self) -> None:
        """End a line left open (an interrupted run has no end record)."""
        if self.enabled:
            self._finish()


def tick(progress: Any, kind: str, run: int, k: int | None = None,
         loss: float | None = None) -> None:
    """For loops that write no trace (stability pairs, certify's training): tell a progress
    sink (or None) that run ``run`` started, made step ``k`` with ``loss``, or ended."""
    if progress is None:
        return
    record: dict[str, Any] = {"record": kind, "run": run}
    if k is not None:
        record["k"] = k
    if loss is not None:
        record[KEY.loss] = loss
    progress.write(record)
