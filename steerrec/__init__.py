"""steerrec: steerable, interpretable recommendations."""

__version__ = "0.1.0"
