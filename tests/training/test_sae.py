"""Sparse autoencoders: the sparsity rules keep what they promise, Matryoshka's loss is the mean
of its prefixes' losses, the prediction-aware losses are exact and reach the SAE through a frozen
NCF, and the exported ONNX graphs compute what torch computes."""

import numpy as np
import onnxruntime as ort
import pytest
import torch
from steerrec.training.models import NCFConfig
from steerrec.training.models.ncf import NCF
from steerrec.training.sae import SAES, build_sae, make_sae_config
from steerrec.training.sae.base import SAEOutput
from steerrec.training.sae.batchtopk import batch_threshold
from steerrec.training.sae.onnx_export import export_sae
from steerrec.training.sae.prediction import prediction_loss
from steerrec.training.sae.trainer import normalization_stats

D = 12


def make(arch: str, seed: int = 0, **options):
    gen = torch.Generator().manual_seed(seed)
    rows = torch.randn(300, D, generator=gen) * 2 + 1
    mean, scale = normalization_stats(rows)
    cfg = make_sae_config(arch, n_latents=64, **options)
    sae = build_sae(arch, cfg, D, mean, scale)
    with torch.no_grad():  # random encoder weights, so codes are not a function of the init alone
        for p in sae.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=gen))
        sae.normalize_decoder()
    return sae, rows


def test_unknown_architecture_and_option_are_named():
    with pytest.raises(ValueError, match="unknown SAE architecture 'nope'; choose one of: matryoshka"):
        make_sae_config("nope")
    with pytest.raises(ValueError, match=r"SAE topk has no option\(s\) \['prefixes'\]"):
        make_sae_config("topk", prefixes=(8, 16))
    with pytest.raises(ValueError, match="the last prefix \\(32\\) must equal n_latents \\(64\\)"):
        make_sae_config("matryoshka", n_latents=64, prefixes=(16, 32))
    with pytest.raises(ValueError, match="strictly increasing"):
        make_sae_config("matryoshka", n_latents=64, prefixes=(32, 16, 64))


def test_default_matryoshka_prefixes_halve_down_to_64():
    assert make_sae_config("matryoshka", n_latents=1024).prefixes == (64, 128, 256, 512, 1024)
    assert make_sae_config("matryoshka", n_latents=100).prefixes == (100,)


def test_topk_keeps_exactly_k_per_row():
    sae, rows = make("topk", k=5)
    z = sae.encode(rows)
    assert ((z > 0).sum(1) <= 5).all() and (z >= 0).all()
    pre = sae.pre_activations(sae.normalize(rows))
    top5 = pre.topk(5, dim=1).values
    torch.testing.assert_close(z.topk(5, dim=1).values, top5)


def test_batch_threshold_keeps_k_times_batch_values():
    gen = torch.Generator().manual_seed(1)
    small = torch.rand(100, 64, generator=gen)
    assert int((small >= batch_threshold(small, 7)).sum()) == 700
    big = torch.rand(4096, 512, generator=gen)  # above the exact limit: a strided sample
    kept = int((big >= batch_threshold(big, 16)).sum())
    assert abs(kept - 16 * 4096) / (16 * 4096) < 0.02


def test_calibrated_threshold_gives_mean_l0_k_on_the_training_rows():
    sae, rows = make("batchtopk", k=6)
    sae.calibrate(sae.normalize(rows))
    z = sae.encode(rows)
    assert int((z > 0).sum()) == 6 * len(rows) - 1  # the k*N-th value itself is the strict threshold
    assert sae.extra_state()["threshold"] == float(sae.threshold)


def test_matryoshka_loss_is_the_mean_of_the_prefix_reconstructions():
    sae, rows = make("matryoshka", k=8, prefixes=(8, 16, 32, 64))
    x = sae.normalize(rows[:50])
    with torch.no_grad():
        out = sae.forward_train(x)
        expected = np.mean([float(((out.z_BF[:, :p] @ sae.W_dec[:p] + sae.b_dec - x) ** 2).mean())
                            for p in (8, 16, 32, 64)])
        assert float(sae.reconstruction_loss(x, out)) == pytest.approx(expected, rel=1e-6)
    assert sae.prefix_sizes() == [8, 16, 32, 64]


def test_matryoshka_prefix_weights_weigh_each_prefix_reconstruction():
    sae, rows = make("matryoshka", k=8, prefixes=(8, 16, 32, 64), prefix_weights=[4, 1, 0, 1])
    x = sae.normalize(rows[:50])
    with torch.no_grad():
        out = sae.forward_train(x)
        errors = [float(((out.z_BF[:, :p] @ sae.W_dec[:p] + sae.b_dec - x) ** 2).mean()) for p in (8, 16, 32, 64)]
        expected = (4 * errors[0] + errors[1] + errors[3]) / 6
        assert float(sae.reconstruction_loss(x, out)) == pytest.approx(expected, rel=1e-6)
    assert sae.cfg.prefix_weights == (4.0, 1.0, 0.0, 1.0)
    with pytest.raises(ValueError, match="one weight per prefix"):
        make_sae_config("matryoshka", n_latents=64, prefixes=(16, 64), prefix_weights=(1, 1, 1))
    with pytest.raises(ValueError, match="must be >= 0 with a positive sum"):
        make_sae_config("matryoshka", n_latents=64, prefixes=(16, 64), prefix_weights=(2, -1))


def test_mp_steps_are_nested_into_prefixes_and_match_a_plain_pursuit():
    sae, rows = make("mp", k=4, prefixes=(16, 32, 64))
    assert sae.step_limits() == [16, 16, 32, 64]  # step t draws from prefix t * levels // k
    with torch.no_grad():
        x = sae.normalize(rows[:20])
        z = sae.encode(rows[:20])
        residual = (x - sae.b_dec).clone()
        w_dec = sae.W_dec.clone()
    expected = torch.zeros_like(z)
    for limit in [16, 16, 32, 64]:  # one row at a time, written out
        for r in range(len(x)):
            corr = residual[r] @ w_dec[:limit].T
            j = int(corr.argmax())
            value = max(float(corr[j]), 0.0)
            expected[r, j] += value
            residual[r] -= value * w_dec[j]
    torch.testing.assert_close(z, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("nested", [True, False])
def test_mp_training_pursuit_equals_the_inference_pursuit_with_its_gradients(nested):
    sae, rows = make("mp", k=5, prefixes=(16, 32, 64), nested=nested)
    x = sae.normalize(rows[:300])
    grads = {}
    for mode in ("train", "eval"):
        getattr(sae, mode)()
        sae.zero_grad()
        z, residual = sae._pursuit(x)
        (z.pow(2).sum() + residual.pow(3).sum()).backward()
        grads[mode] = (z.detach(), residual.detach(), sae.W_dec.grad.clone(), sae.b_dec.grad.clone())
    for a, b in zip(grads["train"], grads["eval"]):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_mp_gram_cache_follows_the_decoder_weights():
    sae, rows = make("mp", k=4, prefixes=(16, 32, 64))
    first = sae._gram()
    assert sae._gram() is first  # one matrix per version of the weights
    with torch.no_grad():
        sae.W_dec.mul_(2.0)
    sae.normalize_decoder()
    torch.testing.assert_close(sae._gram(), sae.W_dec.detach() @ sae.W_dec.detach().T)
    opt = torch.optim.SGD(sae.parameters(), lr=0.5)
    sae.forward_train(sae.normalize(rows[:64])).x_hat_BD.pow(2).sum().backward()
    opt.step()
    torch.testing.assert_close(sae._gram(), sae.W_dec.detach() @ sae.W_dec.detach().T)


def test_relu_kl_term_is_zero_at_the_target_rate():
    sae, _ = make("relu", target_rate=0.25)
    z = torch.full((10, 64), float(np.arctanh(0.25)))
    out = SAEOutput(z, torch.zeros(10, D), z)
    losses = sae.sparsity_losses(torch.zeros(10, D), out, torch.zeros(64))
    assert float(losses["kl"]) == pytest.approx(0.0, abs=1e-6)
    assert float(losses["l1"]) == pytest.approx(1e-3 * 64 * np.arctanh(0.25), rel=1e-5)


class DotModel:
    """Score = <u, v>, like MF without biases."""

    def score_pairs(self, u, v, idx):
        return (u * v).sum(-1)


def test_prediction_loss_is_the_normalised_squared_score_gap():
    gen = torch.Generator().manual_seed(0)
    u, v = torch.randn(6, 4, generator=gen), torch.randn(6, 4, generator=gen)
    u_hat, v_hat = u + 0.1, v * 0.9
    expected = float((((u_hat * v_hat).sum(1) - (u * v).sum(1)) ** 2).mean()) / 2.0
    assert float(prediction_loss(DotModel(), u, v, u_hat, v_hat, torch.arange(6), 2.0)) == pytest.approx(expected)
    assert float(prediction_loss(DotModel(), u, v, u, v, torch.arange(6), 2.0)) == 0.0


def test_prediction_loss_backpropagates_through_a_frozen_ncf():
    model = NCF(5, 7, NCFConfig(dim=D, hidden=(8, 4))).frozen()
    sae, _ = make("matryoshka", k=4, prefixes=(16, 64))
    users, items = model.user_embeddings()[[0, 1, 2]], model.item_embeddings()[[3, 4, 5]]
    idx = torch.tensor([3, 4, 5])
    loss = prediction_loss(model, users, items, sae(users), sae(items), idx, 1.0)
    loss.backward()
    assert float(loss.detach()) > 0
    assert sae.W_dec.grad is not None and float(sae.W_dec.grad.abs().sum()) > 0
    assert sae.W_enc.grad is not None and float(sae.W_enc.grad.abs().sum()) > 0
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("arch", ["matryoshka", "topk", "mp"])
def test_onnx_graphs_agree_with_torch(tmp_path, arch):
    options = {"k": 6} | ({"prefixes": (16, 32, 64)} if arch != "topk" else {})
    sae, rows = make(arch, **options)
    if hasattr(sae, "threshold"):
        sae.calibrate(sae.normalize(rows))
    sae.eval()
    export_sae(sae, tmp_path / "enc.onnx", tmp_path / "dec.onnx")
    enc = ort.InferenceSession(str(tmp_path / "enc.onnx"), providers=["CPUExecutionProvider"])
    dec = ort.InferenceSession(str(tmp_path / "dec.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in enc.get_inputs()] == ["x"] and [o.name for o in enc.get_outputs()] == ["z"]
    assert [i.name for i in dec.get_inputs()] == ["z"] and [o.name for o in dec.get_outputs()] == ["x_hat"]
    gen = torch.Generator().manual_seed(3)
    for x in (rows[:1], rows[:257], torch.randn(33, D, generator=gen) * 3):  # batch sizes other than the example's
        with torch.no_grad():
            z_ref, x_hat_ref = sae.encode(x), sae(x)
        z = enc.run(None, {"x": x.numpy().astype(np.float32)})[0]
        x_hat = dec.run(None, {"z": z})[0]
        np.testing.assert_allclose(z, z_ref.numpy(), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(x_hat, x_hat_ref.numpy(), rtol=1e-5, atol=1e-5)


def test_every_architecture_is_registered_with_its_name():
    for name, (_, cls) in SAES.items():
        assert cls.arch == name
