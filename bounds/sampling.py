"""Random draws of a bound's constants that satisfy its conditions.

Used to probe properties numerically (the direction in which a constant moves the right-hand
side) and by the catalogue test suite. Draws are log-uniform over each symbol's natural range;
conditions are imposed by rejection, vectorised.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from . import symbols as S

if TYPE_CHECKING:  # pragma: no cover
    from .bound import Bound

_LOG_RANGE = (-2.0, 2.0)  # 1e-2 .. 1e2 for unbounded positive constants
_INT_RANGE = {"K": (1, 400), "n": (2, 5000), "d": (1, 500)}


def _draw_symbol(name: str, size: int, rng: np.random.Generator) -> np.ndarray:
    info = S.info(name)
    if info.integer:
        lo, hi = _INT_RANGE.get(name, (1, 100))
        # log-uniform over integers so small horizons are drawn as often as large ones
        return np.floor(np.exp(rng.uniform(np.log(lo), np.log(hi + 1), size))).clip(lo, hi)
    if np.isfinite(info.upper):
        lo = info.lower
        return rng.uniform(lo, info.upper, size).clip(np.nextafter(lo, 1), None)
    return 10.0 ** rng.uniform(*_LOG_RANGE, size)


def draw(bound: "Bound", size: int = 64, seed: int = 0, max_tries: int = 50) -> dict[str, np.ndarray]:
    """``size`` joint draws of every symbol the bound uses, each satisfying all its conditions.

    Raises ``RuntimeError`` if the conditions are (almost) never satisfied by random draws.
    """
    rng = np.random.default_rng(seed)
    names = sorted(bound.symbols)
    kept: dict[str, list[np.ndarray]] = {nm: [] for nm in names}
    have = 0
    batch = max(4096, 16 * size)
    for _ in range(max_tries):
        sample = {nm: _draw_symbol(nm, batch, rng) for nm in names}
        ok = np.broadcast_to(bound.condition_mask(**sample), (batch,))
        if ok.any():
            for nm in names:
                kept[nm].append(sample[nm][ok])
            have += int(ok.sum())
        if have >= size:
            break
    if have < size:
        raise RuntimeError(f"{bound.id}: only {have} random draws satisfied its conditions")
    return {nm: np.concatenate(v)[:size] for nm, v in kept.items()}

