"""``ganforge eval``: score a run, or a file of samples, against a dataset's held-out test split,
beside two reference points: real training images (the floor) and uniform noise (the ceiling)."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ganforge.config import TrainConfig
from ganforge.console import SILENT, Console
from ganforge.data import (
    evaluator_for,
    load_dataset,
    resolve_classes,
    resolve_data_root,
    to_uint8,
)
from ganforge.data.images import DEFAULT_BACKGROUND
from ganforge.errors import GanforgeError
from ganforge.eval.classifier import Evaluator, load_evaluator
from ganforge.eval.inception import DEFAULT_NUM as INCEPTION_NUM
from ganforge.eval.inception import INCEPTION, score_inception
from ganforge.eval.metrics import (
    METRICS_VERSION,
    MIN_POINTS,
    ReferenceSet,
    all_scores,
    at_reference_size,
    feature_scores,
    kth_neighbour_distances,
    nearest_distances,
    nearest_neighbours,
    precision_recall_density_coverage,
)
from ganforge.eval.projection import INVERSION_GRID, inversion_check
from ganforge.files import atomic_write_text
from ganforge.image_files import save_grid
from ganforge.sampling import balanced_labels, generate, load_generator


def npz_images(path: Path) -> torch.Tensor:
    """uint8 images ``(N, C, H, W)`` from an ``.npz`` whose key ``images`` holds ``N×H×W`` or
    ``N×H×W×C`` uint8 values (floats in ``[0, 1]`` are accepted and rounded)."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            if "images" not in archive:
                raise GanforgeError(f"{path} has no array named 'images' (has: {list(archive)})")
            array = archive["images"]
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        if isinstance(exc, FileNotFoundError):
            raise GanforgeError(f"samples file not found: {path}") from None
        raise GanforgeError(f"{path} is not a readable .npz file ({exc})") from None
    if array.ndim == 3:
        array = array[..., None]
    if array.ndim != 4 or array.shape[-1] not in (1, 3):
        raise GanforgeError(f"{path}: images have shape {array.shape}; expected N×H×W or N×H×W×C")
    if array.shape[0] == 0:
        raise GanforgeError(f"{path} holds no images")
    if array.dtype.kind == "f":
        if not np.isfinite(array).all():
            raise GanforgeError(f"{path}: images contain NaN or infinite values")
        if array.min() < 0 or array.max() > 1:
            raise GanforgeError(f"{path}: float images must lie in [0, 1] (uint8 is preferred)")
        array = np.rint(array * 255)
    elif array.dtype.kind not in "iu" or array.min() < 0 or array.max() > 255:
        raise GanforgeError(f"{path}: images must be uint8, got {array.dtype}")
    return torch.from_numpy(array.astype(np.uint8)).permute(0, 3, 1, 2).contiguous()


def load_samples(
    source: str | os.PathLike,
    num: int,
    seed: int | None = None,
    trust_code: bool = False,
    generator: nn.Module | None = None,
) -> tuple[torch.Tensor, TrainConfig | None, int]:
    """Images to score: ``(uint8 (N, C, H, W), the run's settings or None, the seed used)``.

    ``source`` is an ``.npz`` of samples, or a run folder / checkpoint to draw ``num`` from with
    noise of ``seed`` (default: the run's own seed, as its end-of-training evaluation used).
    """
    path = Path(source)
    if path.suffix == ".npz":
        return npz_images(path)[:num], None, 0 if seed is None else seed
    generator, config = load_generator(path, trust_code=trust_code, generator=generator)
    seed = config.seed if seed is None else seed
    images = to_uint8(generate(generator, num, config.noise_dim, seed=seed, noise=config.noise))
    return images, config, seed


def reference_set(
    dataset: str,
    data_root: str | None = None,
    train_size: int | None = None,
    evaluator_path: str | os.PathLike | None = None,
    train_subset: str = "first",
    background: str = DEFAULT_BACKGROUND,
    classes: str | None = None,
) -> ReferenceSet:
    """The test split of ``dataset`` embedded by its evaluator (the shipped one, or the file
    at ``evaluator_path``), with the training images (``train_size`` of them, drawn as
    ``train_subset`` says) for the memorisation check, transparent images composited onto
    ``background`` as the run's were; what is computed from the training images is kept under
    the data root's ``eval-cache`` (keyed by the images themselves); ``classes``: both of the
    run's ``--classes`` only."""
    evaluator = load_evaluator(dataset, evaluator_path)
    # Both at the evaluator's shape: the features and the nearest-image views are computed there.
    shape = evaluator.image_shape
    test = load_dataset(
        dataset,
        "test",
        data_root=data_root,
        background=background,
        image_shape=shape,
        classes=classes,
    ).images
    train = load_dataset(
        dataset,
        "train",
        data_root=data_root,
        image_shape=shape,
        train_size=train_size,
        train_subset=train_subset,
        background=background,
        classes=classes,
    ).images
    cache = resolve_data_root(data_root) / "eval-cache"
    return ReferenceSet(evaluator, test, train, cache_dir=cache)


def _check_fits(images: torch.Tensor, evaluator: Evaluator, reference: torch.Tensor) -> None:
    if images.shape[1:] != reference.shape[1:]:
        want = "×".join(map(str, reference.shape[1:]))
        got = "×".join(map(str, images.shape[1:]))
        raise GanforgeError(
            f"samples are {got} images; the {evaluator.dataset} evaluator and test set are {want}"
        )


#: The seed of the reference points' random draws (the floor's training images, the ceiling's
#: noise, their KID subsets), whatever the samples' seed.
REFERENCE_SEED = 0


def _reference_points(
    reference: ReferenceSet, train: torch.Tensor, num: int, seed: int, prdc_num: int, root: Path
) -> dict[str, dict[str, Any]]:
    """Scores of real training images (the floor) and uniform noise (the ceiling), cached on
    disk, since they depend on nothing but the metric code, evaluator, data and sizes
    (``train``: the reference's training images).

    The floor's images are training images: their features are the reference's, picked by
    index rather than embedded again, and each one's nearest training image is itself, at
    distance 0 (where a search in float32 finds rounding noise up to 1e-2, of median 0)."""
    evaluator = reference.evaluator
    # The digest names the training images: two subsets of one size have different floors.
    key = (
        f"v{METRICS_VERSION}-{evaluator.name}-{train.shape[0]}-{num}-{prdc_num}-{seed}"
        f"-{reference.digest[:12]}"
    )
    cache = root / "eval-cache" / f"{key}.json"
    try:
        return json.loads(cache.read_text())
    except (OSError, ValueError):
        pass  # not cached yet, or a damaged cache file: compute it again
    generator = torch.Generator().manual_seed(seed)
    pick = torch.randperm(train.shape[0], generator=generator)[:num]
    noise = torch.randint(0, 256, (num, *train.shape[1:]), generator=generator, dtype=torch.uint8)
    real = reference.train_features[pick]
    floor = feature_scores(
        reference,
        real,
        evaluator.probabilities(real),
        prdc_num=prdc_num,
        seed=seed,
        train_distances=torch.zeros(real.shape[0]),
    )
    points = {
        "floor": floor,
        "ceiling": all_scores(reference, noise, prdc_num=prdc_num, seed=seed),
    }
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(cache, json.dumps(points))
    except OSError:
        pass  # a cache we cannot write only costs time
    return points


def _pixel_scores(images: torch.Tensor, train: torch.Tensor, prdc_num: int) -> dict[str, Any]:
    """What needs no classifier, on raw pixels against the training images (a folder has no
    held-out split): PRDC, and memorisation as the samples' median distance to the nearest
    training image over the training images' median distance to their nearest other one."""
    n = min(prdc_num, images.shape[0], train.shape[0])
    pick = torch.randperm(train.shape[0], generator=torch.Generator().manual_seed(0))[:n]
    real = train[pick].reshape(n, -1).double() / 255
    fake = images[:n].reshape(n, -1).double() / 255
    scores: dict[str, Any] = {"num": int(images.shape[0]), "space": "pixels"}
    scores.update(precision_recall_density_coverage(real, fake))
    sample_nn = nearest_distances(fake, real).median()
    train_nn = kth_neighbour_distances(real, 1).median()
    scores["memorisation_ratio"] = (sample_nn / train_nn).item() if train_nn > 0 else None
    return scores


#: Samples scored by default with an evaluator classifier (Inception: ``INCEPTION_NUM``).
DEFAULT_NUM = 10_000


def score_source(
    source: str | os.PathLike,
    *,
    num: int | None = None,
    dataset: str | None = None,
    evaluator_path: str | os.PathLike | None = None,
    seed: int | None = None,
    prdc_num: int = 5000,
    data_root: str | None = None,
    trust_code: bool = False,
    generator: nn.Module | None = None,
    nearest_grid: Path | None = None,
    reference: ReferenceSet | None = None,
    inception_weights: str | os.PathLike | None = None,
    console: Console = SILENT,
    inversion: int = 0,
) -> dict[str, Any]:
    """Score ``num`` samples of a run (or an ``.npz``) with every metric, plus floor and ceiling,
    and find the nearest training images of the first few samples (``result["nearest"]``;
    ``nearest_grid``: also draw them there, each sample beside its nearest training images).

    ``dataset`` defaults to the run's dataset (``mnist`` for a bare ``.npz``); ``seed`` to the
    run's seed. The training images (for memorisation and the floor) are the run's own training
    split. Returns a dict that :func:`format_table` prints and ``--json`` dumps.
    ``trust_code`` and ``generator``: see :func:`ganforge.sampling.load_generator`.
    ``reference``: the dataset's test and training images as a training run embedded them
    (:func:`reference_set`), so that they are not embedded again.

    ``evaluator_path="inception"``: FID and KID in the FID Inception network's features
    instead, with their protocol (:func:`ganforge.eval.inception.score_inception`; the weights
    file ``inception_weights`` or torch-fidelity's cached one; ``console`` shows the progress).
    ``num`` defaults to :data:`DEFAULT_NUM`, or ``INCEPTION_NUM`` (5,000) with Inception.

    ``inversion`` N > 0 (a run only): also the memorisation check by inversion
    (:func:`ganforge.eval.projection.inversion_check`, ``result["inversion"]``) on N training
    and N held-out images, drawn beside ``nearest_grid`` as :data:`INVERSION_GRID`.
    """
    inception = evaluator_path is not None and str(evaluator_path) == INCEPTION
    if inception_weights is not None and not inception:
        raise GanforgeError("--inception-weights is for --evaluator inception")
    if num is None:
        num = INCEPTION_NUM if inception else DEFAULT_NUM
    if num < MIN_POINTS or prdc_num < MIN_POINTS:
        raise GanforgeError(f"--num and --prdc-num must be at least {MIN_POINTS}")
    images, config, seed = load_samples(source, num, seed, trust_code, generator)
    if images.shape[0] < MIN_POINTS:
        raise GanforgeError(f"{source} holds {images.shape[0]} images; scoring needs {MIN_POINTS}")
    dataset = dataset or (config.dataset if config else "mnist")
    root = data_root or (config.data_root if config else None)
    train_size = config.train_size if config else None
    train_subset = config.train_subset if config else "first"
    background = config.background if config else DEFAULT_BACKGROUND
    class_selection = config.classes if config else None
    result: dict[str, Any] = {
        "source": str(source),
        "dataset": dataset,
        "num": int(images.shape[0]),
        "seed": seed,
    }
    if inversion:
        if config is None:
            raise GanforgeError(f"--inversion projects into a run's generator; {source} is not one")
        grid = None if nearest_grid is None else nearest_grid.with_name(INVERSION_GRID)
        result["inversion"] = inversion_check(
            source,
            inversion,
            trust_code=trust_code,
            generator=generator,
            grid=grid,
            data_root=data_root,
            console=console,
        )
    if inception:
        scores = score_inception(
            images,
            classes=class_selection,
            dataset=dataset,
            data_root=root,
            background=background,
            weights=inception_weights,
            console=console,
        )
        return {**result, **scores}
    if evaluator_path is None and evaluator_for(dataset) is None:
        train = load_dataset(
            dataset,
            "train",
            image_shape=tuple(images.shape[1:]),
            background=background,
            classes=class_selection,
        )
        if len(train) < MIN_POINTS:
            raise GanforgeError(
                f"{dataset} holds {len(train)} images; scoring against it needs {MIN_POINTS}"
            )
        result["evaluator"] = None
        result["note"] = (
            f"no shipped evaluator fits {dataset}; scores are on raw pixels against the "
            "training images"
        )
        result["samples"] = _pixel_scores(images, train.images, prdc_num)
        result["nearest"] = _nearest(images, train.images, None, nearest_grid)
        return result

    if reference is None:
        reference = reference_set(
            dataset, root, train_size, evaluator_path, train_subset, background, class_selection
        )
    evaluator, test, train = reference.evaluator, reference.test_images, reference.train_images
    resized = at_reference_size(images, test)
    if resized is not images:
        size = "×".join(map(str, images.shape[2:]))
        result["note"] = (
            f"{size} samples resized to the evaluator's {test.shape[2]}×{test.shape[3]}"
        )
        images = resized
    _check_fits(images, evaluator, test)
    result.update(evaluator=evaluator.name, evaluator_test_accuracy=evaluator.test_accuracy)
    classes = config.num_classes if config and config.conditioning != "none" else 0
    # A conditional run's samples were asked for every class in turn (balanced_labels).
    labels = balanced_labels(images.shape[0], classes) if classes else None
    if labels is not None and class_selection:  # the evaluator names the dataset's classes
        shape = tuple(test.shape[1:])
        names = load_dataset(dataset, "test", data_root=root, image_shape=shape).classes
        labels = torch.tensor(resolve_classes(names, class_selection, dataset))[labels]
    result["samples"] = all_scores(reference, images, prdc_num=prdc_num, seed=seed, labels=labels)
    result["nearest"] = _nearest(images, train, reference, nearest_grid)
    # The reference points do not depend on the run: one seed for all, computed once.
    points = _reference_points(
        reference, train, images.shape[0], REFERENCE_SEED, prdc_num, resolve_data_root(root)
    )
    result.update(points)
    return result


#: A run folder's picture of samples beside their nearest training images.
NEAREST_GRID = "nearest.png"
#: How many samples are shown beside their nearest training images, and how many of those.
NEAREST_SHOWN, NEAREST_K = 8, 4


def _nearest(
    images: torch.Tensor,
    train: torch.Tensor,
    reference: ReferenceSet | None,
    grid: Path | None,
) -> dict[str, Any]:
    """The :data:`NEAREST_K` nearest training images of the first :data:`NEAREST_SHOWN`
    samples: in the evaluator's feature space (``reference``), or in pixel space without one
    (a folder data set). A sample that copies a training image sits at a distance near 0."""
    shown = images[:NEAREST_SHOWN]
    if reference is not None:
        space, queries = "features", reference.evaluator.embed(shown)[0]
        candidates = reference.train_features
    else:
        space, queries = "pixels", shown.reshape(len(shown), -1).double() / 255
        candidates = train.reshape(len(train), -1).double() / 255
    distances, indices = nearest_neighbours(queries, candidates, NEAREST_K)
    if grid is not None:
        rows = [
            torch.cat([sample[None], train[index]])
            for sample, index in zip(shown, indices, strict=True)
        ]
        save_grid(torch.cat(rows).float() / 127.5 - 1, grid, nrow=1 + indices.shape[1])
    return {
        "space": space,
        "samples": [
            {
                "sample": i,
                "train_indices": idx.tolist(),
                "distances": [round(d, 4) for d in dist.tolist()],
            }
            for i, (idx, dist) in enumerate(zip(indices, distances, strict=True))
        ],
    }


def inversion_line(inverted: dict[str, Any]) -> str:
    """The inversion check of a result in one line."""
    return (
        f"inversion ({inverted['num']} training and {inverted['num']} held-out images, "
        f"{inverted['space']}): mean distance {inverted['train_distance']:.4g} (train) / "
        f"{inverted['test_distance']:.4g} (held out) = ratio {inverted['ratio']:.3f}"
    )


def save_run_evaluation(run_dir: Path, result: dict[str, Any]) -> None:
    """Write ``eval.json`` into a run folder (its report shows it once rebuilt)."""
    atomic_write_text(run_dir / "eval.json", json.dumps(result, indent=2) + "\n")


def score_run(
    run_dir: Path,
    *,
    num: int = 10_000,
    seed: int | None = None,
    trust_code: bool = False,
    generator: nn.Module | None = None,
    reference: ReferenceSet | None = None,
) -> dict[str, Any]:
    """:func:`score_source` a run folder's newest checkpoint and keep the result in the folder
    (``eval.json``)."""
    result = score_source(
        run_dir,
        num=num,
        seed=seed,
        trust_code=trust_code,
        generator=generator,
        nearest_grid=Path(run_dir) / NEAREST_GRID,
        reference=reference,
    )
    save_run_evaluation(run_dir, result)
    return result


ROWS = [
    ("fid", "FID ↓", "{:.2f}"),
    ("kid", "KID ↓", "{:.4f}"),
    ("inception_score", "Inception Score ↑", "{:.2f}"),
    ("precision", "precision ↑", "{:.3f}"),
    ("recall", "recall ↑", "{:.3f}"),
    ("density", "density ↑", "{:.3f}"),
    ("coverage", "coverage ↑", "{:.3f}"),
    ("classes_covered", "classes ≥ 2%", "{}"),
    ("conditional_accuracy", "conditional accuracy ↑", "{:.4f}"),
    ("kl_uniform", "KL(classes ‖ uniform) ↓", "{:.4f}"),
    ("memorisation_ratio", "memorisation ratio", "{:.3f}"),
]


def metric_rows(result: dict[str, Any]) -> tuple[list[str], list[tuple[str, list[str]]]]:
    """Column titles, and one ``(label, formatted cells)`` row per metric the samples have:
    the samples, then the floor and ceiling where the result holds them."""
    columns = [("samples", "samples")]
    if "floor" in result:
        columns += [("floor", "real train (floor)"), ("ceiling", "uniform noise (ceiling)")]
    rows = []
    for key, label, fmt in ROWS:
        if key in result["samples"]:
            values = [result[column].get(key) for column, _ in columns]
            rows.append((label, ["n/a" if v is None else fmt.format(v) for v in values]))
    return [title for _, title in columns], rows


def format_table(result: dict[str, Any]) -> str:
    """A readable table: one row per metric; samples, floor and ceiling side by side."""
    titles, rows = metric_rows(result)
    header = f"{'metric':<26}" + "".join(f"{title:>26}" for title in titles)
    lines = [
        f"evaluator: {result['evaluator'] or 'none'}  dataset: {result['dataset']}  "
        f"samples: {result['num']}  source: {result['source']}",
    ]
    if result.get("note"):
        lines.append(f"note: {result['note']}")
    lines += [header, "-" * len(header)]
    for label, cells in rows:
        lines.append(f"{label:<26}" + "".join(f"{c:>26}" for c in cells))
    histogram = result["samples"].get("class_histogram")
    if histogram:
        lines.append("class histogram: " + "  ".join(f"{k}:{v:.3f}" for k, v in histogram.items()))
    nearest = result.get("nearest")
    if nearest:
        closest = [sample["distances"][0] for sample in nearest["samples"]]
        lines.append(
            f"nearest training image of {len(closest)} samples ({nearest['space']} space): "
            "distances " + ", ".join(f"{d:.3g}" for d in closest)
        )
    inverted = result.get("inversion")
    if inverted:
        lines.append(inversion_line(inverted))
    return "\n".join(lines)
