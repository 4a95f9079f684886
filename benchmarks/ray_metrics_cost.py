"""What one metric call costs under Ray: in the worker that makes it, and in the node's metrics agent.

Ray's metrics agent (the ``DashboardAgent`` process) receives each worker's histograms as bucket
counts and, to export them, replays every observation into OpenTelemetry one by one; counter
increments arrive summed. So a histogram observation costs the agent CPU in proportion to the
traffic, a counter increment does not. This measures both: an actor makes ``--calls`` calls of
one kind, then the agent's CPU time is read over ``--window`` seconds (longer than Ray's export
interval), less what the agent uses idle over the same time (measured first). Prints the median
over ``--rounds`` rounds, in microseconds per call, as Markdown.

    python benchmarks/ray_metrics_cost.py [--calls 200000] [--window 25] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve_latency import CLK_TCK, process_stats

KINDS = ("histogram", "counter")


def _name(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:  # exited meanwhile
        return ""


def find_agent() -> int:
    """This Ray session's metrics agent: the child of our raylet (started by this process) that
    names itself DashboardAgent."""
    parents = {pid: int(fields[1]) for pid, fields in process_stats()}
    raylets = {pid for pid, parent in parents.items() if parent == os.getpid() and _name(pid) == "raylet"}
    for pid, parent in parents.items():
        if parent in raylets and _name(pid).startswith("ray::Dashboard"):
            return pid
    raise RuntimeError("no metrics agent found under this process's raylet")


def agent_cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--window", type=float, default=25.0, help="seconds the agent's CPU is read over")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")

    import ray
    from steerrec.service.ingress import free_port
    from steerrec.service.metrics import STAGE_BUCKETS

    ray.init(num_cpus=1, include_dashboard=False, _metrics_export_port=free_port(),
             log_to_driver=False)
    try:
        @ray.remote(num_cpus=0)
        class Recorder:
            def __init__(self):
                from ray.util.metrics import Counter, Histogram

                self.metrics = {"histogram": Histogram("bench_duration_seconds", description="benchmark",
                                                       boundaries=list(STAGE_BUCKETS)),
                                "counter": Counter("bench_events_total", description="benchmark")}

            def record(self, kind: str, calls: int) -> float:
                """Seconds per call in this worker."""
                metric = self.metrics[kind]
                start = time.perf_counter()
                if kind == "histogram":
                    for i in range(calls):
                        metric.observe(2e-5 * (1 + i % 100))  # spread over the buckets
                else:
                    for _ in range(calls):
                        metric.inc()
                return (time.perf_counter() - start) / calls

        recorder = Recorder.remote()
        for kind in KINDS:  # registers both metrics with the agent before anything is timed
            ray.get(recorder.record.remote(kind, 10))
        time.sleep(args.window)
        agent = find_agent()

        def agent_seconds_over_window(kind: str | None) -> tuple[float, float]:
            before = agent_cpu_seconds(agent)
            worker = ray.get(recorder.record.remote(kind, args.calls)) if kind else float("nan")
            time.sleep(args.window)
            return agent_cpu_seconds(agent) - before, worker

        results: dict[str, list[tuple[float, float]]] = {k: [] for k in KINDS}
        idle = []
        for r in range(args.rounds):
            idle.append(agent_seconds_over_window(None)[0])
            for kind in KINDS:
                agent_s, worker_s = agent_seconds_over_window(kind)
                results[kind].append((worker_s, agent_s))
            print(f"round {r + 1}/{args.rounds}: idle agent {idle[-1]:.2f} s, " + ", ".join(
                f"{k} agent {results[k][-1][1]:.2f} s" for k in KINDS), flush=True)
    finally:
        ray.shutdown()

    idle_s = statistics.median(idle)
    print(f"\n{args.calls} calls per round, agent CPU read over {args.window:g} s, idle agent {idle_s:.2f} s "
          f"per window (subtracted), medians of {args.rounds} rounds\n")
    print("| call | worker us/call | agent us/call |")
    print("|------|----------------|---------------|")
    for kind in KINDS:
        worker = statistics.median(w for w, _ in results[kind]) * 1e6
        agent_us = statistics.median(max(0.0, a - idle_s) for _, a in results[kind]) / args.calls * 1e6
        name = "Histogram.observe" if kind == "histogram" else "Counter.inc"
        print(f"| {name} | {worker:.2f} | {agent_us:.2f} |")


if __name__ == "__main__":
    main()
