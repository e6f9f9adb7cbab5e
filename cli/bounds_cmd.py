"""``approx-audit bounds ...``: list, show, evaluate and invert catalogue bounds."""

from __future__ import annotations

import json

import click
import numpy as np
import sympy as sp

from ..bounds import catalogue, get_assumption
from ..bounds.bound import Bound
from ..bounds.errors import InvalidValueError
from .values import format_number, parse_assignments

FORMAT_TEXT_JSON = click.Choice(["text", "json"])


def _emit_json(obj: object) -> None:
    click.echo(json.dumps(obj, indent=2, allow_nan=False))


def _check_used(bound: Bound, values: dict) -> None:
    unused = sorted(set(values) - set(bound.symbols))
    if unused:
        raise InvalidValueError(
            f"bound {bound.id} does not use {', '.join(unused)} "
            f"(it uses {', '.join(sorted(bound.symbols))})")


@click.group()
def bounds() -> None:
    """The bound library: list, show, evaluate and invert catalogue bounds."""


@bounds.command("list")
@click.option("--algorithm", help="Only bounds for this algorithm (gd, agd, sgd, ...).")
@click.option("--assumption", help="Only bounds resting on this assumption (convex, pl, ...).")
@click.option("--quantity", help="Only bounds on this quantity (last_iterate_gap, ...).")
@click.option("--format", "fmt", type=FORMAT_TEXT_JSON, default="text", show_default=True)
def list_cmd(algorithm: str | None, assumption: str | None, quantity: str | None, fmt: str) -> None:
    """List catalogue bounds, optionally filtered."""
    found = catalogue.query(algorithm=algorithm, assumption=assumption, quantity=quantity)
    if fmt == "json":
        _emit_json([b.to_dict() for b in found])
        return
    if not found:
        click.echo("no bound matches these filters", err=True)
        return
    width = max(len(b.id) for b in found)
    for b in found:
        flags = ",".join(b.verified) + (",tight" if b.tight else "")
        ex = "E " if b.expectation else ""
        click.echo(f"{b.id:<{width}}  {ex}{b.quantity.value} {b.relation} {sp.sstr(b.rhs)}"
                   f"  [{flags}]")
    click.echo(f"{len(found)} bound(s)", err=True)


@bounds.command("show")
@click.argument("bound_id")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "latex", "mathml"]),
              default="text", show_default=True)
def show_cmd(bound_id: str, fmt: str) -> None:
    """Show one bound: statement, assumptions, conditions, citation, verification."""
    b = catalogue.get(bound_id)
    if fmt == "json":
        payload = b.to_dict()
        payload["order"] = sp.sstr(b.order())
        payload["doc"] = b.doc
        _emit_json(payload)
        return
    if fmt == "latex":
        click.echo(b.latex())
        return
    if fmt == "mathml":
        click.echo(b.mathml())
        return
    optional = [
        f"  step rule:   {sp.sstr(b.step_rule)}" if b.step_rule is not None else None,
        f"  how:         {b.verification_note}" if b.verification_note else None,
    ]
    lines = [
        b.id,
        f"  {b.summary}",
        f"  statement:   {'E ' if b.expectation else ''}{b.quantity.value} {b.relation} "
        f"{sp.sstr(b.rhs)}",
        f"  quantity:    {b.quantity.description}",
        f"  algorithm:   {b.algorithm} (setting: {b.setting})",
        f"  order in K:  O({sp.sstr(b.order())})",
        "  assumptions:",
        *[f"    - {a}: {get_assumption(a).description}" for a in b.assumptions],
        "  conditions:" if b.conditions_ else "  conditions:  none",
        *[f"    - {c}" for c in b.condition_strings()],
        *([optional[0]] if optional[0] else []),
        f"  tight:       {'yes' if b.tight else 'no'}",
        f"  citation:    {', '.join(b.citation.authors)} ({b.citation.year}). "
        f"{b.citation.title}. {b.citation.venue}. {b.citation.locator}.",
        f"  verified:    {', '.join(b.verified)}",
        *([optional[1]] if optional[1] else []),
        "",
        b.doc,
    ]
    click.echo("\n".join(lines))


@bounds.command("eval")
@click.argument("bound_id")
@click.argument("values", nargs=-1)
@click.option("--format", "fmt", type=FORMAT_TEXT_JSON, default="text", show_default=True)
def eval_cmd(bound_id: str, values: tuple[str, ...], fmt: str) -> None:
    """Evaluate a bound at NAME=VALUE... (K may be a range K=1:100 or a list K=1,10,100).

    Values are numbers or expressions over other given names, e.g. eta=1/L.
    """
    b = catalogue.get(bound_id)
    vals = parse_assignments(values)
    _check_used(b, vals)
    k_grid = np.atleast_1d(np.asarray(vals["K"], dtype=float)) if "K" in vals else None
    rhs = np.atleast_1d(np.asarray(b.evaluate(**vals), dtype=float))
    if k_grid is not None and rhs.shape != k_grid.shape:
        rhs = np.broadcast_to(rhs, k_grid.shape)
    conds = b.conditions(**{k: v for k, v in vals.items()})
    fixed = {k: v for k, v in vals.items() if k != "K"}
    if fmt == "json":
        _emit_json({
            "id": b.id,
            "values": fixed,
            "K": [] if k_grid is None else [int(x) for x in k_grid],
            "rhs": [float(x) for x in rhs],
            "relation": b.relation,
            "conditions": [c.to_dict() for c in conds],
        })
        return
    click.echo(f"{b.id}: {b.quantity.value} {b.relation} {sp.sstr(b.rhs)}")
    if fixed:
        click.echo("  at " + ", ".join(f"{k}={format_number(v)}" for k, v in fixed.items()))
    if k_grid is None:
        click.echo(f"  rhs = {format_number(float(rhs[0]))}")
    else:
        click.echo(f"  {'K':>10}  rhs")
        for kk, r in zip(k_grid, rhs):
            click.echo(f"  {int(kk):>10}  {format_number(float(r))}")
    _echo_conditions(conds)


def _echo_conditions(conds) -> None:
    for c in conds:
        if c.holds is None:
            click.echo(f"  condition {c.condition}: unknown (needs {', '.join(c.missing)})")
        elif c.holds:
            click.echo(f"  condition {c.condition}: holds (slack {format_number(c.slack)})")
        else:
            ratio = f", lhs/rhs = {format_number(c.ratio)}" if c.ratio is not None else ""
            click.echo(f"  condition {c.condition}: FAILS (slack {format_number(c.slack)}{ratio})")


@bounds.command("complexity")
@click.argument("bound_id")
@click.argument("values", nargs=-1)
@click.option("--eps", "eps", required=True, help="Target accuracy (a positive number).")
@click.option("--format", "fmt", type=FORMAT_TEXT_JSON, default="text", show_default=True)
def complexity_cmd(bound_id: str, values: tuple[str, ...], eps: str, fmt: str) -> None:
    """Smallest K at which the bound's right-hand side is at most EPS."""
    from ..bounds.parser import parse_number

    b = catalogue.get(bound_id)
    target = parse_number(eps)
    if target <= 0:
        raise InvalidValueError(f"--eps {eps} must be positive")
    vals = parse_assignments(values)
    _check_used(b, vals)
    res = b.iterations_to_details(target, **vals)
    conds = b.conditions(**vals, K=res.K)
    if fmt == "json":
        _emit_json({"id": b.id, "eps": target, "values": vals, "K": res.K,
                    "rhs_at_K": res.value, "method": res.method, "kind": b.kind,
                    "conditions": [c.to_dict() for c in conds]})
        return
    what = ("iterations needed by any such method (lower bound)" if b.kind == "lower"
            else "iterations sufficient by this bound")
    click.echo(f"{b.id}: K = {res.K} ({what}; rhs = {format_number(res.value)} <= "
               f"{format_number(target)}; {res.method.replace('_', ' ')})")
    _echo_conditions(conds)

