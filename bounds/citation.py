"""Citations with a theorem-level locator."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Citation:
    """Where a bound comes from, precise enough to find the statement.

    ``locator`` names the theorem (``"Theorem 2.1.15"``), with a page or equation where known.
    """

    authors: tuple[str, ...]
    title: str
    year: int
    venue: str
    locator: str
    url: str = ""

    def __post_init__(self) -> None:
        if not self.authors or not self.title or not self.locator:
            raise ValueError("a citation needs authors, a title and a theorem-level locator")

    @property
    def short(self) -> str:
        """``Nesterov (2004), Theorem 2.1.15``."""
        names = [a.split()[-1] for a in self.authors]
        who = names[0] if len(names) == 1 else (
            f"{names[0]} & {names[1]}" if len(names) == 2 else f"{names[0]} et al.")
        return f"{who} ({self.year}), {self.locator}"

    def to_dict(self) -> dict:
        return {
            "authors": list(self.authors),
            "title": self.title,
            "year": self.year,
            "venue": self.venue,
            "locator": self.locator,
            "url": self.url,
            "short": self.short,
        }
