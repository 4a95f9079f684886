"""The HTML interpretation report: summary tables and PNG plots (matplotlib, Agg backend).

Plots: concept x neuron purity heatmap, top items of the best neurons, the concept tree, the
purity distribution per Matryoshka prefix, and the SAE beta trade-off (``sae_beta_sweep.png``,
written by ``steerrec sae --sweep``) when the bundle directory has it.
"""

from __future__ import annotations

import html
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from .alignment import KS
from .labels import OK
from .pipeline import Interpretation

PLOTS = {
    "heatmap": "concept_heatmap.png",
    "top_items": "top_items.png",
    "tree": "concept_tree.png",
    "purity": "purity_distribution.png",
    "beta": "sae_beta_sweep.png",
}
BETA_SWEEP = "sae_beta_sweep.png"
MAX_COLUMNS = 96
MAX_ROWS = 40


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _short(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def shown_neurons(records: list[dict[str, Any]], limit: int = MAX_COLUMNS) -> list[dict[str, Any]]:
    """Labelled neurons, earliest prefix and most confident first, capped for legibility."""
    ok = [r for r in records if r["status"] == OK]
    ok.sort(key=lambda r: (r["prefix"], -r["confidence"], r["id"]))
    return ok[:limit]


def plot_heatmap(res: Interpretation, path: Path) -> None:
    plt = _plt()
    cols = shown_neurons(res.records)
    cm = res.concepts
    # Rows: every concept of small facets, and for large ones (tags) the concepts the shown
    # neurons are labelled with, then the most frequent, up to MAX_ROWS.
    named = {(r["concept"]["facet"], r["concept"]["name"]) for r in cols if "concept" in r}
    rows = [j for j, c in enumerate(cm.concepts) if (c.facet, c.name) in named]
    support = cm.support_C
    for j in np.argsort(-support, kind="stable"):
        if len(rows) >= MAX_ROWS:
            break
        if int(j) not in rows:
            rows.append(int(j))
    rows.sort(key=lambda j: (cm.facets.index(cm.concepts[j].facet), -support[j]))
    data = res.alignment.purity[20][[r["id"] for r in cols]][:, rows].T if cols else np.zeros((len(rows), 0))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.16 * len(cols) + 3), max(4.0, 0.2 * len(rows) + 1.5)))
    im = ax.imshow(data, aspect="auto", cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([f"{cm.concepts[j].facet}: {_short(cm.concepts[j].name, 28)}" for j in rows], fontsize=6)
    ax.set_xticks(range(len(cols)))
    ax.set_xticklabels([r["slug"] for r in cols], rotation=90, fontsize=5)
    ax.set_title("purity@20 of labelled neurons (columns) for each concept (rows)")
    fig.colorbar(im, ax=ax, fraction=0.02, pad=0.01)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_top_items(res: Interpretation, path: Path, n_neurons: int = 12, n_items: int = 8) -> None:
    plt = _plt()
    # The neurons that own a plain concept slug are what people steer by: show those first.
    ok = shown_neurons(res.records, limit=len(res.records))
    ok.sort(key=lambda r: ("-" in r["slug"], r["prefix"], -r["confidence"], r["id"]))
    chosen = ok[:n_neurons] or [r for r in res.records if r["top_items"]][:n_neurons]
    n = max(1, len(chosen))
    ncols = 3
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(15, 2.4 * nrows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.axis("off")
    for ax, rec in zip(axes.flat, chosen):
        items = rec["top_items"][:n_items][::-1]
        ax.barh(range(len(items)), [t["activation"] for t in items], color="#4c72b0")
        ax.set_yticks(range(len(items)))
        ax.set_yticklabels([_short(t["title"], 34) for t in items], fontsize=6)
        ax.set_title(f"#{rec['id']} {_short(rec['label'], 30)} [{rec['slug']}] conf {rec['confidence']:.2f}",
                     fontsize=7)
        ax.tick_params(axis="x", labelsize=6)
    if not chosen:
        axes.flat[0].text(0.5, 0.5, "no labelled neuron", ha="center")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def tree_layout(tree: dict[str, Any], keep: set[int]) -> tuple[dict[int, tuple[float, int]], list[tuple[int, int]]]:
    """x (leaf order of a depth-first walk) and y (prefix) of the kept nodes and their ancestors."""
    nodes = {nd["id"]: nd for nd in tree["nodes"]}
    shown = set()
    for i in keep:
        while i is not None and i in nodes and i not in shown:
            shown.add(i)
            i = nodes[i]["parent"]
    pos: dict[int, tuple[float, int]] = {}
    cursor = [0.0]

    def place(i: int) -> float:
        kids = [c for c in nodes[i]["children"] if c in shown]
        if not kids:
            x = cursor[0]
            cursor[0] += 1.0
        else:
            x = float(np.mean([place(c) for c in kids]))
        pos[i] = (x, nodes[i]["prefix"])
        return x

    for root in sorted(i for i in shown if nodes[i]["parent"] is None or nodes[i]["parent"] not in shown):
        place(root)
    edges = [(nodes[i]["parent"], i) for i in pos if nodes[i]["parent"] in pos]
    return pos, edges


def plot_tree(res: Interpretation, path: Path) -> None:
    plt = _plt()
    keep = {r["id"] for r in res.records if r["status"] == OK}
    pos, edges = tree_layout(res.tree, keep)
    slug = {r["id"]: r["slug"] for r in res.records}
    width = max(8.0, min(40.0, 0.22 * max(1, len(pos))))
    fig, ax = plt.subplots(figsize=(width, 1.6 + 1.4 * len(res.prefixes)))
    for p, c in edges:
        (x0, y0), (x1, y1) = pos[p], pos[c]
        ax.plot([x0, x1], [y0, y1], color="#999999", lw=0.6, zorder=1)
    if pos:
        xs, ys = zip(*pos.values())
        colors = ["#4c72b0" if i in keep else "#cccccc" for i in pos]
        ax.scatter(xs, ys, s=14, c=colors, zorder=2)
        for i, (x, y) in pos.items():
            ax.text(x, y + 0.08, slug[i], rotation=90, fontsize=5, ha="center", va="top")  # below the dot
    ax.set_yticks(range(len(res.prefixes)))
    ax.set_yticklabels([f"prefix {p}" for p in res.prefixes], fontsize=7)
    ax.set_ylim(len(res.prefixes) - 0.3, -0.6)
    ax.set_xticks([])
    ax.set_title("concept tree: labelled neurons under their parents (grey: unlabelled ancestors)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_purity(res: Interpretation, path: Path) -> None:
    plt = _plt()
    fig, axes = plt.subplots(1, len(KS), figsize=(4.2 * len(KS), 3.2), sharey=True)
    bins = np.linspace(0, 1, 11)
    live = [r for r in res.records if r["status"] != "dead" and f"purity@{KS[0]}" in r]
    for ax, k in zip(np.atleast_1d(axes), KS):
        stacks = [[r[f"purity@{k}"] for r in live if r["prefix"] == lv] for lv in range(len(res.prefixes))]
        ax.hist(stacks, bins=bins, stacked=True, label=[f"prefix {p}" for p in res.prefixes])
        ax.set_xlabel(f"purity@{k} of the best concept")
        ax.set_title(f"purity@{k}", fontsize=9)
    np.atleast_1d(axes)[0].set_ylabel("live neurons")
    np.atleast_1d(axes)[-1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(v))}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3f}"
    return "" if v is None else str(v)


NEURON_COLUMNS = ["id", "slug", "label", "prefix", "confidence", "purity@10", "purity@20", "purity@50",
                  "precision", "recall", "f1", "point_biserial", "ms_embedding", "ms_metadata", "popularity_corr",
                  "parent"]


def render_html(res: Interpretation, bundle_name: str, images: dict[str, str | None]) -> str:
    s = res.summary
    facts = [[k, v] for k, v in s.items() if not isinstance(v, (dict, list))]
    facts += [["ok neurons by prefix", ", ".join(f"{k}: {v}" for k, v in s["ok_by_prefix"].items())],
              ["labelled kinds", ", ".join(f"{k}: {v}" for k, v in s["kinds"].items())]]
    ok = shown_neurons(res.records, limit=len(res.records))
    pop = [r for r in res.records if r.get("popularity_neuron")]
    pop.sort(key=lambda r: -abs(r["popularity_corr"]))
    era = [r for r in res.records if r.get("era_neuron")]
    parts = [f"<h1>Neuron interpretation: {html.escape(bundle_name)}</h1>",
             ("<p>Labels come from item metadata; a label names a concept only when the neuron's most activating "
              "items support it (confidence = normalised purity, see docs/interpretation.md). "
              "Steer with <code>steer=&lt;slug&gt;:+2</code>.</p>"),
             "<h2>Summary</h2>", _table(["figure", "value"], facts)]
    captions = {"heatmap": "Concept x neuron purity@20", "top_items": "Top items per neuron",
                "tree": "Matryoshka concept tree", "purity": "Purity distribution per prefix",
                "beta": "SAE beta trade-off (steerrec sae --sweep)"}
    for key, caption in captions.items():
        parts.append(f"<h2>{caption}</h2>")
        if images.get(key):
            parts.append(f'<img src="{html.escape(images[key])}" alt="{html.escape(caption)}">')
        else:
            parts.append("<p>Not available: run <code>steerrec sae --bundle DIR --sweep beta=0,0.5,1,2</code> "
                         "to produce it.</p>")
    parts += ["<h2>Popularity neurons</h2>",
              _table(["id", "slug", "label", "corr with log popularity"],
                     [[r["id"], r["slug"], r["label"], r["popularity_corr"]] for r in pop]) if pop else "<p>none</p>",
              "<h2>Era neurons</h2>",
              _table(["id", "slug", "label", "purity@10", "corr with year"],
                     [[r["id"], r["slug"], r["label"], r.get("purity@10"), r.get("year_corr")] for r in era])
              if era else "<p>none</p>",
              f"<h2>Labelled neurons ({len(ok)})</h2>",
              _table(NEURON_COLUMNS, [[r.get(c) for c in NEURON_COLUMNS] for r in ok])]
    style = ("body{font-family:sans-serif;margin:2em;max-width:1400px}table{border-collapse:collapse;font-size:12px}"
             "td,th{border:1px solid #ccc;padding:2px 6px;text-align:left}img{max-width:100%;border:1px solid #eee}")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>steerrec report: {html.escape(bundle_name)}"
            f"</title><style>{style}</style></head><body>{''.join(parts)}</body></html>")


def write_report(res: Interpretation, bundle_dir: str | Path, out: str | Path | None = None) -> Path:
    """Writes ``index.html`` and the PNGs (default ``<bundle>/report/``); returns the HTML path."""
    bundle_dir = Path(bundle_dir)
    out = Path(out) if out else bundle_dir / "report" / "index.html"
    if out.suffix.lower() not in (".html", ".htm"):
        out = out / "index.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    images: dict[str, str | None] = {}
    for key, fn in (("heatmap", plot_heatmap), ("top_items", plot_top_items), ("tree", plot_tree),
                    ("purity", plot_purity)):
        fn(res, out.parent / PLOTS[key])
        images[key] = PLOTS[key]
    sweep = bundle_dir / BETA_SWEEP
    images["beta"] = None
    if sweep.is_file():
        if sweep.resolve() != (out.parent / PLOTS["beta"]).resolve():
            shutil.copyfile(sweep, out.parent / PLOTS["beta"])
        images["beta"] = PLOTS["beta"]
    res.summary.setdefault("seconds", {})["report"] = round(time.perf_counter() - start, 3)
    out.write_text(render_html(res, bundle_dir.name, images), encoding="utf-8")
    return out

