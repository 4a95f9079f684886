"""Splits: the standard ML-1M split reproduced exactly, leave-last-out, given files, transforms."""

import numpy as np
import pytest
from steerrec.training.data import load_dataset
from steerrec.training.data.schema import DataError, InteractionData
from steerrec.training.data.split import from_files, leave_last_out, random_holdout
from steerrec.training.data.transforms import k_core, to_implicit

from tests.conftest import dataset_dir


def _toy(timestamps=True):
    user = np.array([0, 0, 0, 0, 1, 1, 1, 2])
    item = np.array([0, 1, 2, 3, 1, 2, 3, 0])
    return InteractionData(
        name="toy", user_ids=["a", "b", "c"], item_ids=["w", "x", "y", "z"], user=user, item=item,
        weight=np.array([5, 4, 3, 5, 1, 4, 5, 4], dtype=np.float32),
        timestamp=np.array([10, 40, 20, 30, 5, 6, 7, 1]) if timestamps else None,
    )


def test_to_implicit_thresholds_and_compacts():
    d = to_implicit(_toy(), 4.0)
    assert len(d) == 6
    assert d.user_ids == ["a", "b", "c"] and d.item_ids == ["w", "x", "y", "z"]
    pairs = {(d.user_ids[u], d.item_ids[i]) for u, i in zip(d.user, d.item)}
    assert pairs == {("a", "w"), ("a", "x"), ("a", "z"), ("b", "y"), ("b", "z"), ("c", "w")}


def test_k_core_removes_until_stable():
    d = k_core(_toy(), user_k=3, item_k=2)
    # user c (1 interaction) goes; then item w has 1 user left and goes; a keeps x, y, z
    assert d.user_ids == ["a", "b"] and d.item_ids == ["x", "y", "z"]
    assert len(d) == 6


def test_leave_last_out_takes_the_latest_interaction():
    s = leave_last_out(_toy(), min_user_interactions=3)
    test = {(s.test.user_ids[u], s.test.item_ids[i]) for u, i in zip(s.test.user, s.test.item)}
    assert test == {("a", "x"), ("b", "z")}
    assert len(s.train) == 6
    with pytest.raises(DataError, match="no timestamps"):
        leave_last_out(_toy(timestamps=False))


def test_random_holdout_counts_items_unseen_in_train():
    data = load_dataset("synthetic", n_users=200, n_items=120, seed=1)
    s = random_holdout(data, 0.2, seed=0)
    assert s.test.n_items == s.train.n_items
    indptr, _ = data.csr()
    assert len(s.train) + len(s.test) + s.unrankable.sum() == len(data)
    per_user = np.diff(indptr)
    assert s.test_counts().sum() == sum(int(np.floor(0.2 * n)) for n in per_user if n >= 5)


def test_random_holdout_reproduces_the_standard_ml1m_split(data_root):
    ml = load_dataset("ml-1m", dataset_dir(data_root, "ml-1m"))
    mine = random_holdout(to_implicit(ml, 4.0), 0.2, seed=0)
    given = from_files(data_root / "splits/ml-1m/train.tsv", data_root / "splits/ml-1m/test.tsv")

    def pairs(d):
        return {(d.user_ids[u], d.item_ids[i]) for u, i in zip(d.user, d.item)}

    assert pairs(mine.train) == pairs(given.train)
    assert len(given.train) == 462_672 and given.train.n_users == 6038 and given.train.n_items == 3490
    assert pairs(mine.test) == pairs(given.test)
    assert int(given.unrankable.sum()) == 51 and int(mine.unrankable.sum()) == 51
    assert int((given.test_counts() > 0).sum()) == 6034


def test_from_files_reports_the_bad_line(tmp_path):
    (tmp_path / "train.tsv").write_text("user\titem\n1\t2\n3\n")
    (tmp_path / "test.tsv").write_text("user\titem\n1\t3\n")
    with pytest.raises(DataError, match=r"train\.tsv:3: expected 'user<TAB>item'"):
        from_files(tmp_path / "train.tsv", tmp_path / "test.tsv")
    (tmp_path / "bad.tsv").write_text("u,i\n1,2\n")
    with pytest.raises(DataError, match=r"bad\.tsv:1: expected a header"):
        from_files(tmp_path / "bad.tsv", tmp_path / "test.tsv")
