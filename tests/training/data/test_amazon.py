import gzip
import json

import numpy as np
import pytest
from steerrec.training.data import load_dataset
from steerrec.training.data.amazon import load
from steerrec.training.data.schema import DataError

from tests.conftest import dataset_dir


@pytest.mark.data
def test_fashion_5core(data_root):
    folder = dataset_dir(data_root, "amazon-fashion-2018-5core")
    data = load_dataset("amazon", folder)
    assert (data.n_users, data.n_items, len(data)) == (406, 31, 3176)
    assert set(np.unique(data.weight).tolist()) == {1, 2, 3, 4, 5}
    assert data.timestamp.min() == 1261699200 and data.timestamp.max() == 1530748800  # 2009-12-25 .. 2018-07-05
    # Duplicate (user, item) reviews are kept: 3176 rows, 3042 distinct pairs.
    assert len(data.csr()[1]) == 3042
    # No meta file: ids stand in for titles, facets are empty.
    assert data.items.titles == data.item_ids
    assert all(f == () for f in data.items.facets["category"] + data.items.facets["brand"])
    same = load(folder / "AMAZON_FASHION_5.json.gz")
    assert same.item_ids == data.item_ids and np.array_equal(same.user, data.user)


def _jsonl(path, records, zipped=False):
    text = "".join(json.dumps(r) + "\n" for r in records)
    path.write_bytes(gzip.compress(text.encode()) if zipped else text.encode())
    return path


def _review_2018(user, item, rating=5.0, time=1441324800):
    return {"reviewerID": user, "asin": item, "overall": rating, "unixReviewTime": time, "reviewText": "ok"}


def test_2018_with_meta(tmp_path):
    _jsonl(
        tmp_path / "Shoes_5.json.gz",
        [_review_2018("U2", "B1"), _review_2018("U1", "B2", 3.0), _review_2018("U1", "B3"), _review_2018("U1", "B3")],
        zipped=True,
    )
    _jsonl(
        tmp_path / "meta_Shoes.json",
        [
            {"asin": "B1", "title": "Boot", "category": ["Clothing, Shoes & Jewelry", "Men", "Boots"], "brand": "Acme"},
            {"asin": "B2", "title": "", "category": ["Clothing, Shoes & Jewelry", "Women"], "brand": ""},
            {"asin": "B9", "title": "Never reviewed", "category": ["Other"]},
        ],
    )
    data = load(tmp_path)
    assert data.user_ids == ["U1", "U2"] and data.item_ids == ["B1", "B2", "B3"]
    assert len(data) == 4  # the repeated (U1, B3) review is kept
    assert data.items.titles == ["Boot", "B2", "B3"]
    # The shared top level is dropped; B3 has no metadata.
    assert data.items.facets["category"] == [("Men", "Boots"), ("Women",), ()]
    assert data.items.facets["brand"] == [("Acme",), (), ()]


def test_2023_layout(tmp_path):
    reviews = _jsonl(
        tmp_path / "Beauty.jsonl",
        [
            {"user_id": "A", "asin": "X1", "parent_asin": "P1", "rating": 4.0, "timestamp": 1588687728923},
            {"user_id": "B", "asin": "X2", "parent_asin": "P1", "rating": 2.0, "timestamp": 1588687729000},
        ],
    )
    meta = _jsonl(
        tmp_path / "meta_Beauty.jsonl",
        [{"parent_asin": "P1", "title": "Cream", "categories": ["Beauty", "Skin"], "store": "Glow"}],
    )
    data = load(reviews, meta=meta)
    assert data.item_ids == ["P1"]
    assert data.timestamp.tolist() == [1588687728, 1588687729]
    assert data.items.titles == ["Cream"]
    assert data.items.facets == {"category": [("Skin",)], "brand": [("Glow",)]}


def test_bad_json_names_line(tmp_path):
    path = tmp_path / "r.json"
    path.write_text(json.dumps(_review_2018("U1", "B1")) + "\n\n{not json\n")
    with pytest.raises(DataError, match=r"r\.json line 3: not valid JSON"):
        load(path)


def test_missing_field_names_line(tmp_path):
    path = _jsonl(tmp_path / "r.json.gz", [_review_2018("U1", "B1"), {"reviewerID": "U2", "overall": 5.0}], zipped=True)
    with pytest.raises(DataError, match=r"r\.json\.gz line 2: missing 'asin'"):
        load(path)


def test_unknown_layout_and_missing_files(tmp_path):
    path = _jsonl(tmp_path / "r.json", [{"user": "U1", "item": "B1"}])
    with pytest.raises(DataError, match=r"r\.json line 1: neither the 2018"):
        load(path)
    with pytest.raises(DataError, match=r"absent\.json: file not found"):
        load(tmp_path / "absent.json")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match=r"empty: expected one review file"):
        load(empty)
