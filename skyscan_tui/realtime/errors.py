"""The one exception type of the realtime decoder, and how causes are shortened into it."""

from __future__ import annotations

__all__ = ["RealtimeError", "short_reason"]


class RealtimeError(Exception):
    """A defect in a realtime file; its message is one short line (no path)."""


def short_reason(exc: BaseException) -> str:
    """The first line of ``exc``'s message (its type name if empty), at most 160 characters."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:160]
