"""Which exceptions are the user's to fix (bad path, corrupt bundle, bad option) rather than bugs."""

from __future__ import annotations


def is_user_error(exc: BaseException) -> bool:
    from steerrec.bundle import BundleError

    user_types: tuple[type[BaseException], ...] = (BundleError, FileNotFoundError, ValueError)
    return isinstance(exc, user_types)
