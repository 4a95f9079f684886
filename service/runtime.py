"""The one place that decides GPU or CPU for the service.

ONNX Runtime gets the CUDA execution provider when the installed build offers it and a first run
there works, FAISS gets a GPU index when ``faiss.get_num_gpus()`` sees a device and a search there
works; otherwise both run on the CPU. Nothing here raises for want of a GPU: a CPU-only machine
(``faiss-cpu``, ``onnxruntime``) is the normal case.
"""

from __future__ import annotations

import functools
import logging
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

CUDA_PROVIDER = "CUDAExecutionProvider"
CPU_PROVIDER = "CPUExecutionProvider"
PROBE_TIMEOUT_S = 120
"""A GPU search check slower than this (a CUDA context that never comes up) counts as failed."""


@dataclass(frozen=True)
class Runtime:
    onnx_providers: tuple[str, ...]
    """Providers handed to every ONNX Runtime session, preferred first."""
    faiss_gpus: int
    """GPUs FAISS may use (0: CPU indexes only)."""

    @property
    def onnx_device(self) -> str:
        return "cuda" if self.onnx_providers[0] == CUDA_PROVIDER else "cpu"

    @property
    def faiss_device(self) -> str:
        return "cuda" if self.faiss_gpus > 0 else "cpu"

    def describe(self) -> dict[str, Any]:
        import sys

        return {"onnx": self.onnx_device, "onnx_providers": list(self.onnx_providers),
                "faiss": self.faiss_device, "faiss_gpus": self.faiss_gpus,
                "torch_loaded": "torch" in sys.modules}  # the serving side must never import torch


def _faiss_gpu_count() -> int:
    import faiss

    try:
        count = int(faiss.get_num_gpus())
    except Exception:  # noqa: BLE001 - a CPU build without the symbol, or a driver problem: CPU it is
        return 0
    if count <= 0 or not hasattr(faiss, "StandardGpuResources"):
        return 0
    return count if faiss_gpu_search_runs() else 0


FAISS_GPU_PROBE = """
import numpy as np, faiss
index = faiss.GpuIndexFlatIP(faiss.StandardGpuResources(), 8)
index.add(np.eye(8, dtype="float32"))
assert index.search(np.eye(8, dtype="float32")[3:4], 1)[1][0, 0] == 3
"""


@functools.cache
def faiss_gpu_search_runs() -> bool:
    """Whether a GPU search works, tried in a child process: FAISS aborts the whole process (a C++
    assertion, not an exception) when its build has no kernels for the device, as faiss-gpu-cu12's
    wheels have none for Hopper (H100, H200; faiss-wheels issue 151)."""
    try:
        done = subprocess.run([sys.executable, "-c", FAISS_GPU_PROBE], capture_output=True, text=True,
                              timeout=PROBE_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.warning("FAISS's GPU check did not finish (%s); searching on the CPU", exc)
        return False
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or [f"exit status {done.returncode}"]
        log.warning("FAISS sees a GPU but cannot search on it (%s); searching on the CPU", lines[-1])
        return False
    return True


def detect_runtime(use_gpu: bool = True) -> Runtime:
    """Looks at what the installed builds can use; ``use_gpu=False`` forces the CPU."""
    import onnxruntime as ort

    available = set(ort.get_available_providers())
    providers = (CUDA_PROVIDER, CPU_PROVIDER) if use_gpu and CUDA_PROVIDER in available else (CPU_PROVIDER,)
    gpus = _faiss_gpu_count() if use_gpu else 0
    return Runtime(onnx_providers=providers, faiss_gpus=gpus)


def onnx_session(path: str | Path, runtime: Runtime, threads: int = 0):
    """An inference session on the runtime's providers. If CUDA was chosen but fails to start
    (driver mismatch, no memory) or to run a first batch of zeros (kernels missing for the GPU,
    a cuDNN or cuBLAS mismatch: GPU builds fail at their first run too), the session falls back to
    the CPU with a warning."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(path), sess_options=options, providers=list(runtime.onnx_providers))
        if session_device(session) == "cuda":
            _run_zeros(session)
        return session
    except Exception as exc:
        if runtime.onnx_providers == (CPU_PROVIDER,):
            raise
        log.warning("ONNX Runtime could not use %s (%s); using the CPU", runtime.onnx_providers[0], exc)
        return ort.InferenceSession(str(path), sess_options=options, providers=[CPU_PROVIDER])


def _run_zeros(session) -> None:
    """One run on a batch of one zero row (the bundle's graphs take float32 ``[batch, width]``)."""
    import numpy as np

    feeds = {i.name: np.zeros([d if isinstance(d, int) else 1 for d in i.shape], np.float32)
             for i in session.get_inputs()}
    session.run(None, feeds)


def session_device(session) -> str:
    """Where a session actually runs (ONNX Runtime may have dropped CUDA at creation)."""
    return "cuda" if session.get_providers()[0] == CUDA_PROVIDER else "cpu"


def to_gpu_index(index, runtime: Runtime):
    """A GPU copy of a CPU FAISS index when the runtime has a GPU, else None. Kept beside the CPU
    index: GPU indexes ignore ID selectors and cap k, and the CPU one answers those queries."""
    if runtime.faiss_gpus <= 0:
        return None
    import faiss

    try:
        resources = faiss.StandardGpuResources()
        gpu_index = faiss.index_cpu_to_gpu(resources, 0, index)
        # The GPU index holds a raw pointer to its resources: keep them alive with it.
        gpu_index.referenced_objects = [*getattr(gpu_index, "referenced_objects", []), resources]
        return gpu_index
    except Exception as exc:  # noqa: BLE001 - an index without a GPU implementation (HNSW), no memory
        log.warning("FAISS could not move the index to the GPU (%s); searching on the CPU", exc)
        return None


def set_cpu_threads(threads: int) -> None:
    """FAISS's OpenMP and numpy's BLAS on ``threads`` threads. A single query's search or pass gains
    little from more and, on a busy box, loses: their worker threads wait for a core or spin (numbers
    in docs/api.md, "What was done"). Replicas parallelise instead."""
    import faiss
    from threadpoolctl import threadpool_limits

    if threads > 0:
        faiss.omp_set_num_threads(threads)
        threadpool_limits(threads, user_api="blas")
