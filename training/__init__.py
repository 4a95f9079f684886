"""Offline side of steerrec (torch): data, base models, sparse autoencoders, interpretation, export."""
