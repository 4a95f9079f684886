"""GPU or CPU: FAISS's GPU search and ONNX Runtime's CUDA provider are used only where they work."""

import faiss
import numpy as np
import onnxruntime as ort
import pytest
from steerrec.service import runtime
from steerrec.service.runtime import CPU_PROVIDER, CUDA_PROVIDER, Runtime, detect_runtime, onnx_session


def test_runtime_never_needs_a_gpu():
    chosen = detect_runtime(use_gpu=True)
    assert chosen.onnx_providers[-1] == "CPUExecutionProvider"
    # a GPU build counts its GPUs only where a search there works (not so for faiss-gpu-cu12 on Hopper)
    assert chosen.faiss_gpus in {0, faiss.get_num_gpus() if hasattr(faiss, "StandardGpuResources") else 0}
    cpu = detect_runtime(use_gpu=False)
    assert cpu.onnx_providers == ("CPUExecutionProvider",) and cpu.faiss_gpus == 0
    assert cpu.describe()["faiss"] == "cpu"


@pytest.fixture
def faiss_claiming_a_gpu(monkeypatch):
    """FAISS made to report one GPU; yields the runtime module, whose GPU search check tests set."""
    runtime.faiss_gpu_search_runs.cache_clear()
    monkeypatch.setattr(faiss, "get_num_gpus", lambda: 1)
    monkeypatch.setattr(faiss, "StandardGpuResources", object, raising=False)
    yield runtime
    runtime.faiss_gpu_search_runs.cache_clear()


@pytest.mark.parametrize("probe, reason", [
    # what faiss-gpu-cu12 does on an H100: a C++ assertion aborts the process (seen on a lent H100)
    ("import os, sys; print('CUDA error 209 no kernel image', file=sys.stderr); os.abort()", "CUDA error 209"),
    ("raise RuntimeError('no CUDA-capable device is detected')", "RuntimeError: no CUDA-capable device"),
    ("import sys; sys.exit(3)", "exit status 3"),
])
def test_a_gpu_faiss_cannot_search_on_falls_back_to_the_cpu(faiss_claiming_a_gpu, monkeypatch, caplog, probe,
                                                            reason):
    monkeypatch.setattr(faiss_claiming_a_gpu, "FAISS_GPU_PROBE", probe)
    assert detect_runtime(use_gpu=True).faiss_gpus == 0
    assert f"FAISS sees a GPU but cannot search on it ({reason}" in caplog.text
    faiss_claiming_a_gpu.faiss_gpu_search_runs.cache_clear()
    monkeypatch.setattr(faiss_claiming_a_gpu, "FAISS_GPU_PROBE", "pass")
    assert detect_runtime(use_gpu=True).faiss_gpus == 1


@pytest.fixture
def relu_graph(tmp_path):
    """A one-node ONNX graph, x float32 [batch, 4] -> relu(x), as the bundle's graphs take."""
    from onnx import TensorProto, helper, save

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "relu", [x], [y])
    path = tmp_path / "relu.onnx"
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


class PretendCudaSession(ort.InferenceSession):
    """A CPU session that reports the CUDA provider when asked for it, and fails its runs with
    ``error`` (None: runs normally), as a GPU build does whose kernels do not run on the device."""

    error: Exception | None = None

    def __init__(self, path, sess_options=None, providers=None):
        self.asked_for_cuda = CUDA_PROVIDER in (providers or [])
        super().__init__(path, sess_options=sess_options, providers=[CPU_PROVIDER])

    def get_providers(self):
        return [CUDA_PROVIDER, CPU_PROVIDER] if self.asked_for_cuda else super().get_providers()

    def run(self, *args, **kwargs):
        if self.asked_for_cuda and self.error is not None:
            raise self.error
        return super().run(*args, **kwargs)


CUDA_RUNTIME = Runtime(onnx_providers=(CUDA_PROVIDER, CPU_PROVIDER), faiss_gpus=0)


def test_a_cuda_session_that_cannot_run_falls_back_to_the_cpu(relu_graph, monkeypatch, caplog):
    monkeypatch.setattr(PretendCudaSession, "error", RuntimeError("CUDA failure 209: no kernel image is available"))
    monkeypatch.setattr(ort, "InferenceSession", PretendCudaSession)
    session = onnx_session(relu_graph, CUDA_RUNTIME)
    assert runtime.session_device(session) == "cpu"
    assert "could not use CUDAExecutionProvider (CUDA failure 209: no kernel image" in caplog.text
    x = np.array([[-1.0, 2.0, -3.0, 4.0]], np.float32)
    assert session.run(None, {"x": x})[0].tolist() == [[0.0, 2.0, 0.0, 4.0]]


def test_a_cuda_session_that_runs_is_kept(relu_graph, monkeypatch, caplog):
    monkeypatch.setattr(ort, "InferenceSession", PretendCudaSession)
    session = onnx_session(relu_graph, CUDA_RUNTIME)
    assert runtime.session_device(session) == "cuda" and "could not use" not in caplog.text


def test_a_cuda_session_that_cannot_start_falls_back_to_the_cpu(relu_graph, monkeypatch, caplog):
    real_session = ort.InferenceSession

    def refuse_cuda(path, sess_options=None, providers=None):
        if CUDA_PROVIDER in providers:
            raise RuntimeError("CUDA driver version is insufficient for CUDA runtime version")
        return real_session(path, sess_options=sess_options, providers=providers)

    monkeypatch.setattr(ort, "InferenceSession", refuse_cuda)
    session = onnx_session(relu_graph, CUDA_RUNTIME)
    assert runtime.session_device(session) == "cpu" and "CUDA driver version is insufficient" in caplog.text


def test_a_cpu_session_that_cannot_start_raises(tmp_path):
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a graph")
    with pytest.raises(Exception, match="broken.onnx|Protobuf|parse"):
        onnx_session(broken, Runtime(onnx_providers=(CPU_PROVIDER,), faiss_gpus=0))
