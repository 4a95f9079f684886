import sys

import numpy as np
import pytest
from steerrec.training.data import load_dataset
from steerrec.training.data.generic import load
from steerrec.training.data.schema import DataError


def test_csv_with_items(tmp_path):
    events = tmp_path / "events.csv"
    events.write_text(
        "user,item,stars,when\n"
        "10,a,4.5,1700000000\n"
        "9,b,3,2024-01-02\n"
        '2,"c, the third",1,2024-01-02T01:00:00+01:00\n'
    )
    items = tmp_path / "items.csv"
    items.write_text('id,name,genres\na,Alpha,Rock|Pop\n"c, the third",Gamma,\nz,Unused,Jazz\n')
    data = load_dataset(
        "csv", events, weight_col="stars", timestamp_col="when",
        items_path=items, item_id_col="id", title_col="name", facet_cols=["genres"],
    )  # fmt: skip
    assert data.name == "events"
    assert data.user_ids == ["2", "9", "10"]  # integer ids sort numerically
    assert data.item_ids == ["a", "b", "c, the third"]
    assert data.weight.tolist() == [4.5, 3.0, 1.0]
    assert data.timestamp.tolist() == [1700000000, 1704153600, 1704153600]
    assert data.items.titles == ["Alpha", "b", "Gamma"]  # b has no row: its id is its title
    assert data.items.facets["genres"] == [("Rock", "Pop"), (), ()]


def test_tsv_guess_and_defaults(tmp_path):
    path = tmp_path / "log.tsv"
    path.write_text("user\titem\tx\n007\ti1\t?\n7\ti2\t?\n")
    data = load(path, name="mine")
    assert data.name == "mine" and data.user_ids == ["007", "7"]  # not plain integers: kept as text
    assert data.weight.tolist() == [1.0, 1.0] and data.timestamp is None and data.items is None


def test_missing_column_lists_available(tmp_path):
    path = tmp_path / "events.csv"
    path.write_text("uid,iid,rating\n1,2,3\n")
    with pytest.raises(DataError, match=r"events\.csv: no column 'user', 'item'; available columns: uid, iid, rating"):
        load(path)
    with pytest.raises(DataError, match=r"events\.csv: no column 'score'"):
        load(path, user_col="uid", item_col="iid", weight_col="score")


@pytest.mark.parametrize(
    "body, options, message",
    [
        ("u1,i1,5\nu2,i2,lots\n", {"weight_col": "w"}, r"events\.csv line 3: 'w' value 'lots' is not a number"),
        ("u1,i1,5\nu2,i2\n", {}, r"events\.csv line 3: expected 3 fields, got 2"),
        ("u1,i1,5\n,i2,4\n", {}, r"events\.csv line 3: empty 'user'"),
        ("u1,i1,yesterday\n", {"timestamp_col": "w"}, r"events\.csv line 2: 'w' value 'yesterday' is neither"),
    ],
)
def test_bad_rows_name_file_and_line(tmp_path, body, options, message):
    path = tmp_path / "events.csv"
    path.write_text("user,item,w\n" + body)
    with pytest.raises(DataError, match=message):
        load(path, **options)


def test_missing_file_and_duplicate_item_rows(tmp_path):
    with pytest.raises(DataError, match=r"nope\.csv: file not found"):
        load(tmp_path / "nope.csv")
    events = tmp_path / "e.csv"
    events.write_text("user,item\nu,a\n")
    items = tmp_path / "items.csv"
    items.write_text("item,title\na,A\na,A again\n")
    with pytest.raises(DataError, match=r"items\.csv line 3: item 'a' is listed twice"):
        load(events, items_path=items, title_col="title")


def test_parquet_without_pyarrow_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)  # makes the import fail
    with pytest.raises(DataError, match=r"events\.parquet: .*pip install pyarrow"):
        load(tmp_path / "events.parquet")


def test_parquet(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    path = tmp_path / "events.parquet"
    pq.write_table(pa.table({"user": [1, 2, 2], "item": ["x", "y", "x"], "plays": [3.0, 1.0, 2.0]}), path)
    data = load(path, weight_col="plays")
    assert data.user_ids == ["1", "2"] and data.item_ids == ["x", "y"]
    assert np.array_equal(data.weight, [3.0, 1.0, 2.0])
    with pytest.raises(DataError, match=r"events\.parquet: no column 'rating'; available columns: user, item, plays"):
        load(path, weight_col="rating")
