"""Neuron slugs: the names ``steer=`` accepts, shared by the labeller (training) and the service."""

from __future__ import annotations

import re
import unicodedata


def slugify(text: str) -> str:
    """``"Children's"`` -> ``childrens``, ``"Horror/Slasher"`` -> ``horror-slasher``, ``"Sci-Fi"`` ->
    ``sci-fi``; the result matches ``bundle.SLUG_PATTERN`` (empty string when nothing is left)."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    text = text.replace("'", "").replace("&", " and ").replace("+", " plus ")
    return re.sub(r"[^a-z0-9]+", "-", text).strip("-")
