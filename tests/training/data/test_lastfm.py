import pytest
from steerrec.training.data import load_dataset
from steerrec.training.data.lastfm import load
from steerrec.training.data.schema import DataError

from tests.conftest import dataset_dir


@pytest.fixture(scope="module")
def lastfm(data_root):
    return load(dataset_dir(data_root, "hetrec2011-lastfm-2k"))


@pytest.mark.data
def test_counts(lastfm):
    assert (lastfm.n_users, lastfm.n_items, len(lastfm)) == (1892, 17632, 92_834)
    assert lastfm.timestamp is None
    assert lastfm.weight.max() == 352_698 and lastfm.weight.min() == 1
    assert lastfm.items.titles[lastfm.item_ids.index("1")] == "MALICE MIZER"


@pytest.mark.data
def test_tags(lastfm):
    tags = lastfm.items.facets["tag"]
    britney = lastfm.items.titles.index("Britney Spears")
    assert tags[britney][:3] == ("pop", "dance", "female vocalists")
    assert len(tags[britney]) == 10
    assert all(len(t) <= 10 and all(x == x.strip().lower() for x in t) for t in tags)
    # Figures for the defaults (>= 2 distinct users per tag, at most 10 tags).
    assert sum(1 for t in tags if t) == 6099
    assert len({x for t in tags for x in t}) == 842


@pytest.mark.data
def test_through_registry(data_root):
    data = load_dataset("lastfm-2k", dataset_dir(data_root, "hetrec2011-lastfm-2k"), min_tag_users=1)
    assert sum(1 for t in data.items.facets["tag"] if t) == 12133


def _write(root, user_artists=None):
    root.mkdir()
    listens = "userID\tartistID\tweight\r\n2\t51\t100\r\n3\t51\t5\r\n3\t52\t7\r\n"
    (root / "user_artists.dat").write_bytes((user_artists or listens).encode())
    (root / "artists.dat").write_text("id\tname\turl\tpictureURL\n51\tBjörk\tu\tp\n52\tABBA\tu\tp\n53\tNobody\tu\tp\n")
    tags = "tagID\ttagValue\r\n1\tRock\r\n2\trock \r\n3\tIcelandic\r\n4\tpop\r\n5\tcafé\r\n"
    (root / "tags.dat").write_bytes(tags.encode("latin-1"))
    (root / "user_taggedartists.dat").write_text(
        "userID\tartistID\ttagID\tday\tmonth\tyear\n"
        "2\t51\t1\t1\t4\t2009\n"  # "Rock" and "rock " from user 2 count once
        "2\t51\t2\t1\t4\t2009\n"
        "3\t51\t3\t1\t4\t2009\n"
        "4\t51\t3\t1\t4\t2009\n"
        "3\t51\t5\t1\t4\t2009\n"
        "4\t51\t5\t1\t4\t2009\n"
        "5\t51\t1\t1\t4\t2009\n"
        "2\t52\t4\t1\t4\t2009\n"
        "2\t53\t4\t1\t4\t2009\n"
    )
    return root


def test_small(tmp_path):
    data = load(_write(tmp_path / "fm"))
    assert data.item_ids == ["51", "52"]  # artist 53 was never listened to
    assert data.items.titles == ["Björk", "ABBA"]
    assert data.weight.tolist() == [100, 5, 7]
    # Ties (2 users each) are ordered by name; ABBA's "pop" has a single user.
    assert data.items.facets["tag"] == [("café", "icelandic", "rock"), ()]
    assert load(tmp_path / "fm", min_tag_users=1, max_tags=2).items.facets["tag"] == [("café", "icelandic"), ("pop",)]


def test_bad_row_names_file_and_line(tmp_path):
    root = _write(tmp_path / "fm", user_artists="userID\tartistID\tweight\r\n2\t51\t100\r\n2\tfifty\t3\r\n")
    with pytest.raises(DataError, match=r"user_artists\.dat line 3: field 2 \('fifty'\) is not an integer"):
        load(root)


def test_truncated_row(tmp_path):
    root = _write(tmp_path / "fm", user_artists="userID\tartistID\tweight\n2\t51\t100\n2\t51\n")
    with pytest.raises(DataError, match=r"user_artists\.dat line 3: expected 3 fields"):
        load(root)


def test_unknown_tag(tmp_path):
    root = _write(tmp_path / "fm")
    with open(root / "user_taggedartists.dat", "a") as f:
        f.write("2\t51\t99\t1\t4\t2009\n")
    with pytest.raises(DataError, match=r"user_taggedartists\.dat line 11: tagID 99 is not in .*tags\.dat"):
        load(root)


def test_bad_header_and_missing_file(tmp_path):
    root = _write(tmp_path / "fm", user_artists="user\tartist\tplays\n2\t51\t100\n")
    with pytest.raises(DataError, match=r"user_artists\.dat line 1: expected header"):
        load(root)
    (root / "user_artists.dat").unlink()
    with pytest.raises(DataError, match=r"user_artists\.dat: file not found"):
        load(root)
