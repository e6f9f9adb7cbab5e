"""approx-audit: which optimization guarantees apply to a run, and how far observation is from them.

The import package gathers the repository's top-level folders:

* :mod:`approx_audit.bounds` -- the bound library (sympy; cvxpy lazily), never torch;
* :mod:`approx_audit.auditor` -- runs and measures optimizers (torch);
* :mod:`approx_audit.cli` -- the ``approx-audit`` command;
* :mod:`approx_audit.templates` -- Jinja report templates;
* :mod:`approx_audit.case_studies` -- studies that use the library as a user would.
"""

__version__ = "0.1.0"
