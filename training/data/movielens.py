"""MovieLens 1M and 100K (GroupLens) as InteractionData with genre and decade facets.

Items are the movies that have at least one rating, so the index space matches what models
train on (ML-1M: 3706 of the 3883 listed movies). Every rated movie, and every rating user when
the users file is there, must be described, or loading fails naming the first offending line.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from .readers import read_lines, read_number_table
from .schema import DataError, InteractionData, ItemCatalog, index_ids

_TITLE_YEAR = re.compile(r"\((\d{4})\)\s*$")
_NO_GENRE = {"unknown", "(no genres listed)"}


def _directory(path: Path) -> Path:
    path = Path(path)
    if not path.is_dir():
        raise DataError(f"{path}: not a directory (expected the extracted MovieLens folder)")
    return path


def _decade(year: float) -> tuple[str, ...]:
    return () if np.isnan(year) else (f"{int(year) // 10 * 10}s",)


def _movie_year(title: str) -> float:
    match = _TITLE_YEAR.search(title)
    return float(match.group(1)) if match else float("nan")


def _check_known(ratings: Path, raw: np.ndarray, known: dict[int, object], what: str, source: Path) -> None:
    """Fails on the first rating whose id ``source`` does not describe."""
    missing = ~np.isin(raw, np.fromiter(known, dtype=np.int64, count=len(known)))
    if missing.any():
        i = int(np.argmax(missing))
        raise DataError(f"{ratings} line {i + 1}: {what} {raw[i]} is not in {source}")


def _catalog(item_ids: list[str], movies: dict[int, tuple[str, tuple[str, ...], float]]) -> ItemCatalog:
    rows = [movies[int(i)] for i in item_ids]
    year = np.array([r[2] for r in rows], dtype=np.float32)
    return ItemCatalog(
        titles=[r[0] for r in rows],
        facets={"genre": [r[1] for r in rows], "decade": [_decade(y) for y in year]},
        year=year,
    )


def _user_meta(user_ids: list[str], users: dict[int, tuple[str, str, str]]) -> dict[str, list[str]]:
    rows = [users[int(u)] for u in user_ids]
    return {name: [r[k] for r in rows] for k, name in enumerate(("gender", "age", "occupation"))}


def _split(path: Path, n: int, line: str, sep: str, fields: int, layout: str) -> list[str]:
    parts = line.split(sep)
    if len(parts) != fields:
        raise DataError(f"{path} line {n}: expected {layout}, got {line[:120]!r}")
    return parts


def _int(path: Path, n: int, value: str, what: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise DataError(f"{path} line {n}: {what} {value!r} is not an integer") from None


def _ml1m_movies(path: Path) -> dict[int, tuple[str, tuple[str, ...], float]]:
    movies = {}
    for n, line in enumerate(read_lines(path, "latin-1"), 1):
        if line.strip():
            movie, title, genres = _split(path, n, line, "::", 3, "MovieID::Title::Genres")
            tags = tuple(g for g in genres.split("|") if g and g not in _NO_GENRE)
            movies[_int(path, n, movie, "MovieID")] = (title, tags, _movie_year(title))
    return movies


def _ml1m_users(path: Path) -> dict[int, tuple[str, str, str]]:
    users = {}
    for n, line in enumerate(read_lines(path, "latin-1"), 1):
        if line.strip():
            layout = "UserID::Gender::Age::Occupation::Zip-code"
            user, gender, age, occupation, _ = _split(path, n, line, "::", 5, layout)
            users[_int(path, n, user, "UserID")] = (gender, age, occupation)
    return users


def load_ml1m(path: Path) -> InteractionData:
    """ML-1M from its folder: ``ratings.dat`` (with timestamps) or, failing that, ``ratings_uir.dat``
    (``UserID::MovieID::Rating``, no timestamps); ``movies.dat``; ``users.dat`` when present.

    ``user_meta`` keeps users.dat's codes as strings (age group "25", occupation "15"; the
    README maps them to names).
    """
    path = _directory(path)
    ratings = path / "ratings.dat"
    if ratings.exists():
        user_raw, movie_raw, rating, timestamp = read_number_table(ratings, "::", "iifi")
    elif (path / "ratings_uir.dat").exists():
        ratings = path / "ratings_uir.dat"
        user_raw, movie_raw, rating = read_number_table(ratings, "::", "iif")
        timestamp = None
    else:
        raise DataError(f"{path}: no ratings.dat (or ratings_uir.dat) in this folder")
    movies = _ml1m_movies(path / "movies.dat")
    _check_known(ratings, movie_raw, movies, "MovieID", path / "movies.dat")
    users = None
    if (path / "users.dat").exists():
        users = _ml1m_users(path / "users.dat")
        _check_known(ratings, user_raw, users, "UserID", path / "users.dat")
    return _interactions("ml-1m", user_raw, movie_raw, rating, timestamp, movies, users)


def _interactions(name, user_raw, movie_raw, rating, timestamp, movies, users) -> InteractionData:
    user_ids, user = index_ids(user_raw)
    item_ids, item = index_ids(movie_raw)
    return InteractionData(name=name, user_ids=user_ids, item_ids=item_ids, user=user, item=item, weight=rating,
                           timestamp=timestamp, items=_catalog(item_ids, movies),
                           user_meta=None if users is None else _user_meta(user_ids, users))


def _ml100k_genres(path: Path) -> list[str]:
    """u.genre's names in flag order (``name|index`` lines)."""
    names: dict[int, str] = {}
    for n, line in enumerate(read_lines(path, "latin-1"), 1):
        if line.strip():
            name, index = _split(path, n, line, "|", 2, "name|index")
            names[_int(path, n, index, "genre index")] = name
    if sorted(names) != list(range(len(names))):
        raise DataError(f"{path}: genre indices are not 0..{len(names) - 1}")
    return [names[i] for i in range(len(names))]


def _ml100k_movies(path: Path, genres: list[str]) -> dict[int, tuple[str, tuple[str, ...], float]]:
    movies = {}
    layout = f"{5 + len(genres)} '|'-separated fields (id|title|release date|video date|URL|{len(genres)} genre flags)"
    for n, line in enumerate(read_lines(path, "latin-1"), 1):
        if not line.strip():
            continue
        parts = _split(path, n, line, "|", 5 + len(genres), layout)
        flags = parts[5:]
        if any(f not in ("0", "1") for f in flags):
            raise DataError(f"{path} line {n}: genre flags must be 0 or 1, got {'|'.join(flags)!r}")
        tags = tuple(g for g, f in zip(genres, flags) if f == "1" and g not in _NO_GENRE)
        title, release = parts[1].strip(), parts[2].strip()
        year = _movie_year(title)
        if np.isnan(year) and release[-4:].isdigit():
            year = float(release[-4:])
        movies[_int(path, n, parts[0], "movie id")] = (title, tags, year)
    return movies


def _ml100k_users(path: Path) -> dict[int, tuple[str, str, str]]:
    users = {}
    for n, line in enumerate(read_lines(path, "latin-1"), 1):
        if line.strip():
            user, age, gender, occupation, _ = _split(path, n, line, "|", 5, "user id|age|gender|occupation|zip code")
            users[_int(path, n, user, "user id")] = (gender, age, occupation)
    return users


def load_ml100k(path: Path) -> InteractionData:
    """ML-100K from its folder: ``u.data``, ``u.item`` with ``u.genre``, and ``u.user`` when present.

    The year is the film's, from the title as for ML-1M; the release date is only a fallback,
    since it is often a re-release (Taxi Driver (1976) and Return of the Jedi (1983) are dated
    1996 and 1997, which would put them in the wrong decade). Titles are stripped of the
    trailing blanks a few carry.
    """
    path = _directory(path)
    ratings = path / "u.data"
    user_raw, movie_raw, rating, timestamp = read_number_table(ratings, "\t", "iifi")
    movies = _ml100k_movies(path / "u.item", _ml100k_genres(path / "u.genre"))
    _check_known(ratings, movie_raw, movies, "item id", path / "u.item")
    users = None
    if (path / "u.user").exists():
        users = _ml100k_users(path / "u.user")
        _check_known(ratings, user_raw, users, "user id", path / "u.user")
    return _interactions("ml-100k", user_raw, movie_raw, rating, timestamp, movies, users)
