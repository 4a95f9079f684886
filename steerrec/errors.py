"""Which exceptions are the user's to fix (bad path, corrupt bundle, bad option) rather than bugs."""

from __future__ import annotations

import sys


def is_user_error(exc: BaseException) -> bool:
    from steerrec.bundle import BundleError

    user_types: tuple[type[BaseException], ...] = (BundleError, FileNotFoundError, ValueError)
    # Only loaded (and only raised) when serving; looked up rather than imported, which would pull
    # in faiss and onnxruntime.
    engine_error = getattr(sys.modules.get("steerrec.service.engine"), "EngineError", None)
    if isinstance(engine_error, type):
        user_types += (engine_error,)
    return isinstance(exc, user_types)
