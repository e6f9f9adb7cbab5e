"""Option defaults from ``approx-audit.toml`` or ``[tool.approx-audit]`` in ``pyproject.toml``.

Precedence (click's own): command line over ``APPROX_AUDIT_<COMMAND>_<OPTION>`` environment
variables over the configuration file over the option's default.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from pathlib import Path

from ..bounds.errors import ApproxAuditError

ENV_PREFIX = "APPROX_AUDIT"
CONFIG_FILE = "approx-audit.toml"


def load_config(folder: str | os.PathLike | None = None) -> tuple[dict, str | None]:
    """Option defaults per command from ``approx-audit.toml`` (tables ``[run]``, ``[compare]``,
    …) or else ``[tool.approx-audit]`` in ``pyproject.toml``, in ``folder`` (default: the
    current one). Returns (default map, the file used or None). A broken file is an error."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli as tomllib  # type: ignore[no-redef]
        except ModuleNotFoundError:
            return {}, None
    base = Path(folder or os.getcwd())
    for path, key in ((base / CONFIG_FILE, None), (base / "pyproject.toml", "approx-audit")):
        if not path.is_file():
            continue
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ApproxAuditError(f"{path} is not valid TOML: {exc}; fix or remove it") from None
        if key is not None:
            data = data.get("tool", {}).get(key)
            if data is None:
                continue
        if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
            raise ApproxAuditError(f"{path}: give one table per command, e.g. [run] with "
                                   "steps = 300" + (" under [tool.approx-audit.run]" if key else ""))
        # option names as on the command line, with - or _
        return ({cmd: {k.replace("-", "_"): v for k, v in opts.items()}
                 for cmd, opts in data.items()}, str(path))
    return {}, None


def config_file() -> str | None:
    """The configuration file in the current folder, recorded in results.json (or None)."""
    return load_config()[1]


def check_config(default_map: dict, path: str | None, commands: Mapping) -> None:
    """Unknown commands or options in the configuration file are errors, not silently
    ignored; ``commands`` maps each command's name to its click command."""
    for cmd, opts in default_map.items():
        command = commands.get(cmd)
        if command is None:
            raise ApproxAuditError(f"{path}: no command [{cmd}]; commands: "
                                   f"{', '.join(sorted(commands))}")
        params = {p.name: p for p in command.params if p.name}
        for key, value in opts.items():
            if key not in params:
                close = difflib.get_close_matches(key, sorted(params), n=1)
                hint = f"; did you mean {close[0]}?" if close else ""
                raise ApproxAuditError(f"{path}: [{cmd}] has no option {key!r}{hint}")
            _check_value(path, cmd, key, value, params[key])


def _check_value(path, cmd: str, key: str, value, param) -> None:
    """A file's value click would mangle: infinity or NaN (``steps = 1e400`` reads as inf),
    or a float for an integer option (click truncates 2.5 to 2)."""
    import math

    import click

    if isinstance(value, float) and not math.isfinite(value):
        raise ApproxAuditError(f"{path}: [{cmd}] {key} = {value}: not a finite number")
    if (isinstance(value, float) and isinstance(param.type, click.types.IntParamType)):
        raise ApproxAuditError(f"{path}: [{cmd}] {key} = {value!r}: give an integer")
