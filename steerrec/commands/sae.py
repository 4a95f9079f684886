"""``steerrec sae``: train a sparse autoencoder on a bundle's embeddings and add it to the bundle."""

from __future__ import annotations

import argparse

from .common import parse_assignments

TRAIN_KEYS = ("steps", "batch_size", "lr", "beta", "pairs_per_step", "hard_candidates", "dead_after", "anchor_facet",
              "anchor_weight")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sae", help="train an SAE on a bundle's user and item embeddings",
                       description="Train a sparse autoencoder (Matryoshka by default) with the prediction-aware "
                                   "loss, print its fidelity, and write sae_encoder.onnx, sae_decoder.onnx, "
                                   "sae_weights.npz and sae_config.json into the bundle.")
    p.add_argument("--bundle", required=True)
    p.add_argument("--arch", default="matryoshka", choices=["matryoshka", "batchtopk", "topk", "relu", "mp"],
                   help="SAE architecture (training/sae/; default matryoshka)")
    p.add_argument("--n-latents", type=int, help="dictionary size")
    p.add_argument("--k", type=int, help="mean active latents per row (TopK family)")
    p.add_argument("--prefixes", help="Matryoshka prefix sizes, comma-separated, ending at n_latents")
    p.add_argument("--steps", type=int, help="optimizer steps")
    p.add_argument("--beta", type=float, help="weight of the prediction-aware loss (0: off)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="any SAE or training option")
    p.add_argument("--sweep", metavar="beta=V1,V2,...",
                   help="train one SAE per beta and report the fidelity/sparsity trade-off (table + PNG); "
                        "the bundle is left unchanged")
    p.add_argument("--plot", help="PNG path for --sweep (default: <bundle>/sae_beta_sweep.png)")
    p.add_argument("--device", default="auto")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(handler=run)


def split_options(args: argparse.Namespace) -> tuple[dict, dict]:
    options = parse_assignments(args.set)
    for key in ("n_latents", "k", "steps", "beta"):
        if getattr(args, key) is not None:
            options[key] = getattr(args, key)
    if args.prefixes:
        options["prefixes"] = tuple(int(x) for x in args.prefixes.split(","))
    train = {k: options.pop(k) for k in list(options) if k in TRAIN_KEYS}
    train |= {"device": args.device, "progress": not args.quiet}
    return options, train


def run(args: argparse.Namespace) -> int:
    from steerrec.table import markdown_table
    from steerrec.training.sae.pipeline import run_sae, summary_rows
    from steerrec.training.sae.trainer import SAETrainConfig

    sae_options, train_options = split_options(args)
    if args.sweep:
        from steerrec.training.sae.sweep import run_sweep

        run_sweep(args.bundle, args.arch, sae_options, train_options, args.sweep, args.plot)
        return 0
    result = run_sae(args.bundle, args.arch, sae_options, SAETrainConfig(**train_options))
    print(markdown_table(["metric", "value"], summary_rows(result.metrics)))
    print(f"SAE written into {args.bundle}")
    return 0
