"""``steerrec demo``: the README's main job on the embedded synthetic dataset, end to end."""

from __future__ import annotations

import argparse

# The synthetic catalogue plants 8 genres, 24 sub-genres, 6 decades and a popularity taste in 64
# dimensions: a first prefix of 16 neurons has room for the genres, the popularity neuron and most
# decades but not for every sub-genre, so the Matryoshka levels come out as a hierarchy, and 128
# latents leave few of them dead. k = 6 with 3000 steps isolates all 24 sub-genres at each of five
# seeds; k = 8 with 2000 steps, 22 to 24 (docs/sae.md).
DEMO_SAE = {"n_latents": 128, "prefixes": (16, 32, 64, 128), "k": 6}
DEMO_SAE_STEPS = 3000


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="the main job on the synthetic dataset: train, SAE, labels, report, serve",
                       description="Generate the embedded synthetic catalogue, train MF, evaluate, export a bundle, "
                                   "train the Matryoshka SAE, label its neurons, write the HTML report, then serve "
                                   "the bundle on 127.0.0.1 and print example requests (Ctrl-C stops).")
    p.add_argument("--out", default="bundles/demo", help="bundle directory (default bundles/demo)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-serve", action="store_true", help="stop after the report instead of serving")
    p.add_argument("--port", type=int, default=8000, help="port of the service (default 8000)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import time

    from steerrec.table import markdown_table
    from steerrec.training.interpret.pipeline import run_interpret
    from steerrec.training.interpret.report import write_report
    from steerrec.training.pipeline import DataSpec, run_train
    from steerrec.training.sae.pipeline import run_sae, summary_rows
    from steerrec.training.sae.trainer import SAETrainConfig

    from .interpret import summary_rows as interpret_rows
    from .report import print_eval

    steps = 4 if args.no_serve else 5
    start = time.perf_counter()
    print(f"[1/{steps}] synthetic data -> MF (ALS) -> evaluation -> bundle")
    path, metrics = run_train(DataSpec(dataset="synthetic", seed=args.seed), args.out, "mf",
                              seed=args.seed, progress=not args.quiet)
    print_eval("MF on the synthetic catalogue", metrics)

    print(f"\n[2/{steps}] Matryoshka sparse autoencoder with the prediction-aware loss")
    sae = run_sae(path, "matryoshka", dict(DEMO_SAE, seed=args.seed),
                  SAETrainConfig(steps=DEMO_SAE_STEPS, seed=args.seed, progress=not args.quiet))
    print(markdown_table(["figure", "value"], summary_rows(sae.metrics)))

    print(f"\n[3/{steps}] neuron interpretation: labels, steer slugs, concept tree")
    result = run_interpret(path)
    print(markdown_table(["figure", "value"], interpret_rows(result.summary)))

    print(f"\n[4/{steps}] report")
    report = write_report(result, path)
    print(f"report: {report}")
    print(f"\nbundle: {path}  ({time.perf_counter() - start:.1f} s to here)")
    if args.no_serve:
        return 0

    print(f"\n[5/{steps}] serving {path} on http://127.0.0.1:{args.port} (Ctrl-C stops)")
    from steerrec.cli import build_parser

    serve_args = build_parser().parse_args(["serve", "--bundle", str(path), "--port", str(args.port)])
    return serve_args.handler(serve_args)
