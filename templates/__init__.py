"""Jinja report templates (``importlib.resources`` finds them through this package)."""
