"""HetRec 2011 Last.FM 2k: user-artist play counts, artist names and a ``tag`` facet from users' tags.

Tags are folksonomy: one user's idiosyncratic tag says little, so an artist's facet keeps only
tags applied by at least ``min_tag_users`` distinct users, most-used first.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

from .readers import read_lines, read_number_table
from .schema import DataError, InteractionData, ItemCatalog, index_ids


def _named_rows(path: Path, encoding: str, header: list[str]) -> dict[int, str]:
    """``id<TAB>name...`` lines after the header, as id -> name (later columns are ignored)."""
    lines = read_lines(path, encoding)
    expected = "\t".join(header)
    if not lines or lines[0].split("\t")[: len(header)] != header:
        raise DataError(f"{path} line 1: expected header starting {expected!r}")
    rows = {}
    for n, line in enumerate(lines[1:], 2):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) < 2:
            raise DataError(f"{path} line {n}: expected tab-separated {' '.join(header)}, got {line[:120]!r}")
        try:
            rows[int(parts[0])] = parts[1]
        except ValueError:
            raise DataError(f"{path} line {n}: id {parts[0]!r} is not an integer") from None
    return rows


def _tag_facet(path: Path, item_raw: np.ndarray, min_users: int, max_tags: int) -> list[tuple[str, ...]]:
    """Per item (raw artist ids, sorted), its tags used by >= ``min_users`` distinct users:
    by descending user count, then name; tag names are lowercased and stripped first, so
    "Rock" and "rock " from one user count once."""
    tags_file, assigned_file = path / "tags.dat", path / "user_taggedartists.dat"
    raw_names = _named_rows(tags_file, "latin-1", ["tagID", "tagValue"])
    names = {tag: value.strip().lower() for tag, value in raw_names.items()}
    user, artist, tag, *_ = read_number_table(
        assigned_file, "\t", "iiiiii", header=["userID", "artistID", "tagID", "day", "month", "year"]
    )
    unknown = ~np.isin(tag, np.fromiter(names, dtype=np.int64, count=len(names)))
    if unknown.any():
        i = int(np.argmax(unknown))
        raise DataError(f"{assigned_file} line {i + 2}: tagID {tag[i]} is not in {tags_file}")
    vocabulary = sorted(set(names.values()) - {""})
    code = {name: k for k, name in enumerate(vocabulary)}
    tag_code = {tag_id: code.get(name, -1) for tag_id, name in names.items()}
    concept = np.array([tag_code[t] for t in tag.tolist()], dtype=np.int64)
    keep = (concept >= 0) & np.isin(artist, item_raw)
    triples = np.unique(np.stack([artist[keep], concept[keep], user[keep]], axis=1), axis=0)
    pairs, users = np.unique(triples[:, :2], axis=0, return_counts=True)
    ranked: dict[int, list[tuple[int, str]]] = defaultdict(list)
    for (a, c), count in zip(pairs.tolist(), users.tolist()):
        if count >= min_users:
            ranked[a].append((-count, vocabulary[c]))
    return [tuple(name for _, name in sorted(ranked.get(a, []))[:max_tags]) for a in item_raw.tolist()]


def load(path: Path, min_tag_users: int = 2, max_tags: int = 10) -> InteractionData:
    """The extracted ``hetrec2011-lastfm-2k`` folder. Weight = play count; no timestamps (the
    tagging dates are not listening times). Items are the artists with a listening row (in the
    published files, all 17,632 of artists.dat); tags on other artists are ignored."""
    path = Path(path)
    if not path.is_dir():
        raise DataError(f"{path}: not a directory (expected the extracted hetrec2011-lastfm-2k folder)")
    listens = path / "user_artists.dat"
    user_raw, artist_raw, plays = read_number_table(listens, "\t", "iif", header=["userID", "artistID", "weight"])
    artists_file = path / "artists.dat"
    artists = _named_rows(artists_file, "utf-8", ["id", "name"])
    unknown = ~np.isin(artist_raw, np.fromiter(artists, dtype=np.int64, count=len(artists)))
    if unknown.any():
        i = int(np.argmax(unknown))
        raise DataError(f"{listens} line {i + 2}: artistID {artist_raw[i]} is not in {artists_file}")
    user_ids, user = index_ids(user_raw)
    item_ids, item = index_ids(artist_raw)
    item_raw = np.array([int(i) for i in item_ids], dtype=np.int64)
    catalog = ItemCatalog(
        titles=[artists[int(i)] for i in item_ids],
        facets={"tag": _tag_facet(path, item_raw, min_tag_users, max_tags)},
    )
    return InteractionData(
        name="lastfm-2k",
        user_ids=user_ids,
        item_ids=item_ids,
        user=user,
        item=item,
        weight=plays,
        items=catalog,
    )
