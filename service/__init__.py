"""Online side of steerrec (no torch): bundle -> steering engine -> retrieval -> HTTP."""
