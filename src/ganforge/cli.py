"""The ``ganforge`` command line: ``train``, ``sample``, ``interpolate``, ``project``, ``eval``,
``export``, ``compare``, ``report``, ``evaluator train``, ``presets`` and ``data fetch``."""

from __future__ import annotations

import argparse
import difflib
import json
import math
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path
from typing import NoReturn

from ganforge.config import (
    DEVICES,
    KINDS,
    MAX_SAMPLES,
    MAX_SEED,
    SETTING_GROUPS,
    SETTINGS,
    TrainConfig,
    build_config,
    settings,
)
from ganforge.data import check_dataset_name, fetchable_datasets
from ganforge.errors import GanforgeError, TrainingStopped
from ganforge.eval.projection import DEFAULT_STARTS, DEFAULT_STEPS
from ganforge.exporting import FORMATS
from ganforge.files import atomic_write_text, read_json
from ganforge.presets import PRESETS
from ganforge.version import __version__

#: The fields no flag sets: the preset (``--preset``) and its description.
NOT_FLAGS = {name for name, declared in SETTINGS.items() if declared.group is None}
TRUST_HELP = (
    "a run of user-defined networks (--architecture module:callable): import and run that "
    "module to rebuild them"
)


class _Parser(argparse.ArgumentParser):
    """Reports a usage mistake in one line instead of a usage block."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per declared setting (:data:`ganforge.config.SETTINGS`), in one argument group
    per settings group. Every default is ``None``, so that a flag not given leaves the preset's,
    the file's or the resumed run's value."""
    for group, about in SETTING_GROUPS.items():
        arguments = parser.add_argument_group(group, about)
        for declared in settings(group):
            help_text = declared.help_line().replace("%", "%%")  # argparse formats help with %
            if declared.kind == "bool":
                action = argparse.BooleanOptionalAction
                arguments.add_argument(declared.flag, action=action, default=None, help=help_text)
            else:
                arguments.add_argument(
                    declared.flag,
                    type=KINDS[declared.kind],
                    default=None,
                    help=help_text,
                    metavar=declared.metavar,
                )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="ganforge", description=__doc__)
    parser.add_argument("--version", action="version", version=f"ganforge {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    train = commands.add_parser(
        "train",
        help="train a GAN from a preset",
        description="Train a GAN (or a VAE). Settings come from the preset, then the --config "
        "file, then the flags; every setting is listed in docs/reference/train-settings.md.",
    )
    run = train.add_argument_group("run", "where the settings come from, and how to run")
    run.add_argument("--preset", metavar="NAME", help=f"one of: {', '.join(PRESETS)} (default gan)")
    run.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="TOML or YAML file of settings (the flags' names with _ for -)",
    )
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.add_argument(
        "--resume",
        type=Path,
        metavar="RUN",
        help="continue RUN from its newest checkpoint, exactly; only flags that change how "
        "long or how watched it runs may be given",
    )
    run.add_argument(
        "--trust-code", action="store_true", help=f"with --resume or --init-from: {TRUST_HELP}"
    )
    _add_config_flags(train)

    sample = commands.add_parser("sample", help="draw images from a trained run")
    sample.add_argument("run", type=Path, help="a run folder or a checkpoint file")
    sample.add_argument("--num", type=int, default=64, help="how many images (default 64)")
    sample.add_argument("--out", type=Path, help="write the images as uint8 .npz (key 'images')")
    sample.add_argument("--grid", type=Path, help="write the images as a PNG grid")
    sample.add_argument("--seed", type=int, default=0, help="noise seed (default 0)")
    sample.add_argument(
        "--truncation",
        type=float,
        default=1.0,
        metavar="PSI",
        help="draw the noise from [-PSI, PSI] instead of [-1, 1]: fewer odd images, less "
        "variety (default 1: off)",
    )
    sample.add_argument(
        "--class",
        dest="label",
        type=int,
        metavar="K",
        help="a class-conditional run: draw only class K (e.g. 7 for the digit 7)",
    )
    sample.add_argument(
        "--per-class-grid",
        action="store_true",
        help="a class-conditional run: the grid has one row per class (--num per row)",
    )
    sample.add_argument("--device", default="cpu", choices=DEVICES, help="default cpu")
    sample.add_argument("--trust-code", action="store_true", help=TRUST_HELP)

    interpolate = commands.add_parser(
        "interpolate",
        help="walk the latent space between random noise pairs, or between two latents that "
        "ganforge project found",
    )
    interpolate.add_argument("run", type=Path, help="a run folder or a checkpoint file")
    interpolate.add_argument("--steps", type=int, default=10, help="points per walk (default 10)")
    interpolate.add_argument("--rows", type=int, default=8, help="walks (default 8)")
    interpolate.add_argument(
        "--mode", choices=("linear", "slerp"), default="slerp", help="default slerp"
    )
    interpolate.add_argument("--seed", type=int, default=0, help="noise seed (default 0)")
    interpolate.add_argument(
        "--grid", type=Path, help="PNG of the walks, one per row (default RUN/interpolation.png)"
    )
    interpolate.add_argument(
        "--gif", type=Path, help="the walks as a looping GIF (default RUN/interpolation.gif)"
    )
    interpolate.add_argument(
        "--latents",
        type=Path,
        metavar="NPZ",
        help="walk once, between two latents of this file of 'ganforge project' (a conditional "
        "run draws the first half in --from's class, the rest in --to's)",
    )
    interpolate.add_argument(
        "--from", dest="start", type=int, default=0, metavar="I", help="with --latents (default 0)"
    )
    interpolate.add_argument(
        "--to", dest="end", type=int, default=1, metavar="J", help="with --latents (default 1)"
    )
    interpolate.add_argument("--device", default="cpu", choices=DEVICES, help="default cpu")
    interpolate.add_argument("--trust-code", action="store_true", help=TRUST_HELP)

    projecting = commands.add_parser(
        "project",
        help="find the latents whose images a run draws closest to given images",
        description="For each image, Adam on the generator's noise from several random starts "
        "(a conditional run tries every class) minimises the pixels' squared error plus the "
        "distance in the run's evaluator features. Writes OUT/reconstructions.png (each image "
        "beside its projection), OUT/latents.npz (for 'ganforge interpolate --latents') and "
        "OUT/distances.json.",
    )
    projecting.add_argument("run", type=Path, help="a run folder or a checkpoint file")
    projecting.add_argument(
        "images", type=Path, nargs="+", help="PNG or JPEG files, or folders of them"
    )
    projecting.add_argument("--out", type=Path, required=True, help="the folder to write")
    projecting.add_argument(
        "--steps", type=int, default=DEFAULT_STEPS, help=f"Adam steps (default {DEFAULT_STEPS})"
    )
    projecting.add_argument(
        "--starts",
        type=int,
        default=DEFAULT_STARTS,
        help=f"random starts per image (and class) (default {DEFAULT_STARTS})",
    )
    projecting.add_argument("--seed", type=int, default=0, help="the starts' seed (default 0)")
    projecting.add_argument("--quiet", action="store_true", help="no progress bar")
    projecting.add_argument("--device", default="cpu", choices=DEVICES, help="default cpu")
    projecting.add_argument("--trust-code", action="store_true", help=TRUST_HELP)

    evaluate = commands.add_parser("eval", help="score a run or a file of samples")
    evaluate.add_argument("source", type=Path, help="a run folder, a checkpoint or a samples .npz")
    evaluate.add_argument(
        "--num", type=int, help="samples to score (default 10000; 5000 with --evaluator inception)"
    )
    evaluate.add_argument("--json", action="store_true", help="print one JSON object")
    evaluate.add_argument("--dataset", help="the data to compare with (default: the run's; mnist)")
    evaluate.add_argument(
        "--evaluator",
        type=Path,
        metavar="FILE|inception",
        help="your own evaluator file, or inception: FID/KID in the FID Inception network's "
        "features, comparable with papers (slow on a CPU: it runs at 299×299)",
    )
    evaluate.add_argument(
        "--inception-weights",
        type=Path,
        metavar="FILE",
        help="its weights (default: torch-fidelity's weights-inception-2015-12-05-6726825d.pth "
        "in torch hub's checkpoints folder, downloaded if missing)",
    )
    evaluate.add_argument("--seed", type=int, help="noise and subset seed (default: the run's)")
    evaluate.add_argument(
        "--prdc-num",
        type=int,
        default=5000,
        metavar="N",
        help="points per side for precision/recall/density/coverage",
    )
    evaluate.add_argument("--data-root", metavar="PATH", help="where datasets live")
    evaluate.add_argument(
        "--inversion",
        type=int,
        default=0,
        metavar="N",
        help="also project N training and N held-out images into the generator and compare "
        "their reconstruction distances, a memorisation check (slow: off by default)",
    )
    evaluate.add_argument("--trust-code", action="store_true", help=TRUST_HELP)

    export = commands.add_parser("export", help="write a run's generator for use without PyTorch")
    export.add_argument("run", type=Path, help="a run folder or a checkpoint file")
    export.add_argument("--format", choices=FORMATS, default="onnx", help="default onnx")
    export.add_argument("--out", type=Path, required=True, help="the file to write (G.onnx)")
    export.add_argument("--trust-code", action="store_true", help=TRUST_HELP)

    evaluator = commands.add_parser("evaluator", help="the classifiers that metrics use")
    evaluator_commands = evaluator.add_subparsers(
        dest="evaluator_command", required=True, parser_class=_Parser
    )
    evaluator_train = evaluator_commands.add_parser("train", help="train an evaluator")
    evaluator_train.add_argument(
        "--dataset",
        required=True,
        help="a labelled dataset: mnist, fashion-mnist, emoji, … or folder:PATH (its "
        "sub-folders are the classes)",
    )
    evaluator_train.add_argument(
        "--out", type=Path, help="where to save it (default: evaluators/<dataset>.pt)"
    )
    evaluator_train.add_argument("--epochs", type=int, default=8, help="default 8")
    evaluator_train.add_argument("--seed", type=int, default=0, help="default 0")
    evaluator_train.add_argument("--data-root", metavar="PATH", help="where datasets live")
    evaluator_train.add_argument(
        "--manifest",
        type=Path,
        metavar="FILE",
        help="also record the file's sha256 in this manifest.json",
    )

    compare = commands.add_parser("compare", help="a Markdown table and a chart of runs")
    compare.add_argument("runs", type=Path, nargs="+", help="run folders")
    compare.add_argument(
        "--chart",
        type=Path,
        default=Path("compare.png"),
        help="bar chart PNG to write (default compare.png)",
    )
    compare.add_argument(
        "--num",
        type=int,
        default=10_000,
        help="samples per run for runs not yet evaluated (default 10000)",
    )
    compare.add_argument("--trust-code", action="store_true", help=TRUST_HELP)
    compare.add_argument(
        "--time-chart",
        type=Path,
        metavar="PNG",
        help="also draw FID against training seconds (log-log), one line per run",
    )

    report = commands.add_parser("report", help="rebuild a run's report.html")
    report.add_argument("run", type=Path, help="a run folder")

    presets = commands.add_parser("presets", help="list the presets and their settings")

    data = commands.add_parser("data", help="dataset utilities")
    data_commands = data.add_subparsers(dest="data_command", required=True, parser_class=_Parser)
    fetch = data_commands.add_parser("fetch", help="make a dataset available offline")
    fetch.add_argument("dataset", help=" or ".join(fetchable_datasets()))
    fetch.add_argument("--data-root", help="where datasets live")
    fetch.add_argument("--download", action="store_true", help="allow the original mirrors")
    # Each command's own parser reports the arguments it does not know (see main).
    leaves = (
        train,
        sample,
        interpolate,
        projecting,
        evaluate,
        export,
        evaluator_train,
        compare,
        report,
        presets,
        fetch,
    )
    for leaf in leaves:
        leaf.set_defaults(leaf_parser=leaf)
    return parser


def _number(value) -> str:
    return "n/a" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def _run_train(args: argparse.Namespace) -> None:
    from ganforge.console import Console
    from ganforge.training import open_resume, train

    overrides = {
        f.name: getattr(args, f.name) for f in fields(TrainConfig) if f.name not in NOT_FLAGS
    }
    resume = None
    if args.resume is None:
        config = build_config(args.preset, args.config, overrides)
    else:
        given = [
            flag
            for flag, value in (("--preset", args.preset), ("--config", args.config))
            if value is not None
        ] + (["--out"] if args.out is not None else [])
        if given:
            raise GanforgeError(
                f"--resume continues RUN with its own config and folder; {', '.join(given)} "
                "cannot be given with it"
            )
        resume = open_resume(args.resume, overrides, trust_code=args.trust_code)
        config = resume.config
    summary = train(config, Console(quiet=args.quiet), resume=resume, trust_code=args.trust_code)
    if summary is None:  # a torchrun process other than rank 0: rank 0 reports
        return
    run = summary.run_dir
    print(summary.line())
    print(f"  grids: {run / 'samples'} (final: {run / 'samples' / 'final.png'})")
    print(f"  curves: {run / 'loss_curve.png'}, log: {run / 'metrics.jsonl'}")
    print(f"  checkpoints: {run / 'checkpoints'}")
    if (run / "eval.json").is_file():
        result = json.loads((run / "eval.json").read_text())
        scores = result["samples"]
        shown = ", ".join(
            f"{label} {_number(scores.get(key))}"
            for key, label in (
                ("fid", "FID"),
                ("precision", "precision"),
                ("recall", "recall"),
                ("classes_covered", "classes ≥ 2%"),
            )
        )
        print(f"  scores ({result['num']} samples, evaluator {result['evaluator']}): {shown}")
    print(f"  report: {run / 'report.html'}")


def _run_sample(args: argparse.Namespace) -> None:
    import torch

    from ganforge.api import load_run
    from ganforge.image_files import save_grid, save_npz

    if args.out is None and args.grid is None:
        raise GanforgeError("nothing to write: give --out FILE.npz, --grid FILE.png or both")
    _check_count("--num", args.num)
    _check_seed(args.seed)
    for path, suffix in ((args.out, ".npz"), (args.grid, ".png")):
        if path is not None and path.suffix != suffix:
            raise GanforgeError(f"{path} must end in {suffix}")
        if path is not None:
            _check_parent_folder(path)
    run = load_run(args.run, args.device, trust_code=args.trust_code)  # as api.sample does
    classes = run.classes
    if (args.label is not None or args.per_class_grid) and not classes:
        raise GanforgeError(
            f"{args.run} is not class-conditional: --class and --per-class-grid need a run "
            "trained with --conditioning"
        )
    if args.label is not None and not 0 <= args.label < classes:
        raise GanforgeError(f"--class must be from 0 to {classes - 1}, got {args.label}")
    num, labels = args.num, None
    if args.label is not None:
        labels = torch.full((num,), args.label)
    elif args.per_class_grid:
        num = args.num * classes
        labels = torch.arange(classes).repeat_interleave(args.num)
    images = run.sample(num, seed=args.seed, truncation=args.truncation, labels=labels)
    if args.out is not None:
        save_npz(images, args.out)
        print(f"wrote {num} images to {args.out}")
    if args.grid is not None:
        try:
            save_grid(images, args.grid, nrow=args.num if args.per_class_grid else None)
        except OSError as exc:
            raise GanforgeError(f"cannot write {args.grid}: {exc.strerror or exc}") from None
        print(f"wrote a grid of {num} images to {args.grid}")


def _run_interpolate(args: argparse.Namespace) -> None:
    import torch

    from ganforge.api import load_run
    from ganforge.image_files import image_grid, save_gif, save_grid
    from ganforge.nets import sample_noise
    from ganforge.sampling import generate_from, interpolate

    for flag, value, low, high in (
        ("--steps", args.steps, 2, 1000),
        ("--rows", args.rows, 1, 1000),
    ):
        if not low <= value <= high:
            raise GanforgeError(f"{flag} must be from {low} to {high}, got {value}")
    _check_seed(args.seed)
    folder = args.run if args.run.is_dir() else args.run.parent.parent
    grid, gif = args.grid or folder / "interpolation.png", args.gif or folder / "interpolation.gif"
    for path, suffix in ((grid, ".png"), (gif, ".gif")):
        if path.suffix != suffix:
            raise GanforgeError(f"{path} must end in {suffix}")
        _check_parent_folder(path)
    run = load_run(args.run, args.device, trust_code=args.trust_code)
    if args.latents is not None:  # one walk, between two projected images
        images = run.walk(args.latents, args.start, args.end, steps=args.steps, mode=args.mode)
        try:
            save_grid(images, grid, nrow=args.steps)
        except OSError as exc:
            raise GanforgeError(f"cannot write {grid}: {exc.strerror or exc}") from None
        frames = [image_grid(image[None], nrow=1) for image in images]
        save_gif(frames + frames[-2:0:-1], gif)
        print(
            f"wrote a {args.mode} walk of {args.steps} steps from latent {args.start} to "
            f"{args.end} of {args.latents}: {grid}, {gif}"
        )
        return
    config = run.config
    rng = torch.Generator().manual_seed(args.seed)
    ends = sample_noise(2 * args.rows, config.noise_dim, distribution=config.noise, generator=rng)
    walks = interpolate(ends[: args.rows], ends[args.rows :], args.steps, args.mode)
    classes = run.classes  # a conditional walk keeps its row's class
    labels = (torch.arange(args.rows) % classes).repeat_interleave(args.steps) if classes else None
    # The walks one after another, each row's steps in a row of the grid.
    images = generate_from(run.generator, walks.flatten(0, 1), labels, device=run.device)
    try:
        save_grid(images, grid, nrow=args.steps)
    except OSError as exc:
        raise GanforgeError(f"cannot write {grid}: {exc.strerror or exc}") from None
    by_step = images.unflatten(0, (args.rows, args.steps)).transpose(0, 1)
    columns = math.isqrt(args.rows - 1) + 1
    frames = [image_grid(step, nrow=columns) for step in by_step]
    save_gif(frames + frames[-2:0:-1], gif)  # there and back, so the loop has no jump
    print(f"wrote {args.rows} {args.mode} walks of {args.steps} steps: {grid}, {gif}")


def _run_project(args: argparse.Namespace) -> None:
    import torch

    from ganforge.config import image_shape
    from ganforge.console import Console
    from ganforge.eval.projection import load_projector, read_images, save_latents
    from ganforge.image_files import save_grid

    for flag, value, high in (("--steps", args.steps, 100_000), ("--starts", args.starts, 1000)):
        if not 1 <= value <= high:
            raise GanforgeError(f"{flag} must be from 1 to {high}, got {value}")
    _check_seed(args.seed)
    projector = load_projector(args.run, args.device, trust_code=args.trust_code)
    config = projector.config
    images, names = read_images(args.images, image_shape(config), config.background)
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise GanforgeError(f"cannot make {args.out}: {exc.strerror or exc}") from None
    started = time.perf_counter()
    found = projector.project(
        images, steps=args.steps, starts=args.starts, seed=args.seed, console=Console(args.quiet)
    )
    seconds = time.perf_counter() - started
    # Each real image beside its projection, up to 4 pairs a row.
    pairs = torch.stack([images, found.images], 1).flatten(0, 1)
    save_grid(pairs, args.out / "reconstructions.png", nrow=2 * min(4, len(images)))
    save_latents(args.out / "latents.npz", found, names)
    per_image = [
        {
            "file": name,
            "distance": round(found.distance[i].item(), 6),
            "pixel": round(found.pixel[i].item(), 6),
            **({} if found.feature is None else {"feature": round(found.feature[i].item(), 6)}),
            **({} if found.labels is None else {"label": int(found.labels[i])}),
        }
        for i, name in enumerate(names)
    ]
    distances = {
        "run": str(args.run),
        "space": projector.space,
        "steps": args.steps,
        "starts": args.starts,
        "seed": args.seed,
        "mean_distance": round(found.distance.mean().item(), 6),
        "seconds_per_image": round(seconds / len(names), 3),
        "images": per_image,
    }
    atomic_write_text(args.out / "distances.json", json.dumps(distances, indent=2) + "\n")
    print(
        f"projected {len(names)} images ({projector.space}): mean distance "
        f"{distances['mean_distance']:.4g}, {distances['seconds_per_image']:.2f} s per image; "
        f"wrote {args.out / 'reconstructions.png'}, latents.npz, distances.json"
    )
    if len(names) >= 2:
        print(
            f"  walk between the first two: ganforge interpolate {args.run} --latents "
            f"{args.out / 'latents.npz'} --from 0 --to 1"
        )


PRESET_KEYS = (
    "architecture",
    "loss",
    "init",
    "dataset",
    "epochs",
    "batch_size",
    "optimizer",
    "lr",
    "beta1",
    "beta2",
    "noise_dim",
    "sample_every",
)
#: Shown only where a preset turns them on.
PRESET_OPTIONS = (
    "n_critic",
    "gp_weight",
    "r1_gamma",
    "weight_clip",
    "spectral_norm",
    "ema",
    "conditioning",
)


def _run_presets(args: argparse.Namespace) -> None:
    defaults = TrainConfig().to_dict()
    for name, preset in PRESETS.items():
        config = build_config(name).to_dict()
        shown = [*PRESET_KEYS, *(k for k in PRESET_OPTIONS if config[k] != defaults[k])]
        print(f"{name}: {preset['description']}")
        print("  " + ", ".join(f"{key}={config[key]}" for key in shown))


def _check_count(flag: str, value: int, minimum: int = 1) -> None:
    if not minimum <= value <= MAX_SAMPLES:
        raise GanforgeError(f"{flag} must be from {minimum} to {MAX_SAMPLES:,}, got {value}")


def _check_seed(value: int | None) -> None:
    if value is not None and not 0 <= value <= MAX_SEED:
        raise GanforgeError(f"--seed must be from 0 to {MAX_SEED}, got {value}")


def _check_parent_folder(path: Path) -> None:
    """An output file's folder must exist (and the file must not be a folder)."""
    if path.is_dir():
        raise GanforgeError(f"{path} is a folder; give a file name")
    if not path.parent.is_dir():
        raise GanforgeError(f"folder {path.parent} does not exist")


def _run_eval(args: argparse.Namespace) -> None:
    from ganforge.console import Console
    from ganforge.eval import format_table, save_run_evaluation, score_source
    from ganforge.eval.scoring import NEAREST_GRID
    from ganforge.report import build_report

    if args.num is not None:
        _check_count("--num", args.num)
    _check_count("--prdc-num", args.prdc_num)
    _check_count("--inversion", args.inversion, minimum=0)
    _check_seed(args.seed)
    if args.dataset is not None:
        check_dataset_name(args.dataset)

    result = score_source(
        args.source,
        num=args.num,
        dataset=args.dataset,
        evaluator_path=args.evaluator,
        seed=args.seed,
        prdc_num=args.prdc_num,
        data_root=args.data_root,
        trust_code=args.trust_code,
        nearest_grid=args.source / NEAREST_GRID if args.source.is_dir() else None,
        inception_weights=args.inception_weights,
        console=Console(),
        inversion=args.inversion,
    )
    if args.source.is_dir():  # a run folder keeps its scores and shows them in its report
        save_run_evaluation(args.source, result)
        build_report(args.source)
    print(json.dumps(result, indent=2) if args.json else format_table(result))


def _run_export(args: argparse.Namespace) -> None:
    from ganforge.exporting import export_onnx

    if args.out.suffix != ".onnx":
        raise GanforgeError(f"{args.out} must end in .onnx")
    _check_parent_folder(args.out)
    path = export_onnx(args.run, args.out, trust_code=args.trust_code)
    print(f"wrote {path}: the generator as ONNX (inputs noise[, labels]; output images)")


def _run_evaluator_train(args: argparse.Namespace) -> None:
    from ganforge.eval import train_evaluator

    if args.epochs < 1:
        raise GanforgeError(f"--epochs must be at least 1, got {args.epochs}")
    _check_seed(args.seed)
    check_dataset_name(args.dataset)
    out = args.out or Path("evaluators") / f"{args.dataset}.pt"
    if args.out is not None:
        _check_parent_folder(out)
    manifest = {}
    if args.manifest:  # checked before the training it would record
        _check_parent_folder(args.manifest)
        manifest = read_json(args.manifest) if args.manifest.is_file() else {}
        if not isinstance(manifest, dict):
            raise GanforgeError(f"{args.manifest} must hold a JSON object")
    evaluator = train_evaluator(
        args.dataset, out, epochs=args.epochs, seed=args.seed, data_root=args.data_root
    )
    print(f"wrote {out}: {evaluator.name}, test accuracy {evaluator.test_accuracy:.4f}")
    if args.manifest:
        manifest[args.dataset] = {
            "file": out.name,
            "sha256": evaluator.sha256,
            "test_accuracy": round(evaluator.test_accuracy, 4),
            "command": f"ganforge evaluator train --dataset {args.dataset} "
            f"--epochs {args.epochs} --seed {args.seed}",
        }
        atomic_write_text(args.manifest, json.dumps(manifest, indent=2) + "\n")
        print(f"recorded its sha256 in {args.manifest}")


def _run_compare(args: argparse.Namespace) -> None:
    from ganforge.report import compare_runs

    for run in args.runs:
        if not (run / "config.json").is_file() or not (run / "summary.json").is_file():
            raise GanforgeError(f"{run} is not a finished ganforge run folder")
        read_json(run / "config.json")  # every run readable before any is evaluated
        read_json(run / "summary.json")
    if args.chart.suffix != ".png":
        raise GanforgeError(f"--chart {args.chart} must end in .png")
    _check_parent_folder(args.chart)
    _check_count("--num", args.num)
    time_chart = args.time_chart
    if time_chart is not None:
        if time_chart.suffix != ".png":
            raise GanforgeError(f"--time-chart {time_chart} must end in .png")
        _check_parent_folder(time_chart)
    table = compare_runs(
        args.runs, args.chart, num=args.num, trust_code=args.trust_code, time_chart=time_chart
    )
    print(table)
    print(f"\nchart: {args.chart}")
    if time_chart is not None and time_chart.is_file():
        print(f"FID against training time: {time_chart}")


def _run_report(args: argparse.Namespace) -> None:
    from ganforge.report import build_report

    if not (args.run / "config.json").is_file():
        raise GanforgeError(f"{args.run} is not a ganforge run folder (no config.json)")
    print(f"wrote {build_report(args.run)}")


def _run_data_fetch(args: argparse.Namespace) -> None:
    from ganforge.data import fetch_dataset, resolve_data_root

    folder = fetch_dataset(args.dataset, resolve_data_root(args.data_root), args.download)
    print(f"{args.dataset}: files in {folder}")


def script() -> NoReturn:
    """The ``ganforge`` console script and ``python -m ganforge``: :func:`main` on the command
    line, then exit with its status (a torchrun worker through
    :func:`~ganforge.training.distributed.leave_worker_process`)."""
    exit_code = main()
    if "TORCHELASTIC_RUN_ID" in os.environ:  # is_torchelastic_launched(), without torch
        from ganforge.training.distributed import leave_worker_process

        leave_worker_process(exit_code)
    raise SystemExit(exit_code)


def main(argv: Sequence[str] | None = None) -> int:
    """The ``ganforge`` command on ``argv`` (the command line when ``None``); returns the exit
    status, so that tests and scripts can call it."""
    args, unknown = build_parser().parse_known_args(argv)
    if unknown:
        leaf = args.leaf_parser
        flags = [option for action in leaf._actions for option in action.option_strings]
        close = (
            difflib.get_close_matches(unknown[0], flags, n=1, cutoff=0.7)
            if unknown[0][:2] == "--"
            else []
        )
        hint = f"; did you mean {close[0]}?" if close else ""
        leaf.error(f"unrecognized arguments: {' '.join(unknown)}{hint}")
    handlers = {
        "train": _run_train,
        "sample": _run_sample,
        "interpolate": _run_interpolate,
        "project": _run_project,
        "eval": _run_eval,
        "export": _run_export,
        "evaluator": _run_evaluator_train,
        "compare": _run_compare,
        "report": _run_report,
        "presets": _run_presets,
        "data": _run_data_fetch,
    }
    try:
        handlers[args.command](args)
    except TrainingStopped as exc:
        if str(exc):  # torchrun's other ranks stop silently: rank 0 says why
            print(f"ganforge: {exc}", file=sys.stderr)
        return exc.exit_code
    except GanforgeError as exc:
        for line in str(exc).splitlines():
            print(f"ganforge: error: {line}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("ganforge: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `ganforge ... | head`: the reader has gone, as it meant to
        sys.stderr.close()
        return 141
    return 0
