"""``approx-audit verify FILE``: re-check a certificate or counterexample in exact arithmetic.

Uses only :mod:`approx_audit.bounds.verify` (standard library): no solver, no numpy.
Exit 0 proved, 1 refuted, 2 malformed (one-line error).
"""

from __future__ import annotations

import click

EXIT = {"proved": 0, "refuted": 1, "malformed": 2}


@click.command("verify")
@click.argument("file", type=click.Path(dir_okay=False))
def verify(file):
    """Re-check FILE (from check --certificate-out) exactly: exit 0 proved, 1 refuted, 2 malformed."""
    from ..bounds.verify import verify_file

    outcome, why = verify_file(file)
    if outcome == "malformed":
        click.echo(f"error: {file}: {why}", err=True)
    else:
        click.echo(f"{outcome}: {why}")
    raise SystemExit(EXIT[outcome])
