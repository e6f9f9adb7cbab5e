"""User mistakes in the two-layer hardness case study: one line each, exit code 2 in the CLI."""

from __future__ import annotations

from ...bounds.errors import ApproxAuditError


class StudyInputError(ApproxAuditError, ValueError):
    """Data or an option the study cannot use (wrong shape, labels not ±1, n < 1, ...)."""


class OutputDirError(ApproxAuditError, OSError):
    """The output folder cannot be created or written."""
