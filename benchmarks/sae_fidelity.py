"""SAE fidelity against sparsity on a bundle (ML-1M standard split by default).

Trains each configuration on the bundle's embeddings (the bundle is not modified) and prints
explained variance, L0, dead latents, top-30 RBO (p=0.9) and Kendall tau against the base model,
and the Recall@20 change, all with the same code as ``steerrec sae`` (on CUDA when present). As a
reference for what any encoder could reach with 512 atoms and the same L0, it also runs orthogonal
matching pursuit over a K-SVD dictionary (signed codes, not an SAE, not servable as one).

    python benchmarks/sae_fidelity.py --bundle bundles/ml1m [--runs default,beta0,k24,mp] [--omp 16,24]

Runs: default, beta0, batchtopk, k24, k32 (Matryoshka variants), mp (nested matching pursuit),
mp_flat (no nesting), mp2048 and mp4096 (flat, larger dictionaries; a minute per run on a GPU,
15 minutes to an hour on two CPU cores), mp2048_cpu (2048 atoms, 600 steps, 512 pairs and rows a
step: under 2 minutes on one CPU core; mp2048_cpu_k24 the same at L0 24), mp4096_lean (4096 atoms,
512 pairs and rows a step, 3000 steps: about 11 minutes on two cores). --steps applies to runs that do not set their own.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from steerrec.training.evaluate import evaluate_tops, evaluated_users, top_k_items
from steerrec.training.models import load_model
from steerrec.training.sae.pipeline import fit_and_measure, split_from_bundle
from steerrec.training.sae.trainer import SAETrainConfig

from steerrec import metrics as M
from steerrec.bundle import Bundle
from steerrec.table import markdown_table

RUNS = {  # name -> (arch, SAE options, training options)
    "default": ("matryoshka", {}, {}),
    "beta0": ("matryoshka", {}, {"beta": 0.0}),
    "batchtopk": ("batchtopk", {}, {}),
    "k24": ("matryoshka", {"k": 24}, {}),
    "k32": ("matryoshka", {"k": 32}, {}),
    "mp": ("mp", {}, {}),
    "mp_flat": ("mp", {"nested": False}, {}),
    "mp2048": ("mp", {"n_latents": 2048, "nested": False}, {}),
    "mp4096": ("mp", {"n_latents": 4096, "nested": False}, {}),
    # The 2048-atom pursuit SAE on a CPU budget: a fifth of the steps, a third of the pairs.
    "mp2048_cpu": ("mp", {"n_latents": 2048, "nested": False}, {"steps": 600, "pairs_per_step": 512, "batch_size": 512}),
    "mp2048_cpu_k24": ("mp", {"n_latents": 2048, "nested": False, "k": 24},
                       {"steps": 600, "pairs_per_step": 512, "batch_size": 512}),
    # Every fidelity target at L0 16 (about 11 minutes on two CPU cores).
    "mp4096_lean": ("mp", {"n_latents": 4096, "nested": False}, {"pairs_per_step": 512, "batch_size": 512}),
}


def omp(x_ND: torch.Tensor, dict_FD: torch.Tensor, k: int) -> torch.Tensor:
    """Orthogonal matching pursuit, all rows at once: dense codes [N, F]."""
    n = len(x_ND)
    chosen = torch.zeros(n, k, dtype=torch.long)
    residual = x_ND.clone()
    for t in range(k):
        corr = (residual @ dict_FD.T).abs()
        if t:
            corr.scatter_(1, chosen[:, :t], -1.0)
        chosen[:, t] = corr.argmax(1)
        atoms = dict_FD[chosen[:, : t + 1]]  # [N, t+1, D]
        gram = atoms @ atoms.transpose(1, 2) + 1e-9 * torch.eye(t + 1, dtype=x_ND.dtype)
        coef = torch.linalg.solve(gram, atoms @ x_ND.unsqueeze(-1)).squeeze(-1)
        residual = x_ND - (coef.unsqueeze(-1) * atoms).sum(1)
    return torch.zeros(n, len(dict_FD), dtype=x_ND.dtype).scatter_(1, chosen, coef)


def ksvd_omp(x_ND: torch.Tensor, n_atoms: int, k: int, iters: int, seed: int = 0) -> torch.Tensor:
    """Reconstruction after ``iters`` rounds of K-SVD (one power step per atom) with OMP coding."""
    gen = torch.Generator().manual_seed(seed)
    atoms = x_ND[torch.randperm(len(x_ND), generator=gen)[:n_atoms]].clone()
    atoms /= atoms.norm(dim=1, keepdim=True)
    for _ in range(iters):
        codes = omp(x_ND, atoms, k)
        residual = x_ND - codes @ atoms
        for j in range(n_atoms):
            rows = codes[:, j].nonzero().squeeze(1)
            if len(rows) == 0:  # an unused atom restarts at the worst-reconstructed row
                worst = residual.pow(2).sum(1).argmax()
                atoms[j] = residual[worst] / residual[worst].norm()
                continue
            err = residual[rows] + codes[rows, j: j + 1] * atoms[j]
            d = err.T @ (err @ atoms[j])
            d /= d.norm().clamp(min=1e-12)
            c = err @ d
            residual[rows] = err - c[:, None] * d
            atoms[j], codes[rows, j] = d, c
    return omp(x_ND, atoms, k) @ atoms


def ev(x: torch.Tensor, x_hat: torch.Tensor) -> float:
    return float(1 - (x - x_hat).pow(2).sum() / (x - x.mean(0)).pow(2).sum())


def omp_row(model, split, k: int, n_atoms: int, iters: int) -> list:
    users, items = model.user_embeddings().double(), model.item_embeddings().double()
    rows = torch.cat([users, items])
    mean = rows.mean(0)
    start = time.perf_counter()
    x_hat = ksvd_omp(rows - mean, n_atoms, k, iters) + mean
    u_hat, v_hat = x_hat[: len(users)].float(), x_hat[len(users):].float()
    everyone, exclude = np.arange(model.n_users), split.train.csr()
    base, rec = top_k_items(model, everyone, exclude, 30), top_k_items(model, everyone, exclude, 30, u_hat, v_hat)
    agree = M.list_agreement(base, rec, 0.9)
    tested = evaluated_users(split)
    r0 = evaluate_tops(base[tested], tested, split, ks=(20,))["recall@20"]
    r1 = evaluate_tops(rec[tested], tested, split, ks=(20,))["recall@20"]
    return [f"OMP/K-SVD reference k={k}", "-", float(k), ev(users, u_hat.double()), ev(items, v_hat.double()), "-",
            agree["rbo"], agree["kendall_tau"], r1 / r0 - 1, time.perf_counter() - start]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", default="bundles/ml1m")
    parser.add_argument("--runs", default="default,beta0,k24,mp", help=f"from {', '.join(RUNS)}")
    parser.add_argument("--omp", default="16,24", help="L0 values of the OMP/K-SVD reference ('' for none)")
    parser.add_argument("--omp-iters", type=int, default=6)
    parser.add_argument("--steps", type=int, default=3000)
    args = parser.parse_args()
    torch.set_num_threads(min(2, torch.get_num_threads()))
    bundle = Bundle.open(args.bundle)
    model, split = load_model(bundle), split_from_bundle(bundle)
    rows = []
    for name in [r for r in args.runs.split(",") if r]:
        if name not in RUNS:
            raise SystemExit(f"unknown run {name!r}; choose from {', '.join(RUNS)}")
        arch, sae_options, train_options = RUNS[name]
        run = fit_and_measure(model, split, arch, sae_options,
                              SAETrainConfig(**({"progress": False, "steps": args.steps} | train_options)))
        m = run.metrics
        rows.append([name, arch, m["l0"], m["ev_users"], m["ev_items"], m["dead_fraction"], m["rbo@30"],
                     m["kendall_tau@30"], m["recall@20_change"], m["train_seconds"]])
        print(markdown_table(HEADERS, rows[-1:]), flush=True)
    for k in [int(v) for v in args.omp.split(",") if v]:
        rows.append(omp_row(model, split, k, 512, args.omp_iters))
    print(f"\n{bundle.root}: {bundle.manifest.dataset.n_users} users, {bundle.manifest.dataset.n_items} items, "
          f"512 latents, beta=1 and {args.steps} steps unless named")
    print(markdown_table(HEADERS, rows))


HEADERS = ["run", "arch", "mean L0", "EV users", "EV items", "dead", "RBO@30", "tau@30", "Recall@20 change", "seconds"]

if __name__ == "__main__":
    main()
