"""``trace.jsonl``: one JSON object per line, appended and flushed as the run goes.

A crash or Ctrl-C loses nothing already written: every line is complete when ``write`` returns
(the file is flushed to the operating system; ``fsync`` is left out on purpose, it would cost a
disk round trip per step and only protects against a machine crash). ``read_trace`` tolerates a
last line cut short by a kill in the middle of a write.

Records carry ``"record"``: ``start`` (configuration of one run), ``init`` (measurements at
x_0), ``step`` (one optimizer step), ``final`` (a closing checkpoint at x_K), ``diverged`` and
``end`` (status and costs of the run). Every record carries ``"run"``, the index of the run
(one per seed).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Iterable

from ..bounds.errors import ApproxAuditError


class TraceError(ApproxAuditError):
    """A trace file that cannot be read as JSON lines."""


def clean(value: Any) -> Any:
    """JSON-safe copy: non-finite floats become None (JSON has no NaN), tuples become lists."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    return value


class TraceWriter:
    """Append records to ``path`` (created with its parent folder), one flushed line each."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "a", encoding="utf-8")

    def write(self, record: dict[str, Any]) -> None:
        if self._fh is None:
            raise TraceError(f"trace {self.path} is closed")
        self._fh.write(json.dumps(clean(record), allow_nan=False, separators=(",", ":")) + "\n")
        self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def __enter__(self) -> "TraceWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_trace(path: str | Path) -> list[dict[str, Any]]:
    """The records of ``path``. A last line cut short (a run killed mid-write) is dropped; a
    malformed line elsewhere raises :class:`TraceError` naming the line."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise TraceError(f"cannot read trace {path}: {exc.strerror or exc}") from None
    records = []
    for i, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except RecursionError:
            raise TraceError(f"{path}:{i} is nested too deeply to be a trace record") from None
        except json.JSONDecodeError:
            if i == len(lines):
                break  # cut short by a kill: everything before it is intact
            raise TraceError(f"{path}:{i} is not a JSON object; the trace is damaged") from None
        if not isinstance(rec, dict) or "record" not in rec:
            raise TraceError(f"{path}:{i} is not a trace record (no 'record' field)")
        problem = _problem(rec)
        if problem is not None:
            raise TraceError(f"{path}:{i}: {problem}; the trace was not written by approx-audit "
                             "or was edited")
        records.append(rec)
    return records


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))


def _problem(rec: dict[str, Any]) -> str | None:
    """What makes a record unusable (a hand-edited or foreign trace), in a few words; None
    when its fields have the types the judge reads."""
    if not isinstance(rec["record"], str):
        return "'record' is not a string"
    if "run" in rec and not _is_int(rec["run"]):
        return f"'run' is {rec['run']!r}, not an integer"
    if rec["record"] == "step" and not _is_int(rec.get("step")):
        return f"a step record's 'step' is {rec.get('step')!r}, not an integer"
    if rec["record"] != "start":
        return None
    facts, config, opt = rec.get("facts"), rec.get("config"), rec.get("optimizer")
    for name, value in (("facts", facts), ("config", config), ("optimizer", opt)):
        if value is not None and not isinstance(value, dict):
            return f"the start record's {name!r} is not an object"
    if isinstance(facts, dict) and not isinstance(facts.get("name"), str):
        return "the start record's facts have no 'name'"
    if isinstance(facts, dict) and not all(
            _is_num(facts.get(k)) for k in ("f_star", "f_lower", "n", "d")):
        return "the start record's facts hold a non-number where a number belongs"
    if isinstance(config, dict):
        assume = config.get("assume") or {}
        if not isinstance(assume, dict) or not all(
                isinstance(k, str) and _is_num(v) and v is not None for k, v in assume.items()):
            return "the start record's config.assume is not a map of names to numbers"
    if isinstance(opt, dict):
        if not isinstance(opt.get("name"), str) or not _is_num(opt.get("lr")):
            return "the start record's optimizer has no name or a non-number lr"
        sv = opt.get("symbol_values") or {}
        if not isinstance(sv, dict) or not all(_is_num(v) for v in sv.values()):
            return "the start record's optimizer.symbol_values holds a non-number"
    return None


def by_run(records: Iterable[dict[str, Any]]) -> dict[int, list[dict[str, Any]]]:
    """Records grouped by their ``run`` index, in file order."""
    out: dict[int, list[dict[str, Any]]] = {}
    for rec in records:
        out.setdefault(int(rec.get("run", 0)), []).append(rec)
    return out
