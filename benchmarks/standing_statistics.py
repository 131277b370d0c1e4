"""Standing BatchNorm statistics: does re-estimating a generator's BatchNorm statistics for its
final weights score better than the running statistics gathered while the weights changed?

Not a test. For each run folder, the newest checkpoint's generator (G's own weights, not an
EMA's) draws the same 10,000 samples twice, with its running statistics and with statistics
re-estimated by ``ganforge.sampling.estimate_batchnorm_statistics`` (1,024 draws of other
noise), and both are scored on the shipped evaluator::

    python benchmarks/standing_statistics.py runs/ttq/dcgan-s0 runs/ttq/dcgan-s1 ... \\
        --out benchmarks/standing-statistics.json
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
from pathlib import Path

import torch

from ganforge.checkpoint_file import checkpoint_config, load_checkpoint, load_weights
from ganforge.config import image_shape
from ganforge.data import to_uint8
from ganforge.eval import all_scores, reference_set
from ganforge.nets import build_generator
from ganforge.sampling import estimate_batchnorm_statistics, generate

NUM = 10_000
KEYS = ("fid", "precision", "recall", "classes_covered")


def scores_of(run: Path, reference) -> dict:
    checkpoint = load_checkpoint(run)
    config = checkpoint_config(checkpoint)
    running = build_generator(
        config.architecture,
        config.noise_dim,
        config.conditioning,
        config.num_classes,
        image_shape(config),
        width=config.g_width,
    )
    load_weights(running, checkpoint["generator"], "generator", str(run))
    running.eval()
    standing = copy.deepcopy(running)
    estimate_batchnorm_statistics(standing, config.noise_dim, noise=config.noise)
    result = {"run": str(run), "seed": config.seed, "step": checkpoint["step"]}
    for name, generator in (("running", running), ("standing", standing)):
        with torch.inference_mode():
            images = generate(
                generator, NUM, config.noise_dim, seed=config.seed, noise=config.noise
            )
        scores = all_scores(reference, to_uint8(images), seed=config.seed)
        result[name] = {key: scores[key] for key in KEYS} | {
            "class_histogram": scores["class_histogram"]
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    reference = reference_set("mnist")
    results = [scores_of(run, reference) for run in args.runs]
    print("| run | step | FID running → standing | precision | recall |")
    print("|---|---|---|---|---|")
    for r in results:
        a, b = r["running"], r["standing"]
        print(
            f"| {Path(r['run']).name} | {r['step']} | {a['fid']:.2f} → {b['fid']:.2f} | "
            f"{a['precision']:.3f} → {b['precision']:.3f} | {a['recall']:.3f} → {b['recall']:.3f} |"
        )
    deltas = [r["standing"]["fid"] - r["running"]["fid"] for r in results]
    if len(deltas) > 1:
        print(f"FID change: mean {statistics.mean(deltas):+.2f}, sd {statistics.stdev(deltas):.2f}")
    if args.out:
        args.out.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
