"""Case studies that use the library as a user would (none yet)."""
