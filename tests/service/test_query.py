"""The hot routes' own query-string decoding must give exactly what Starlette's would."""

from __future__ import annotations

import numpy as np
from starlette.datastructures import QueryParams
from steerrec.service.query import query_items

TRICKY = [
    b"", b"&", b"&&a=1&&", b"a", b"a=", b"=b", b"=", b"a=1=2", b"user=42&k=10",
    b"steer=horror:%2B3.0&steer=3:-1", b"steer=horror:+3", b"q=a+b%20c", b"%2B=%2b", b"a=%", b"a=%zz",
    b"a=%C3%A9", b"a=%C3", b"a=%C3%28", b"a=\xe9", b"a=%C3\xe9", b"a\xff=%FF+", b"promote=123@drama:%2B2",
    b"ab=exp:arm&exclude_seen=false", b"a=b;c=d", b"a=%25%32%42",
]
ALPHABET = [b"a", b"Z", b"0", b"=", b"&", b"+", b"%", b"2", b"B", b"C", b"3", b"A", b"9", b";", b":", b"\xe9",
            b"\x80", b" ", b"f", b"F"]


def starlette(raw: bytes) -> list[tuple[str, str]]:
    return list(QueryParams(raw).multi_items())


def test_tricky_query_strings_decode_as_starlette_does():
    for raw in TRICKY:
        assert query_items(raw) == starlette(raw), raw


def test_random_query_strings_decode_as_starlette_does():
    rng = np.random.default_rng(0)
    for _ in range(5000):
        raw = b"".join(ALPHABET[i] for i in rng.integers(0, len(ALPHABET), rng.integers(0, 24)))
        assert query_items(raw) == starlette(raw), raw
