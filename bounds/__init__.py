"""The bound library: optimizers' guarantees as sympy objects you can evaluate, print and check.

>>> from approx_audit.bounds import catalogue
>>> b = catalogue.get("gd.smooth_convex.drori_teboulle_2014")
>>> float(b.evaluate(L=1, R=1, eta=1, K=10))  # L R^2 / (4 K eta L + 2)
0.023809523809523808
>>> b.iterations_to(1e-3, L=1, R=1, eta=1)
250

Never imports torch.
"""

from .assumptions import ASSUMPTIONS, Assumption, get_assumption
from .bound import Bound, ConditionResult, IterationsResult
from .catalogue import Catalogue, catalogue, register
from .citation import Citation
from .errors import (ApproxAuditError, ExpressionError, InvalidValueError, MissingValueError,
                     UnknownBoundError, UnknownSymbolError, UnreachableTargetError)
from .parser import parse_expression, parse_number
from .quantities import Quantity
from .symbols import SYMBOLS

__all__ = [
    "ASSUMPTIONS", "ApproxAuditError", "Assumption", "Bound", "Catalogue", "Citation",
    "ConditionResult", "ExpressionError", "InvalidValueError", "IterationsResult",
    "MissingValueError", "Quantity", "SYMBOLS", "UnknownBoundError", "UnknownSymbolError",
    "UnreachableTargetError", "catalogue", "get_assumption", "parse_expression", "parse_number",
    "register",
]
