"""The bundle contract: checksums written and verified, corrupt or partial bundles refused by name."""

import json

import numpy as np
import pytest

from steerrec import bundle as B


def _make(tmp_path, n_users=4, n_items=3, dim=2, neurons=None):
    w = B.BundleWriter.create(
        tmp_path / "b",
        B.DatasetInfo(name="toy", n_users=n_users, n_items=n_items, n_train_interactions=2),
        B.ModelInfo(kind="mf", dim=dim, has_item_bias=True),
    )
    w.add_json(B.USER_IDS, [f"u{i}" for i in range(n_users)])
    w.add_json(B.ITEM_IDS, [f"i{i}" for i in range(n_items)])
    w.add_array(B.USER_FACTORS, np.ones((n_users, dim), np.float32))
    w.add_array(B.ITEM_FACTORS, np.ones((n_items, dim), np.float32))
    w.add_array(B.ITEM_BIAS, np.zeros(n_items, np.float32))
    w.add_npz(B.TRAIN_INTERACTIONS, indptr=np.array([0, 1, 2, 2, 2]), indices=np.array([0, 2], np.int32))
    w.add_json(B.ITEM_METADATA, {"title": ["a", "b", "c"], "facets": {}})
    if neurons is not None:
        w.add_json(B.NEURONS, neurons)
    return w.commit()


def test_roundtrip_and_manifest_lists_every_file(tmp_path):
    root = _make(tmp_path)
    bundle = B.Bundle.open(root)
    on_disk = {p.name for p in root.iterdir() if p.name != B.MANIFEST}
    assert set(bundle.manifest.files) == on_disk
    for name, entry in bundle.manifest.files.items():
        assert entry.sha256 == B.sha256_file(root / name)
    users, items, bias = bundle.factors()
    assert users.shape == (4, 2) and items.dtype == np.float32 and bias.shape == (3,)
    indptr, indices = bundle.train_interactions()
    assert indptr.tolist() == [0, 1, 2, 2, 2] and indices.tolist() == [0, 2]
    assert bundle.user_ids() == ["u0", "u1", "u2", "u3"]


def test_corrupt_file_is_refused_with_its_name(tmp_path):
    root = _make(tmp_path)
    data = bytearray((root / B.ITEM_FACTORS).read_bytes())
    data[-1] ^= 0xFF
    (root / B.ITEM_FACTORS).write_bytes(bytes(data))
    with pytest.raises(B.BundleError, match=r"item_factors\.npy: sha256 does not match"):
        B.Bundle.open(root)


def test_truncated_and_missing_files_are_refused(tmp_path):
    root = _make(tmp_path)
    (root / B.USER_FACTORS).write_bytes((root / B.USER_FACTORS).read_bytes()[:-4])
    with pytest.raises(B.BundleError, match=r"user_factors\.npy: size .* corrupt or truncated"):
        B.Bundle.open(root)
    root2 = _make(tmp_path / "x")
    (root2 / B.ITEM_BIAS).unlink()
    with pytest.raises(B.BundleError, match=r"item_bias\.npy: listed in manifest.json but missing"):
        B.Bundle.open(root2)


def test_partial_bundle_without_manifest_or_required_file(tmp_path):
    root = _make(tmp_path)
    (root / B.MANIFEST).unlink()
    with pytest.raises(B.BundleError, match="manifest.json: missing"):
        B.Bundle.open(root)
    root2 = _make(tmp_path / "y")
    manifest = json.loads((root2 / B.MANIFEST).read_text())
    del manifest["files"][B.USER_IDS]
    (root2 / B.MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(B.BundleError, match=r"user_ids\.json: required file is not listed"):
        B.Bundle.open(root2)


def test_wrong_shapes_are_refused(tmp_path):
    root = _make(tmp_path)
    w = B.BundleWriter.open(root)
    w.add_array(B.USER_FACTORS, np.ones((4, 3), np.float32))  # checksum fine, shape wrong
    w.commit()
    with pytest.raises(B.BundleError, match=r"user_factors\.npy: expected float32 \[4, 2\]"):
        B.Bundle.open(root).factors()


def _neuron(i, slug, aliases=()):
    return {"id": i, "label": slug, "slug": slug, "aliases": list(aliases), "confidence": 0.9, "prefix": 0}


def test_neuron_slugs_and_aliases_load_and_must_be_unique_together(tmp_path):
    ok = B.Bundle.open(_make(tmp_path, neurons=[_neuron(0, "animation", ["childrens"]), _neuron(1, "drama")]))
    assert [(r.slug, r.aliases) for r in ok.neurons()] == [("animation", ["childrens"]), ("drama", [])]
    clash = B.Bundle.open(_make(tmp_path / "x", neurons=[_neuron(0, "animation", ["drama"]), _neuron(1, "drama")]))
    with pytest.raises(B.BundleError, match=r"neurons\.json: slugs and aliases must be unique; repeated: \['drama'\]"):
        clash.neurons()
    bad = B.Bundle.open(_make(tmp_path / "y", neurons=[_neuron(0, "animation", ["Not A Slug"]), _neuron(1, "drama")]))
    with pytest.raises(B.BundleError, match=r"neurons\.json: invalid neuron record"):
        bad.neurons()
