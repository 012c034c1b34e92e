"""Progress-line helpers shared by the training loops."""

from __future__ import annotations


def format_hms(seconds: float) -> str:
    """``H:MM:SS`` of a duration (an ETA), clipped at 0."""
    seconds = max(0, int(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
