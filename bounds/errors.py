"""Exceptions for user mistakes: one type per kind, one line each, naming the value and the fix."""

from __future__ import annotations


class ApproxAuditError(Exception):
    """Base of every error caused by what a user asked for (the CLI exits with code 2)."""


class UnknownBoundError(ApproxAuditError, LookupError):
    """A bound id that is not in the catalogue."""


class UnknownSymbolError(ApproxAuditError, LookupError):
    """A name that is not in the canonical symbol table."""


class ExpressionError(ApproxAuditError, ValueError):
    """Text that the safe expression parser refuses."""


class MissingValueError(ApproxAuditError, ValueError):
    """A constant a bound needs was not given."""


class InvalidValueError(ApproxAuditError, ValueError):
    """A value outside its symbol's domain (e.g. a negative step size)."""


class UnreachableTargetError(ApproxAuditError, ValueError):
    """``iterations_to`` was asked for an accuracy the bound never reaches."""
