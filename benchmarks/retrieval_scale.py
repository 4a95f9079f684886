"""Exact versus approximate steered top-10 retrieval at 10k, 100k and 1M synthetic items (d=64).

Items and users come from a clustered model (so approximate indexes see realistic structure, not
isotropic noise) with a popularity bias term. A steered query is the shape of an SAE edit
u' = u + dz * W_dec[j] * scale: the user vector plus twice a typical user norm along a unit
direction, either a "concept" (one cluster's centre, as a genre neuron's decoder row would be) or a
random direction (an adversarial case for graph and cluster indexes). Every query also excludes 50
random "seen" items. Two more workloads promote, unsteered, the items of four clusters (~6% of the
catalogue, as a genre neuron's items) by a quarter of the spread of scores, and a single item by the
whole spread: on a CPU the flat index ranks the group from one pass over the items and the single
item by search and merge (ItemIndex.scans), the approximate indexes both by search and merge. For
each catalogue size the script builds the service's ItemIndex as flat (exact) and as the approximate
kinds, then reports build time, single-query QPS (as served: one query per call) and recall@10 of
the approximate answers against the exact ones. Where FAISS can search on a GPU the flat index searches
there, and the same index on the CPU is timed beside it (its answers must be identical). Up to
``--compare-max`` items (on a CPU) it also times the unpromoted queries on the flat index both ways, from one
pass over the items and by FAISS's search (the service picks the pass up to
``ServiceConfig.scan_max_items``), so the table shows where the two cross.

    python benchmarks/retrieval_scale.py [--sizes 10000,100000,1000000] [--kinds hnsw,ivf] [--queries 300]
    python benchmarks/retrieval_scale.py --sizes 1500,4000,8000,16000 --kinds ''   # the crossover
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import numpy as np
from steerrec.service.config import ServiceConfig
from steerrec.service.retrieval import Boosts, ItemIndex
from steerrec.service.runtime import detect_runtime, set_cpu_threads

from steerrec.table import markdown_table

DIM = 64
K = 10
SEEN = 50


N_CLUSTERS = 64


def synthetic(n_items: int, n_users: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    n_clusters = N_CLUSTERS
    centers = rng.normal(size=(n_clusters, DIM)).astype(np.float32)
    items = np.empty((n_items, DIM), np.float32)
    for start in range(0, n_items, 200_000):  # in chunks, to keep the temporary arrays small
        stop = min(n_items, start + 200_000)
        members = rng.integers(n_clusters, size=stop - start)
        items[start:stop] = 0.6 * centers[members] + 0.5 * rng.normal(size=(stop - start, DIM)).astype(np.float32)
    bias = (0.3 * rng.normal(size=n_items)).astype(np.float32)
    users = (0.6 * centers[rng.integers(n_clusters, size=n_users)]
             + 0.5 * rng.normal(size=(n_users, DIM))).astype(np.float32) / 4
    return items, bias, users, centers


def queries(users: np.ndarray, n_items: int, steer: str, centers: np.ndarray, seed: int = 1):
    """(query, seen rows) pairs; ``steer`` is "none", "concept" or "random"."""
    rng = np.random.default_rng(seed)
    out = []
    typical = float(np.median(np.linalg.norm(users, axis=1)))
    for u in users:
        q = u.astype(np.float64)
        if steer != "none":
            direction = centers[rng.integers(len(centers))] if steer == "concept" else rng.normal(size=DIM)
            q = q + 2.0 * typical * direction / np.linalg.norm(direction)
        out.append((q, rng.choice(n_items, size=SEEN, replace=False)))
    return out


def promotes(items: np.ndarray, bias: np.ndarray, users: np.ndarray, centers: np.ndarray) -> dict[str, Boosts]:
    """The items closest to four cluster centres (~6% of them), each raised by a quarter of the
    standard deviation of users' scores; and one item raised by the whole standard deviation."""
    n_clusters = 4
    nearest = np.argmax(items @ centers.T, axis=1)
    ids = np.flatnonzero(nearest < n_clusters).astype(np.int64)
    spread = float(np.std(users[:50] @ items[:5000].T + bias[:5000]))
    return {"promote ~6%": Boosts(ids, np.full(len(ids), 0.25 * spread)),
            "promote 1 item": Boosts(np.array([len(items) // 2], np.int64), np.array([spread]))}


def run(index: ItemIndex, qs, boosts: Boosts) -> tuple[float, list[list[int]]]:
    for q, seen in qs[:20]:  # warm-up
        index.top_k(q, K, seen, boosts)
    started = time.perf_counter()
    answers = [index.top_k(q, K, seen, boosts)[0].tolist() for q, seen in qs]
    return len(qs) / (time.perf_counter() - started), answers


def recall(approx: list[list[int]], exact: list[list[int]]) -> float:
    return float(np.mean([len(set(a) & set(e)) / K for a, e in zip(approx, exact)]))


def flat_way(index: ItemIndex, boosts: Boosts) -> str:
    if index.scans(len(boosts.ids)):
        return ", one pass"
    return ", index search" + (" on the GPU" if index.device == "cuda" else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--kinds", default="hnsw,ivf")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--compare-max", type=int, default=32_768,
                        help="up to this size, time unpromoted flat queries both by one pass and by the index search")
    parser.add_argument("--threads", type=int, default=0, help="FAISS threads for building (0: all cores)")
    parser.add_argument("--hnsw-m", type=int, default=16)
    parser.add_argument("--hnsw-max-items", type=int, default=200_000,
                        help="skip HNSW above this size (its 1M build took 4 min on 2 shared cores, recall 0.63)")
    parser.add_argument("--hnsw-ef", default="64,256", help="efSearch values to try (search time only)")
    parser.add_argument("--ivf-nprobe", default="8,32", help="nprobe values to try (search time only)")
    args = parser.parse_args()
    runtime = detect_runtime(use_gpu=True)
    set_cpu_threads(1)  # as served (the engine does the same): FAISS's OpenMP and numpy's BLAS on one thread
    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        items, bias, users, centers = synthetic(n, args.queries)
        workloads = {name: queries(users, n, steer, centers) for name, steer in
                     (("unsteered", "none"), ("steered: concept", "concept"), ("steered: random", "random"))}
        promoted = promotes(items, bias, users, centers)
        workloads |= {name: workloads["unsteered"] for name in promoted}
        boosts = {name: promoted.get(name, Boosts.empty()) for name in workloads}
        exact_config = ServiceConfig(flat_index_max_items=n)
        started = time.perf_counter()
        exact = ItemIndex(items, bias, exact_config, runtime)
        exact_build = time.perf_counter() - started
        truth = {}

        def time_flat(index: ItemIndex, build, names, disagree: str) -> None:
            """Times ``index`` on the named workloads; the first pass sets the answers later ones must give."""
            for name in names:
                qps, answers = run(index, workloads[name], boosts[name])
                assert truth.setdefault(name, answers) == answers, disagree
                rows.append([n, "flat (exact)" + flat_way(index, boosts[name]), name, build, round(qps), 1.0])
                print(rows[-1], flush=True)

        time_flat(exact, round(exact_build, 1), workloads, "")
        if exact.device == "cuda":  # the same flat index on the CPU, as the GPU's baseline in the same run
            on_cpu = ItemIndex(items, bias, exact_config, detect_runtime(use_gpu=False))
            time_flat(on_cpu, "", workloads, "the GPU and CPU flat indexes disagree")
            del on_cpu
        elif n <= args.compare_max:  # the other way for the unpromoted queries, in the same run
            exact.config = replace(exact_config, scan_max_items=0 if exact.scans(0) else n)
            time_flat(exact, round(exact_build, 1), [name for name in workloads if not len(boosts[name].ids)],
                      "the two ways of ranking a flat index disagree")
        del exact
        for kind in filter(None, args.kinds.split(",")):
            if kind == "hnsw" and n > args.hnsw_max_items:
                continue
            config = ServiceConfig(flat_index_max_items=0, ann_kind=kind, hnsw_m=args.hnsw_m)
            set_cpu_threads(args.threads or 64)  # building parallelises; faiss caps at the core count
            started = time.perf_counter()
            index = ItemIndex(items, bias, config, runtime)
            build = time.perf_counter() - started
            set_cpu_threads(1)  # serving: one query per call, replicas parallelise
            for value in (int(v) for v in (args.hnsw_ef if kind == "hnsw" else args.ivf_nprobe).split(",")):
                if kind == "hnsw":
                    index.config = replace(config, hnsw_ef_search=value)
                    label = f"hnsw M={args.hnsw_m} efSearch={value}"
                else:
                    index.config = replace(config, ivf_nprobe=value)
                    label = f"ivf nlist={index.cpu_index.nlist} nprobe={value}"
                for name, qs in workloads.items():
                    qps, answers = run(index, qs, boosts[name])
                    rows.append([n, label, name, round(build, 1), round(qps), round(recall(answers, truth[name]), 3)])
                    print(rows[-1], flush=True)
            del index
    print()
    print(markdown_table(["items", "index", "queries", "build s", "QPS (1 thread)", "recall@10"], rows))


if __name__ == "__main__":
    main()
