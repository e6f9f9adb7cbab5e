"""The catalogue: a registry of bounds filled by decorated factories, one per theorem.

>>> from approx_audit.bounds import catalogue
>>> b = catalogue.get("gd.smooth_convex.drori_teboulle_2014")
>>> b.tight
True
>>> [x.id for x in catalogue.query(algorithm="gd", quantity="last_iterate_dist_sq")][:1]
['gd.smooth_strongly_convex.beck_2017']
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import inspect
import pkgutil
from typing import Callable, Iterator

from .assumptions import get_assumption
from .bound import Bound
from .errors import ApproxAuditError, UnknownBoundError
from .quantities import Quantity

Factory = Callable[[], Bound]

_FACTORIES: list[Factory] = []


def register(factory: Factory) -> Factory:
    """Decorator for a family module's factory: the bound it returns joins the catalogue.

    The factory's docstring becomes the bound's ``doc`` (the math, assumptions, tightness,
    differences from PyTorch, and the reference).
    """
    _FACTORIES.append(factory)
    return factory


class Catalogue:
    """Registered bounds by id. Iteration order is by id."""

    def __init__(self) -> None:
        self._bounds: dict[str, Bound] | None = None
        self._extra: dict[str, Bound] = {}

    def _load(self) -> dict[str, Bound]:
        if self._bounds is None:
            from . import families

            for mod in pkgutil.iter_modules(families.__path__):
                importlib.import_module(f"{families.__name__}.{mod.name}")
            bounds: dict[str, Bound] = {}
            for factory in _FACTORIES:
                bound = factory()
                if factory.__doc__ and not bound.doc:
                    bound = dataclasses.replace(bound, doc=inspect.cleandoc(factory.__doc__))
                if bound.id in bounds:
                    raise RuntimeError(f"duplicate bound id {bound.id}")
                bounds[bound.id] = bound
            self._bounds = dict(sorted(bounds.items()))
        return {**self._bounds, **self._extra}

    # ------------------------------------------------------------------ access
    def get(self, bound_id: str) -> Bound:
        bounds = self._load()
        try:
            return bounds[bound_id]
        except KeyError:
            close = difflib.get_close_matches(bound_id, list(bounds), n=3, cutoff=0.4)
            if not close:  # try the last parts of the id, which users remember best
                tail = bound_id.split(".")[-1]
                close = [b for b in bounds if tail and tail in b][:3]
            hint = f"; close matches: {', '.join(close)}" if close else ""
            raise UnknownBoundError(
                f"unknown bound id {bound_id!r}{hint} (see 'approx-audit bounds list')") from None

    def __iter__(self) -> Iterator[Bound]:
        return iter(self._load().values())

    def __len__(self) -> int:
        return len(self._load())

    def __contains__(self, bound_id: object) -> bool:
        return bound_id in self._load()

    def ids(self) -> list[str]:
        return list(self._load())

    def query(self, algorithm: str | None = None, assumption: str | None = None,
              quantity: str | Quantity | None = None, setting: str | None = None,
              kind: str | None = None) -> list[Bound]:
        """Bounds matching every given filter (``assumption``: the bound rests on it)."""
        if assumption is not None:
            get_assumption(assumption)  # unknown ids are an error, not an empty answer
        if quantity is not None:
            try:
                quantity = Quantity(quantity)
            except ValueError:
                known = ", ".join(q.value for q in Quantity)
                raise ApproxAuditError(f"unknown quantity {quantity!r} (known: {known})") from None
        if algorithm is not None:
            algos = sorted({b.algorithm for b in self})
            if algorithm not in algos:
                close = difflib.get_close_matches(algorithm, algos, n=3, cutoff=0.4)
                hint = f"; did you mean {', '.join(close)}?" if close else ""
                raise ApproxAuditError(
                    f"unknown algorithm {algorithm!r}{hint} (known: {', '.join(algos)})")
        out = []
        for b in self:
            if algorithm is not None and b.algorithm != algorithm:
                continue
            if assumption is not None and assumption not in b.assumptions:
                continue
            if quantity is not None and b.quantity != quantity:
                continue
            if setting is not None and b.setting != setting:
                continue
            if kind is not None and b.kind != kind:
                continue
            out.append(b)
        return out

    # ------------------------------------------------------------------ for tests and users
    def add(self, bound: Bound) -> None:
        """Register a bound at run time (a user's own, or a deliberately wrong one in a test)."""
        if bound.id in self._load():
            raise ApproxAuditError(f"a bound with id {bound.id!r} is already registered")
        self._extra[bound.id] = bound

    def remove(self, bound_id: str) -> None:
        """Remove a bound added with :meth:`add` (catalogue bounds cannot be removed)."""
        if bound_id not in self._extra:
            raise ApproxAuditError(f"{bound_id!r} was not added at run time")
        del self._extra[bound_id]


catalogue = Catalogue()
