"""The auditor: runs optimizers with torch and measures assumptions along the trajectory.

Not built yet (issue: the auditor). This package exists so the import layout of the design is
in place; it holds no functionality.
"""
