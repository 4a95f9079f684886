"""Subcommands of the ``steerrec`` console script, one module each."""
