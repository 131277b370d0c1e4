"""The evaluator: a small classifier per dataset whose features and class probabilities the
sample-quality metrics are computed in.

Inception-v3 weights cannot be downloaded here and fit 28×28 digits poorly, so ganforge trains
its own network per dataset (``ganforge evaluator train``) and ships the weights inside the
package, each with its sha256 in ``evaluators/manifest.json``. Scores computed with different
evaluators are not comparable; every score ganforge reports names its evaluator as
``<dataset>@<first 12 hex digits of the sha256>``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ganforge.checkpoint_file import atomic_torch_save
from ganforge.data import (
    dataset_spec,
    evaluator_for,
    evaluator_image_shape,
    load_dataset,
    preprocess_images,
)
from ganforge.errors import GanforgeError
from ganforge.files import file_sha256
from ganforge.version import __version__

NUM_FEATURES = 128
#: Images per forward pass when embedding: small enough to stay in the CPU's caches (250 ran
#: about 1.5× as fast as 1000 on the project's 2-core CPU).
EMBED_BATCH = 250
SHIPPED_DIR = "evaluators"
FORMAT = "ganforge-evaluator-1"
#: A dataset without a test split (a folder) tests its evaluator on every fifth image of each
#: class, held out of training (as ``emoji``'s test split is cut).
HELD_OUT_EVERY = 5


class EvaluatorNet(nn.Module):
    """Three conv blocks and a 128-d feature layer.

    conv 32 → pool → conv 64 → pool → conv 128 → pool (each 3×3, BatchNorm, ReLU) → FC 128
    (ReLU: the features) → dropout → FC ``num_classes`` (the logits). Input: uint8 images
    ``(N, C, S, S)`` or float images in ``[-1, 1]``, ``S = image_size`` (28 for the digits, 32
    for colour datasets).
    """

    def __init__(self, channels: int = 1, num_classes: int = 10, image_size: int = 28) -> None:
        super().__init__()
        self.image_shape = (channels, image_size, image_size)
        pooled = image_size // 8  # three 2× max-pools, each rounding down

        def block(c_in: int, c_out: int) -> list[nn.Module]:
            # Pooling before the ReLU gives the same numbers as after it (a max of ReLUs is
            # the ReLU of the max), and the ReLU then sees a quarter of the values. Neither
            # layer holds weights, so the order does not change the state_dict's keys.
            return [
                nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
                nn.BatchNorm2d(c_out),
                nn.MaxPool2d(2),
                nn.ReLU(),
            ]

        self.body = nn.Sequential(
            *block(channels, 32),
            *block(32, 64),
            *block(64, 128),
            nn.Flatten(),
            nn.Linear(128 * pooled * pooled, NUM_FEATURES),
            nn.ReLU(),
        )
        self.head = nn.Sequential(nn.Dropout(0.3), nn.Linear(NUM_FEATURES, num_classes))

    @staticmethod
    def _as_float(images: torch.Tensor) -> torch.Tensor:
        return preprocess_images(images) if images.dtype == torch.uint8 else images

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """``(N, C, S, S)`` → ``(N, 128)`` non-negative features."""
        return self.body(self._as_float(images))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``(N, C, S, S)`` → class logits ``(N, num_classes)``."""
        return self.head(self.features(images))


@dataclass
class Evaluator:
    """A loaded evaluator network with where it came from."""

    net: EvaluatorNet
    dataset: str
    sha256: str
    classes: list[str]
    test_accuracy: float | None

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """The ``(C, S, S)`` of the images it reads."""
        return self.net.image_shape

    @property
    def name(self) -> str:
        """``<dataset>@<sha256 prefix>``: printed beside every score."""
        return f"{self.dataset}@{self.sha256[:12]}"

    @torch.inference_mode()
    def embed(
        self, images: torch.Tensor, batch_size: int = EMBED_BATCH
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 images ``(N, C, S, S)`` → ``(features (N, 128), probabilities (N, classes))``."""
        features = [self.net.features(chunk) for chunk in images.split(batch_size)]
        features = torch.cat(features)
        return features, self.probabilities(features, batch_size)

    @torch.inference_mode()
    def probabilities(self, features: torch.Tensor, batch_size: int = EMBED_BATCH) -> torch.Tensor:
        """Class probabilities ``(N, classes)`` of features ``(N, 128)`` that :meth:`embed`
        computed, for images embedded before (the same numbers as from the images)."""
        return torch.cat(
            [self.net.head(chunk).softmax(dim=1) for chunk in features.split(batch_size)]
        )


def shipped_manifest() -> dict[str, Any]:
    """The manifest of evaluators shipped inside the package (dataset → file, sha256, …)."""
    manifest = resources.files("ganforge.eval") / SHIPPED_DIR / "manifest.json"
    return json.loads(manifest.read_text()) if manifest.is_file() else {}


def shipped_path(dataset: str) -> Path | None:
    entry = shipped_manifest().get(dataset)
    if entry is None:
        return None
    return Path(str(resources.files("ganforge.eval") / SHIPPED_DIR / entry["file"]))


def load_evaluator(dataset: str | None = None, path: str | Path | None = None) -> Evaluator:
    """Load the evaluator shipped for ``dataset`` (sha256-checked), or the file at ``path``.

    Raises :class:`GanforgeError` when no evaluator fits (``folder:`` datasets), when a shipped
    file's sha256 differs from the manifest (a tampered or corrupt file), or when the file is
    not an evaluator.
    """
    expected_sha = None
    if path is None:
        if dataset is None:
            raise GanforgeError("name a dataset or an --evaluator file")
        name = evaluator_for(dataset)  # the dataset table names the evaluator that scores it
        path = shipped_path(name) if name is not None else None
        if path is None:
            raise GanforgeError(
                f"no shipped evaluator fits dataset {dataset!r}; train one with "
                "'ganforge evaluator train' and pass --evaluator FILE"
            )
        expected_sha = shipped_manifest()[name]["sha256"]
    path = Path(path)
    if not path.is_file():
        raise GanforgeError(f"evaluator file not found: {path}")
    sha = file_sha256(path)
    if expected_sha is not None and sha != expected_sha:
        raise GanforgeError(
            f"evaluator {path} has sha256 {sha[:12]}…, the manifest says {expected_sha[:12]}…: "
            "the file is corrupt or was changed"
        )
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise GanforgeError(f"{path} is not a ganforge evaluator ({type(exc).__name__})") from None
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise GanforgeError(f"{path} is not a ganforge evaluator (format {FORMAT} expected)")
    # Evaluators written before colour ones read 28×28 images and did not say so.
    net = EvaluatorNet(blob["channels"], len(blob["classes"]), blob.get("image_size", 28))
    try:
        net.load_state_dict(blob["state_dict"])
    except RuntimeError:
        raise GanforgeError(f"{path}: its weights do not fit the evaluator network") from None
    # channels_last: about twice the images per second on a CPU (the scores move by ~1e-6).
    net.eval().to(memory_format=torch.channels_last)
    trained_on = blob["dataset"]
    if dataset is not None and trained_on != dataset and trained_on != evaluator_for(dataset):
        raise GanforgeError(
            f"evaluator {path} was trained on {blob['dataset']!r}, not on {dataset!r}"
        )
    return Evaluator(net, blob["dataset"], sha, list(blob["classes"]), blob.get("test_accuracy"))


# ---------------------------------------------------------------------------------------------
# Training


def random_shift(images: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Translate each image of ``(N, C, H, W)`` by its own random whole-pixel offset in
    ``[-max_shift, max_shift]`` on each axis, filling with zeros (black)."""
    n, _, h, w = images.shape
    padded = F.pad(images, (max_shift,) * 4)
    dy = torch.randint(0, 2 * max_shift + 1, (n, 1), generator=generator)
    dx = torch.randint(0, 2 * max_shift + 1, (n, 1), generator=generator)
    rows = (dy + torch.arange(h))[:, :, None]  # (N, H, 1)
    cols = (dx + torch.arange(w))[:, None, :]  # (N, 1, W)
    batch = torch.arange(n)[:, None, None]
    return padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)


@torch.inference_mode()
def accuracy(net: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    net.eval()
    correct = sum(
        (net(x).argmax(1) == y).sum().item()
        for x, y in zip(images.split(1000), labels.split(1000), strict=True)
    )
    return correct / len(labels)


def train_evaluator(
    dataset: str,
    out: Path,
    *,
    epochs: int = 8,
    batch_size: int = 128,
    lr: float = 2e-3,
    seed: int = 0,
    data_root: str | None = None,
    log=print,
) -> Evaluator:
    """Train an evaluator on all training images of ``dataset`` at its evaluator's shape
    (:func:`~ganforge.data.evaluator_image_shape`), test it on its test split (a folder: on
    every :data:`HELD_OUT_EVERY`-th image of each class, held out), and save it atomically to
    ``out``. Seeded: the same command on the same machine gives the same
    file."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    shape = evaluator_image_shape(dataset)
    train = load_dataset(
        dataset, "train", data_root=data_root, train_size=1 << 30, image_shape=shape
    )
    if dataset_spec(dataset).splits:
        test = load_dataset(dataset, "test", data_root=data_root, image_shape=shape)
    else:  # a folder: its test images are held out of its one split, as emoji's are
        train, test = (
            train.held_out(HELD_OUT_EVERY, "train"),
            train.held_out(HELD_OUT_EVERY, "test"),
        )
    if len(train) < batch_size:
        raise GanforgeError(
            f"{dataset} holds {len(train)} training images; an evaluator trains on batches of "
            f"{batch_size}"
        )
    if len(train.classes) < 2:
        raise GanforgeError(
            f"an evaluator learns to tell classes apart: {dataset} has "
            f"{len(train.classes)} (a folder's classes are its sub-folders)"
        )
    net = EvaluatorNet(shape[0], len(train.classes), shape[1])
    optimizer = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    steps_per_epoch = len(train) // batch_size
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, lr, total_steps=epochs * steps_per_epoch
    )
    start = time.perf_counter()
    for epoch in range(epochs):
        net.train()
        order = torch.randperm(len(train), generator=generator)
        for step in range(steps_per_epoch):
            index = order[step * batch_size : (step + 1) * batch_size]
            images = random_shift(train.images[index], 2, generator)
            loss = F.cross_entropy(net(images), train.labels[index], label_smoothing=0.05)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
        test_accuracy = accuracy(net, test.images, test.labels)
        log(
            f"epoch {epoch + 1}/{epochs}: test accuracy {test_accuracy:.4f} "
            f"({time.perf_counter() - start:.0f} s)"
        )
    blob = {
        "format": FORMAT,
        "dataset": dataset,
        "channels": shape[0],
        "image_size": shape[1],
        "classes": train.classes,
        "state_dict": net.state_dict(),
        "test_accuracy": test_accuracy,
        "epochs": epochs,
        "seed": seed,
        "ganforge_version": __version__,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_torch_save(blob, out)
    net.eval()
    return Evaluator(net, dataset, file_sha256(out), train.classes, test_accuracy)
