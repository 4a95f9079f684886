"""End to end on the synthetic catalogue: the planted concepts must be found and named correctly.

The module fixture builds the bundle `steerrec demo` builds, in a temporary directory: the
default synthetic data, MF with 24 ALS sweeps (the count the demo's early stopping picks on this
data, fixed here to skip its validation probe: the factors are identical), and the demo's
Matryoshka SAE (128 latents, prefixes 16/32/64/128, k = 6, 3000 steps); about 60 s on one thread.
The slow test repeats the genre checks with `steerrec sae` defaults.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from steerrec.training.data.synthetic import DECADES, GENRES
from steerrec.training.interpret.labels import LabelConfig
from steerrec.training.interpret.pipeline import (
    InterpretConfig,
    interpret,
    run_interpret,
)
from steerrec.training.interpret.report import PLOTS
from steerrec.training.pipeline import DataSpec, run_train
from steerrec.training.sae.pipeline import run_sae
from steerrec.training.sae.trainer import SAETrainConfig

from steerrec import bundle as B
from steerrec.cli import main
from steerrec.commands.demo import DEMO_SAE, DEMO_SAE_STEPS
from tests.training.interpret._threads import one_torch_thread

SUBGENRES = [f"{g}/{s}" for g, subs in GENRES.items() for s in subs]
DEMO_MF_SWEEPS = 24
"""ALS sweeps of the demo's MF: early stopping picks 24 on the default synthetic data."""


def build(out: Path, sae_options: dict, steps: int | None, mf_sweeps: int | None) -> Path:
    """MF (``mf_sweeps`` ALS sweeps without early stopping, or the default with it), then the SAE."""
    with one_torch_thread():
        train = {} if mf_sweeps is None else {"early_stopping": False, "epochs": mf_sweeps}
        run_train(DataSpec(dataset="synthetic", seed=0), out, "mf", seed=0, progress=False, **train)
        tcfg = SAETrainConfig(progress=False) if steps is None else SAETrainConfig(steps=steps, progress=False)
        run_sae(out, "matryoshka", sae_options, tcfg)
    return out


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    out = build(tmp_path_factory.mktemp("synthetic") / "bundle", dict(DEMO_SAE, seed=0), DEMO_SAE_STEPS,
                mf_sweeps=DEMO_MF_SWEEPS)
    assert main(["interpret", "--bundle", str(out), "--quiet"]) == 0
    return out, interpret(out)


def named(rec: dict, facet: str) -> list[str]:
    if rec["status"] != "ok":
        return []
    return [rec[k]["name"] for k in ("concept", "qualifier") if rec.get(k) and rec[k]["facet"] == facet]


def check_genres(res) -> None:
    """Every planted genre: a first-prefix neuron whose label names it, purity@20 >= 0.9, and the
    genre's plain slug on a neuron that names it."""
    cm, al = res.concepts, res.alignment
    by_slug = {r["slug"]: r for r in res.records}
    for genre in GENRES:
        j = cm.index("genre", genre)
        hits = [r for r in res.records if r["prefix"] == 0 and genre in named(r, "genre")
                and al.purity[20][r["id"], j] >= 0.9]
        assert hits, f"no first-prefix neuron labelled {genre} with purity@20 >= 0.9"
        assert genre in hits[0]["label"]
        owner = by_slug[cm.concepts[j].slug]
        assert genre in named(owner, "genre"), f"steer={cm.concepts[j].slug} goes to {owner['label']}"


def test_every_planted_genre_is_found_and_named_in_the_first_prefix(synthetic):
    _, res = synthetic
    check_genres(res)
    assert res.summary["genre_named@10>=0.8"] == "8/8"


def test_genre_slugs_belong_to_first_prefix_neurons(synthetic):
    _, res = synthetic
    by_slug = {r["slug"]: r for r in res.records}
    assert all(by_slug[g.lower()]["prefix"] == 0 for g in GENRES)


def test_subgenres_appear_in_later_prefixes_under_their_genre(synthetic):
    _, res = synthetic
    by_id = {r["id"]: r for r in res.records}
    later = [r for r in res.records if r["prefix"] >= 1 and named(r, "subgenre")]
    found = {n for r in later for n in named(r, "subgenre")}
    assert len(found) >= len(SUBGENRES) // 2, f"only {sorted(found)} in later prefixes"
    # Their tree parents mostly carry the same genre (as genre or sub-genre of it).
    linked = [r for r in later if r["parent"] is not None]
    same = [r for r in linked if named(r, "subgenre")[0].split("/")[0] in by_id[r["parent"]]["label"]]
    assert len(linked) >= len(later) // 2 and len(same) >= 0.6 * len(linked)
    # Every sub-genre label has purity to back it.
    cm, al = res.concepts, res.alignment
    for r in later:
        j = cm.index("subgenre", named(r, "subgenre")[0])
        assert al.purity[10][r["id"], j] >= 0.5 and r["confidence"] >= 0.5


def test_every_planted_concept_is_found_and_labelled(synthetic):
    """The synthetic catalogue plants 8 genres, 24 sub-genres, 6 decades and a popularity taste;
    each must have a neuron that is found and labelled correctly (docs/interpretation.md, "Synthetic"):

    * genre: a first-prefix neuron whose label names it with purity@20 >= 0.9, and its plain slug
      (``horror``) on a neuron whose label names it;
    * sub-genre: an ok neuron whose label names it with purity@10 >= 0.8, as its concept or as the
      sub-genre a genre neuron leans to (``Drama (mostly Drama/Courtroom)``); where its plain slug
      exists (``horror-slasher``), the owner's label names it;
    * decade: its plain slug (``1980s``) on an era neuron labelled with that decade, purity@10 >= 0.8;
    * popularity: the slug ``popular`` on a neuron labelled Popular whose activation correlates
      with log popularity at r >= ``popularity_min_corr`` (0.4).
    """
    _, res = synthetic
    cm, al = res.concepts, res.alignment
    by_slug = {r["slug"]: r for r in res.records}
    check_genres(res)
    missing = [s for s in SUBGENRES
               if not any(s in named(r, "subgenre") and al.purity[10][r["id"], cm.index("subgenre", s)] >= 0.8
                          for r in res.records)]
    assert not missing, f"sub-genres no label names at purity@10 >= 0.8: {missing}"
    for s in SUBGENRES:
        owner = by_slug.get(cm.concepts[cm.index("subgenre", s)].slug)
        assert owner is None or s in named(owner, "subgenre"), f"steer={s} goes to {owner['label']}"
    for decade in DECADES:
        owner = by_slug.get(decade)
        assert owner is not None, f"no neuron owns steer={decade}"
        assert owner["concept"] == {"facet": "decade", "name": decade} and owner["era_neuron"], owner["label"]
        assert al.purity[10][owner["id"], cm.index("decade", decade)] >= 0.8
    popular = by_slug.get("popular")
    assert popular is not None and popular["label"] == "Popular" and popular["kind"] == "popularity"
    assert popular["popularity_corr"] >= LabelConfig().popularity_min_corr and popular["popularity_neuron"]
    assert res.summary["popularity_neurons"][0]["slug"] == "popular"
    for facet, total in (("genre", len(GENRES)), ("subgenre", len(SUBGENRES)), ("decade", len(DECADES))):
        assert res.summary[f"{facet}_named@10>=0.8"] == f"{total}/{total}"


def test_neurons_json_and_concept_tree_are_in_the_bundle(synthetic):
    out, _ = synthetic
    bundle = B.Bundle.open(out)
    records = bundle.neurons()  # schema, ids in order, unique slugs
    assert len(records) == 128
    assert all(re.fullmatch(B.SLUG_PATTERN, r.slug) for r in records)
    raw = bundle.json(B.NEURONS)
    assert {"purity@10", "precision", "recall", "activation_scale", "ms_embedding", "ms_metadata", "kind"} <= set(raw[0])
    statuses = {r.status for r in records}
    assert statuses <= {"ok", "low_confidence", "dead"} and "ok" in statuses
    for r in raw:
        assert (r["status"] == "ok") == (not re.fullmatch(r"n\d+", r["slug"]))
        if r["status"] == "dead":
            assert r["top_items"] == [] and r["activation_rate_items"] == 0 == r["activation_rate_users"]
    tree = bundle.json(B.CONCEPT_TREE)
    assert tree["prefixes"] == list(DEMO_SAE["prefixes"])
    ids = {n["id"] for n in tree["nodes"]}
    assert all(n["parent"] is None or n["parent"] in ids for n in tree["nodes"])
    assert all(raw[n["parent"]]["prefix"] < n["prefix"] for n in tree["nodes"] if n["parent"] is not None)
    summary = bundle.manifest.metrics["interpret"]
    assert summary["n_latents"] == 128 and summary["ok"] == sum(r.status == "ok" for r in records)


def test_the_service_steers_by_the_slugs_and_serves_the_tree(synthetic):
    from steerrec.service.engine import SteeringEngine
    from steerrec.service.explorer import concept_tree

    out, res = synthetic
    engine = SteeringEngine(out)
    by_slug = {r["slug"]: r for r in res.records}
    assert engine.catalog.resolve("horror") == by_slug["horror"]["id"]
    assert engine.catalog.label(by_slug["horror"]["id"]) == by_slug["horror"]["label"]
    tree = concept_tree(engine)  # validated against the explorer's schema and the served SAE
    assert tree["source"] == "concept_tree.json" and tree["method"]["coactivation_weight"] == 0.8
    assert {n["id"] for n in tree["nodes"]} == {r["id"] for r in res.records if r["status"] != "dead"}


def test_top_items_and_activation_scale_match_the_codes(synthetic):
    _, res = synthetic
    z_items, z_users = res.activations.items_IL, res.activations.users_UL
    for rec in res.records[:20]:
        j = rec["id"]
        if rec["top_items"]:
            assert rec["top_items"][0]["index"] == int(np.argmax(z_items[:, j]))
        both = np.concatenate([z_items[:, j], z_users[:, j]])
        scale = both[both > 0].mean() if (both > 0).any() else 0.0
        assert rec["activation_scale"] == pytest.approx(scale, rel=1e-4, abs=1e-5)


def test_report_has_every_plot(synthetic, tmp_path, capsys):
    out, _ = synthetic
    work = tmp_path / "bundle"
    shutil.copytree(out, work)
    shutil.copyfile(_png(tmp_path), work / "sae_beta_sweep.png")  # as `steerrec sae --sweep` leaves it
    assert main(["report", "--bundle", str(work)]) == 0
    index = work / "report" / "index.html"
    html = index.read_text()
    for name in PLOTS.values():
        path = index.parent / name
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        assert f'src="{name}"' in html
    assert "horror" in html and "Popularity neurons" in html
    # --out elsewhere, and the bundle's checksums stay valid (the report is not a bundle file).
    assert main(["report", "--bundle", str(work), "--out", str(tmp_path / "r" / "x.html")]) == 0
    assert (tmp_path / "r" / "x.html").is_file() and (tmp_path / "r" / PLOTS["tree"]).is_file()
    B.Bundle.open(work)
    assert "report:" in capsys.readouterr().out


def _png(tmp_path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = tmp_path / "sweep.png"
    plt.figure(figsize=(2, 2)).savefig(path)
    plt.close("all")
    return path


def test_report_without_interpretation_is_a_clear_error(synthetic, tmp_path, capsys):
    out, _ = synthetic
    work = tmp_path / "bundle"
    shutil.copytree(out, work)
    writer = B.BundleWriter.open(work)
    writer.remove(B.NEURONS)
    writer.remove(B.CONCEPT_TREE)
    writer.commit()
    assert main(["report", "--bundle", str(work)]) == 2
    assert "run `steerrec interpret" in capsys.readouterr().err


def test_interpret_without_sae_names_the_missing_files(synthetic, tmp_path, capsys):
    out, _ = synthetic
    work = tmp_path / "bundle"
    shutil.copytree(out, work)
    writer = B.BundleWriter.open(work)
    for name in B.SAE_FILES:
        writer.remove(name)
    writer.commit()
    assert main(["interpret", "--bundle", str(work)]) == 2
    assert "sae_encoder.onnx" in capsys.readouterr().err


def test_interpretation_is_deterministic_and_config_is_validated(synthetic):
    out, res = synthetic
    again = interpret(out)
    assert [r["slug"] for r in again.records] == [r["slug"] for r in res.records]
    with pytest.raises(ValueError):
        InterpretConfig(ms_top=1)


def test_llm_flag_reaches_the_endpoint(synthetic, tmp_path, monkeypatch):
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    seen = []

    class Chat(BaseHTTPRequestHandler):
        def do_POST(self):
            seen.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            data = json.dumps({"choices": [{"message": {"content": '{"label": "test label"}'}}]}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    httpd = HTTPServer(("127.0.0.1", 0), Chat)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        out, _ = synthetic
        work = tmp_path / "bundle"
        shutil.copytree(out, work)
        url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
        assert main(["interpret", "--bundle", str(work), "--quiet", "--llm-url", url, "--llm-model", "m",
                     "--llm-max-neurons", "3"]) == 0
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert len(seen) == 3
    raw = B.Bundle.open(work).json(B.NEURONS)
    assert sum(r.get("llm_label") == "test label" for r in raw) == 3
    assert B.Bundle.open(work).manifest.metrics["interpret"]["llm"] == {"model": "m", "labelled": 3}


@pytest.mark.slow
def test_default_demo_and_sae_find_every_genre(tmp_path):
    """The full default: `steerrec demo` data and model, `steerrec sae` defaults."""
    out = build(tmp_path / "bundle", {}, None, mf_sweeps=None)
    res = run_interpret(out)
    check_genres(res)
    found = {n for r in res.records for n in named(r, "subgenre")}
    assert len(found) >= len(SUBGENRES) // 2


def test_user_metadata_columns_are_aligned_with_user_codes(synthetic, tmp_path):
    from steerrec.training.data.synthetic import generate
    from steerrec.training.interpret.pipeline import USER_METADATA

    out, _ = synthetic
    work = tmp_path / "bundle"
    shutil.copytree(out, work)
    data = generate()
    favourite = dict(zip(data.user_ids, data.user_meta["favourite_genre"]))
    user_ids = B.Bundle.open(work).user_ids()
    writer = B.BundleWriter.open(work)
    writer.add_json(USER_METADATA, {"columns": {"favourite_genre": [favourite[u] for u in user_ids]}})
    writer.commit()
    res = run_interpret(work)
    by_slug = {r["slug"]: r for r in res.records}
    # The neuron that owns a genre's slug is, on the user side, most aligned with fans of that genre.
    agree = [g for g in GENRES if by_slug[g.lower()]["user_concepts"]
             and by_slug[g.lower()]["user_concepts"][0]["concept"] == g]
    assert len(agree) >= 6, agree


def test_cli_errors_are_one_clear_line(tmp_path, capsys):
    assert main(["interpret", "--bundle", str(tmp_path), "--set", "bogus=1"]) == 2
    assert "unknown --set option(s) ['bogus']" in capsys.readouterr().err
    assert main(["interpret", "--bundle", str(tmp_path / "missing")]) == 2
    assert "bundle directory does not exist" in capsys.readouterr().err
    assert main(["report", "--bundle", str(tmp_path / "missing")]) == 2
