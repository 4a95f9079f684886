import numpy as np
import pytest
from steerrec.training.data import load_dataset
from steerrec.training.data.movielens import load_ml1m, load_ml100k
from steerrec.training.data.schema import DataError

from tests.conftest import dataset_dir

ML_GENRES = [
    "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama", "Fantasy",
    "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
]  # fmt: skip


def _genres(data):
    return sorted({g for genres in data.items.facets["genre"] for g in genres})


@pytest.fixture(scope="module")
def ml1m(data_root):
    return load_ml1m(dataset_dir(data_root, "ml-1m"))


@pytest.fixture(scope="module")
def ml100k(data_root):
    return load_ml100k(dataset_dir(data_root, "ml-100k"))


@pytest.mark.data
def test_ml1m_counts(ml1m):
    assert (ml1m.n_users, ml1m.n_items, len(ml1m)) == (6040, 3706, 1_000_209)
    assert ml1m.timestamp is None  # the shared copy is ratings_uir.dat
    assert np.bincount(ml1m.weight.astype(int), minlength=6)[1:].tolist() == [56174, 107557, 261197, 348971, 226310]
    assert ml1m.user_ids[:3] == ["1", "2", "3"] and ml1m.item_ids[0] == "1"


@pytest.mark.data
def test_ml1m_catalog(ml1m):
    assert _genres(ml1m) == ML_GENRES
    toy = ml1m.item_ids.index("1")
    assert ml1m.items.titles[toy] == "Toy Story (1995)"
    assert ml1m.items.facets["genre"][toy] == ("Animation", "Children's", "Comedy")
    assert ml1m.items.facets["decade"][toy] == ("1990s",)
    assert ml1m.items.year[toy] == 1995 and ml1m.items.year.dtype == np.float32
    assert not np.isnan(ml1m.items.year).any()
    assert ml1m.user_meta["gender"][:2] == ["F", "M"] and ml1m.user_meta["age"][0] == "1"


@pytest.mark.data
def test_ml1m_through_registry(data_root):
    data = load_dataset("ml-1m", dataset_dir(data_root, "ml-1m"))
    assert data.name == "ml-1m" and data.n_items == 3706


@pytest.mark.data
def test_ml100k(ml100k):
    assert (ml100k.n_users, ml100k.n_items, len(ml100k)) == (943, 1682, 100_000)
    assert ml100k.timestamp.dtype == np.int64 and ml100k.timestamp[0] == 881250949
    assert _genres(ml100k) == ML_GENRES  # "unknown" is skipped
    toy = ml100k.item_ids.index("1")
    assert ml100k.items.titles[toy] == "Toy Story (1995)"
    assert ml100k.items.facets["genre"][toy] == ("Animation", "Children's", "Comedy")
    # The year is the film's, not its (re-)release date's 1996.
    taxi = ml100k.items.titles.index("Taxi Driver (1976)")
    assert ml100k.items.facets["decade"][taxi] == ("1970s",)
    unknown = ml100k.item_ids.index("267")
    assert ml100k.items.facets["genre"][unknown] == () and np.isnan(ml100k.items.year[unknown])
    assert ml100k.user_meta["occupation"][0] == "technician"


def _write_ml1m(root, ratings="1::1::5::978300760\n2::3::3::978300761\n1::3::4::978300762\n", name="ratings.dat"):
    root.mkdir(exist_ok=True)
    (root / "movies.dat").write_bytes(
        "1::Toy Story (1995)::Animation|Children's|Comedy\n"
        "2::Unrated (2000)::Drama\n"
        "3::Café Society (1958)::Comedy|Romance\n".encode("latin-1")
    )
    (root / name).write_text(ratings)
    return root


def test_ml1m_small_with_timestamps(tmp_path):
    root = _write_ml1m(tmp_path / "ml")
    (root / "ratings_uir.dat").write_text("9::9::1\n")  # ignored: ratings.dat wins
    data = load_ml1m(root)
    assert data.item_ids == ["1", "3"]  # movie 2 has no rating
    assert data.user_ids == ["1", "2"]
    assert data.timestamp.tolist() == [978300760, 978300761, 978300762]
    assert data.items.titles == ["Toy Story (1995)", "Café Society (1958)"]
    assert data.items.facets["decade"] == [("1990s",), ("1950s",)]
    assert data.user_meta is None


def test_ml1m_users_meta(tmp_path):
    root = _write_ml1m(tmp_path / "ml", ratings="1::1::5\n2::3::3\n", name="ratings_uir.dat")
    (root / "users.dat").write_text("1::F::1::10::48067\n2::M::56::16::70072\n")
    data = load_ml1m(root)
    assert data.timestamp is None
    assert data.user_meta == {"gender": ["F", "M"], "age": ["1", "56"], "occupation": ["10", "16"]}


@pytest.mark.parametrize(
    "ratings, message",
    [
        ("1::1::5::1\n1::x1::4::2\n", r"ratings\.dat line 2: field 2 \('x1'\) is not an integer"),
        ("1::1::5::1\n1::3::4::2\n2::3\n", r"ratings\.dat line 3: expected 4 fields separated by '::', got 2"),
        ("1::1::5::1\n\n1::3::4::2\n", r"ratings\.dat line 2: expected 4 fields"),
        ("1::1::five::1\n", r"ratings\.dat line 1: field 3 \('five'\) is not a number"),
        ("1::1::5::1\n1::7::4::2\n", r"ratings\.dat line 2: MovieID 7 is not in .*movies\.dat"),
    ],
)
def test_ml1m_bad_ratings_name_file_and_line(tmp_path, ratings, message):
    with pytest.raises(DataError, match=message):
        load_ml1m(_write_ml1m(tmp_path / "ml", ratings=ratings))


def test_ml1m_bad_movie_line(tmp_path):
    root = _write_ml1m(tmp_path / "ml")
    (root / "movies.dat").write_text("1::Toy Story (1995)::Comedy\n2::No genres here\n")
    with pytest.raises(DataError, match=r"movies\.dat line 2: expected MovieID::Title::Genres"):
        load_ml1m(root)


def test_ml1m_missing_files(tmp_path):
    with pytest.raises(DataError, match="not a directory"):
        load_ml1m(tmp_path / "absent")
    root = tmp_path / "ml"
    root.mkdir()
    with pytest.raises(DataError, match=r"no ratings\.dat"):
        load_ml1m(root)
    (root / "ratings.dat").write_text("1::1::5::1\n")
    with pytest.raises(DataError, match=r"movies\.dat: file not found"):
        load_ml1m(root)


def _write_ml100k(root, data="1\t1\t5\t881250949\n2\t2\t3\t881250950\n"):
    root.mkdir()
    (root / "u.genre").write_text("unknown|0\nAction|1\nComedy|2\n\n")
    (root / "u.item").write_text("1|Toy (1995)|01-Jan-1995||url|0|0|1\n2|unknown||||1|0|0\n")
    (root / "u.user").write_text("1|24|M|technician|85711\n2|53|F|other|94043\n")
    (root / "u.data").write_text(data)
    return root


def test_ml100k_small(tmp_path):
    data = load_ml100k(_write_ml100k(tmp_path / "ml"))
    assert data.items.facets["genre"] == [("Comedy",), ()]
    assert data.items.facets["decade"] == [("1990s",), ()]
    assert data.user_meta["gender"] == ["M", "F"]


def test_ml100k_bad_line(tmp_path):
    with pytest.raises(DataError, match=r"u\.data line 2: expected 4 fields separated by '\\t', got 3"):
        load_ml100k(_write_ml100k(tmp_path / "ml", data="1\t1\t5\t881250949\n2\t2\t3\n"))
