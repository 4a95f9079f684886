"""What numpy's BLAS threads do to the one-pass ranking's matrix-vector product (items x 64 times a
query), the reason the service pins them to one (``runtime.set_cpu_threads``).

For each catalogue size, the product is timed with numpy's BLAS on one thread and on its default
pool (one per core), alternating, and the wall and CPU time per product are reported with their
ratios to one thread. ``--busy N`` runs N processes spinning on the cores meanwhile, as other
replicas or other work would on a shared box.

    python benchmarks/blas_threads.py [--sizes 1500,8000,32768] [--busy 0]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import time

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

from steerrec.table import markdown_table

DIM = 64


def spin(stop) -> None:
    while not stop.is_set():
        pass


def per_product(vectors: np.ndarray, query: np.ndarray, seconds: float) -> tuple[float, float]:
    """Wall and CPU microseconds per product over about ``seconds``."""
    n, wall0, cpu0 = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - wall0 < seconds:
        for _ in range(50):
            vectors @ query
        n += 50
    return (time.perf_counter() - wall0) / n * 1e6, (time.process_time() - cpu0) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1500,8000,32768")
    parser.add_argument("--busy", type=int, default=0, help="spinning processes run meanwhile")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=0.5, help="per measurement")
    args = parser.parse_args()
    default = max(p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas")
    stop = multiprocessing.Event()
    spinners = [multiprocessing.Process(target=spin, args=(stop,), daemon=True) for _ in range(args.busy)]
    for p in spinners:
        p.start()
    rows = []
    try:
        rng = np.random.default_rng(0)
        for n in (int(s) for s in args.sizes.split(",")):
            vectors = rng.standard_normal((n, DIM)).astype(np.float32)
            query = rng.standard_normal(DIM).astype(np.float32)
            times: dict[int, list[tuple[float, float]]] = {1: [], default: []}
            for _ in range(args.rounds):
                for threads in times:
                    with threadpool_limits(threads, user_api="blas"):
                        time.sleep(0.2)  # idle worker threads spin a while before they sleep
                        times[threads].append(per_product(vectors, query, args.seconds))
            wall1, cpu1 = (statistics.median(t[i] for t in times[1]) for i in (0, 1))
            for threads, measured in times.items():
                wall, cpu = (statistics.median(t[i] for t in measured) for i in (0, 1))
                rows.append([n, threads, f"{wall:.1f}", f"{cpu:.1f}", f"{wall / wall1:.2f}", f"{cpu / cpu1:.2f}"])
    finally:
        stop.set()
        for p in spinners:
            p.join()
    print(f"{os.cpu_count()} cores, {args.busy} busy processes; medians of {args.rounds} rounds\n")
    print(markdown_table(["items", "BLAS threads", "wall us", "CPU us", "wall / one thread",
                          "CPU / one thread"], rows))


if __name__ == "__main__":
    main()
