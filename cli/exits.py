"""The command's exit codes (one place; every command and ``main`` read them here)."""

from __future__ import annotations

EXIT_OK = 0
EXIT_VIOLATED = 1      # a bound violated (or inconclusive under --fail-on inconclusive)
EXIT_USAGE = 2         # usage or input error: one line on stderr, nothing lost
EXIT_INTERNAL = 3      # the run diverged, failed or was interrupted; or a bug


def exit_code_for(status: str, counts: dict, fail_on: str) -> int:
    """The exit code of an audit with ``status`` and verdict ``counts`` under ``--fail-on``."""
    if status in ("error", "interrupted", "diverged"):
        return EXIT_INTERNAL
    if fail_on != "never" and counts.get("violated"):
        return EXIT_VIOLATED
    if fail_on == "inconclusive" and counts.get("inconclusive"):
        return EXIT_VIOLATED
    return EXIT_OK
