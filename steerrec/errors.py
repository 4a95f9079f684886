"""Which exceptions are the user's to fix (bad path, corrupt bundle, bad option) rather than bugs."""

from __future__ import annotations

import sys


def is_user_error(exc: BaseException) -> bool:
    from steerrec.bundle import BundleError

    user_types: tuple[type[BaseException], ...] = (BundleError, FileNotFoundError, ValueError)
    engine = sys.modules.get("steerrec.service.engine")  # only loaded (and only raised) when serving
    if engine is not None:
        user_types += (engine.EngineError,)
    return isinstance(exc, user_types)
