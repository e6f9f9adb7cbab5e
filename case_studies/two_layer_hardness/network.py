"""The 3-node network of Blum & Rivest with hard linear-threshold units, evaluated in numpy.

A network is two hidden units ``h_k(x) = 1[w_k·x + b_k > 0]`` (k = 1, 2) and an output
Boolean function of ``(h_1, h_2)``, stored as a truth table ``t`` of four bits indexed by
``2*h_1 + h_2``. The output unit of the theorem is a linear threshold function (LTF) of
``(h_1, h_2)``: every table except XOR and XNOR. Labels are ``+1`` / ``-1``.

This module is the single source of truth for "how many points does this network
misclassify": every solver's answer (MILP, exhaustive search, relaxation) is re-scored here.

The trainable (relaxed) network is the library's
:class:`~approx_audit.auditor.workloads.ThreeNodeNet` (see :mod:`.relaxation`); this class is
not a second copy of it but the study's independent scorer: plain numpy (the exact solvers
never import torch), any of the 16 output tables (the generic MILP may allow XOR), ±1 labels.
A test checks that it and ``ThreeNodeNet.hard_forward`` agree point by point.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import StudyInputError

AND = (0, 0, 0, 1)
NAND = (1, 1, 1, 0)
XOR = (0, 1, 1, 0)
XNOR = (1, 0, 0, 1)
#: The 14 truth tables a threshold output unit can compute (all but XOR and XNOR).
LTF_TABLES = tuple(t for t in ((a, b, c, d) for a in (0, 1) for b in (0, 1)
                               for c in (0, 1) for d in (0, 1)) if t not in (XOR, XNOR))


@dataclass(frozen=True)
class Network:
    """Weights ``W`` (2×d), biases ``b`` (2,) and output truth table ``table`` (4 bits)."""

    W: np.ndarray
    b: np.ndarray
    table: tuple[int, int, int, int] = AND

    def hidden(self, X: np.ndarray) -> np.ndarray:
        """Hidden activations, an n×2 boolean array: ``h_k = 1[w_k·x + b_k > 0]`` (strict)."""
        return (np.asarray(X, dtype=float) @ np.asarray(self.W, dtype=float).T
                + np.asarray(self.b, dtype=float)) > 0

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Labels in {+1, −1} computed by the hard network."""
        h = self.hidden(X).astype(int)
        out = np.asarray(self.table, dtype=int)[2 * h[:, 0] + h[:, 1]]
        return np.where(out == 1, 1, -1)

    def errors(self, X: np.ndarray, y: np.ndarray) -> int:
        """Number of points whose predicted label differs from ``y``."""
        return int(np.sum(self.predict(X) != np.asarray(y)))

    def to_dict(self) -> dict:
        return {"W": np.asarray(self.W, dtype=float).tolist(),
                "b": np.asarray(self.b, dtype=float).tolist(), "table": list(self.table)}


def is_threshold_table(table) -> bool:
    """True when the output table is a linear threshold function of (h_1, h_2)."""
    return tuple(int(v) for v in table) in LTF_TABLES


def check_data(X, y) -> tuple[np.ndarray, np.ndarray]:
    """Validate and convert a data set: ``X`` finite n×d with n, d ≥ 1, ``y`` in {+1, −1}^n.

    Raises :class:`StudyInputError` (one line, naming the problem) otherwise.
    """
    X = np.asarray(X, dtype=float)
    y = np.asarray(y)
    if X.ndim != 2 or X.shape[0] < 1 or X.shape[1] < 1:
        raise StudyInputError(f"X must be an n×d array with n, d >= 1, got shape {X.shape}")
    if not np.all(np.isfinite(X)):
        raise StudyInputError("X contains NaN or infinite entries; remove or impute them")
    if y.shape != (X.shape[0],):
        raise StudyInputError(f"y must have shape ({X.shape[0]},) to match X, got {y.shape}")
    if not np.all((y == 1) | (y == -1)):
        raise StudyInputError("labels y must be +1 or -1 (map {0,1} labels with 2*y-1)")
    return X, y.astype(int)
