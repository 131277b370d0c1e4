"""Sample-quality metrics in an evaluator's feature space.

* FID and KID: torchmetrics' ``FrechetInceptionDistance`` and ``KernelInceptionDistance`` with
  the evaluator's 128-d feature layer as the custom ``feature`` module.
* Inception Score: torchmetrics' ``InceptionScore`` with the evaluator's logits.
* Precision and recall (Kynkäänniemi et al. 2019) and density and coverage (Naeem et al. 2020),
  with k nearest neighbours (k = 3) in feature space.
* Mode coverage: the histogram of the evaluator's predicted classes, the number of classes that
  hold at least 2% of the samples, and KL(histogram ‖ uniform).
* Memorisation: the median distance from each sample to its nearest training image, divided by
  the same median for held-out test images (well below 1: the generator copies training images).

:func:`all_scores` and :func:`quick_scores` take uint8 images ``(N, C, 28, 28)``; the
functions below them take feature matrices. Results are reproducible: every random subset
(KID's, IS's splits, the PRDC reference) comes from a fixed seed.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import Any

import torch

from ganforge.checkpoint_file import atomic_torch_save
from ganforge.data import resize_images
from ganforge.eval.classifier import NUM_FEATURES, Evaluator

COVERAGE_THRESHOLD = 0.02
K_NEIGHBOURS = 3
#: The fewest images the k-NN metrics can score (k neighbours besides the point itself).
MIN_POINTS = K_NEIGHBOURS + 1
#: Bump when a change alters any score, so cached floor/ceiling numbers are not reused.
METRICS_VERSION = 2
#: Images per forward pass of the evaluator (bounds activation memory), and feature vectors
#: per update of a torchmetrics metric.
CHUNK = 1000
#: Queries × references per block of distances in the nearest-neighbour searches: a 1000 × 2048
#: float32 block (8 MB) stays in the CPU's last-level cache, where the former 250 × 50,000 rows
#: (50 MB) went out to memory and back between the product and the minimum: twice as fast on
#: the project's CPU. (MKL may round a product of another shape differently, by float32 noise;
#: 10,000 samples against 50,000 training images get the same bits.)
NEAREST_QUERIES, NEAREST_REFERENCES = 1000, 2048
#: Keyword arguments for every torchmetrics metric here: scores are computed by one process.
#: A torchmetrics ``Metric`` gathers its states over the process group in ``compute()`` whenever
#: ``torch.distributed`` is initialised (torchmetrics 1.9, ``Metric`` kwargs:
#: ``sync_on_compute``, "If metric state should synchronize when ``compute`` is called. Default
#: is ``True``"; ``dist_sync_on_step`` is for ``forward()``, which is never called here). Under
#: torchrun only rank 0 evaluates, so that gather waits for ranks that are training or have
#: exited: it hung the evaluations during training and crashed the final one.
LOCAL_METRIC = {"sync_on_compute": False, "dist_sync_on_step": False}


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run a block with torch's global RNG seeded, restoring the caller's RNG afterwards."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def _row_chunks(rows: int, columns: int, budget: int = 2**22) -> int:
    """Rows per chunk so that a ``chunk × columns`` matrix holds about ``budget`` numbers
    (32 MB of float64): distance matrices are built a slice at a time, never whole."""
    return max(1, min(rows, budget // max(columns, 1)))


def kth_neighbour_distances(points: torch.Tensor, k: int) -> torch.Tensor:
    """Distance from each point ``(N, D)`` to its k-th nearest other point, ``(N,)``."""
    chunk = _row_chunks(points.shape[0], points.shape[0])
    # The 0-th nearest is the point itself (distance 0). topk's (k+1)-th value is kthvalue's
    # (the same element), found four times as fast.
    return torch.cat(
        [
            torch.cdist(rows, points).topk(k + 1, dim=1, largest=False).values[:, k]
            for rows in points.split(chunk)
        ]
    )


def precision_recall_density_coverage(
    real: torch.Tensor, fake: torch.Tensor, k: int = 3, real_radii: torch.Tensor | None = None
) -> dict[str, float]:
    """PRDC of feature sets ``real (R, D)`` and ``fake (F, D)``, in float64.

    Precision: the fraction of fake points inside some real point's k-NN ball. Recall: the
    fraction of real points inside some fake point's k-NN ball. Density: the mean number of real
    balls a fake point falls in, divided by k. Coverage: the fraction of real points whose ball
    holds at least one fake point. Balls are open (``<``), as in Naeem et al.'s code. The
    ``R × F`` distances are taken a slice of real points at a time (bounded memory).
    ``real_radii``: :func:`kth_neighbour_distances` of ``real`` ``(R,)`` when already known.
    """
    real, fake = real.double(), fake.double()
    if real_radii is None:
        real_radii = kth_neighbour_distances(real, k)
    fake_radii = kth_neighbour_distances(fake, k)
    in_some_real_ball = torch.zeros(fake.shape[0], dtype=torch.bool)
    balls_per_fake = torch.zeros(fake.shape[0], dtype=torch.float64)
    recalled, covered = [], []
    chunk = _row_chunks(real.shape[0], fake.shape[0])
    for rows, radii in zip(real.split(chunk), real_radii.split(chunk), strict=True):
        distances = torch.cdist(rows, fake)  # (chunk, F)
        inside_real = distances < radii[:, None]
        in_some_real_ball |= inside_real.any(dim=0)
        balls_per_fake += inside_real.sum(dim=0)
        recalled.append((distances < fake_radii[None, :]).any(dim=1))
        covered.append(distances.min(dim=1).values < radii)
    return {
        "precision": in_some_real_ball.double().mean().item(),
        "recall": torch.cat(recalled).double().mean().item(),
        "density": balls_per_fake.sum().item() / (k * fake.shape[0]),
        "coverage": torch.cat(covered).double().mean().item(),
    }


def class_coverage(probabilities: torch.Tensor, classes: list[str]) -> dict[str, Any]:
    """Histogram of predicted classes, classes holding ≥ 2% of samples, KL(hist ‖ uniform)."""
    predicted = probabilities.argmax(dim=1)
    counts = torch.bincount(predicted, minlength=len(classes)).double()
    histogram = counts / counts.sum()
    nonzero = histogram[histogram > 0]
    kl = (nonzero * (nonzero * len(classes)).log()).sum().item()
    return {
        "class_histogram": {
            name: round(h, 6) for name, h in zip(classes, histogram.tolist(), strict=True)
        },
        "classes_covered": int((histogram >= COVERAGE_THRESHOLD).sum().item()),
        "kl_uniform": kl,
    }


def nearest_distances(
    queries: torch.Tensor,
    references: torch.Tensor,
    chunk: int = NEAREST_QUERIES,
    block: int = NEAREST_REFERENCES,
) -> torch.Tensor:
    """Distance from each query ``(Q, D)`` to its nearest reference ``(R, D)``, ``(Q,)``.

    As ``|q|² + |r|² − 2 q·r`` in float32: twice as fast as float64 on a CPU, and the distances
    differ by about 1e-5, far below what their median is read for. The distances are taken a
    ``chunk × block`` block at a time (:data:`NEAREST_QUERIES`, :data:`NEAREST_REFERENCES`)."""
    references = references.float()
    squared_norms = references.square().sum(dim=1)[None, :]
    nearest = []
    for rows in queries.float().split(chunk):
        least = torch.full((rows.shape[0],), math.inf)
        for start in range(0, references.shape[0], block):
            part = slice(start, start + block)
            squared = torch.addmm(squared_norms[:, part], rows, references[part].T, alpha=-2)
            torch.minimum(least, squared.amin(dim=1), out=least)
        # |q|² is added after the minimum, not to every distance: rounding is monotonic, so
        # the minimum of the sums is the sum with the minimum, to the bit.
        least += rows.square().sum(dim=1)
        nearest.append(least.clamp_min(0).sqrt())
    return torch.cat(nearest)


def nearest_neighbours(
    queries: torch.Tensor, references: torch.Tensor, k: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` nearest references ``(R, D)`` of each query ``(Q, D)``: their Euclidean
    distances and indices, each ``(Q, k)``, nearest first."""
    distances = torch.cdist(queries.double(), references.double())
    found = distances.topk(min(k, references.shape[0]), dim=1, largest=False)
    return found.values, found.indices


def memorisation_ratio(fake: torch.Tensor, test: torch.Tensor, train: torch.Tensor) -> float:
    """median(nearest-train distance of samples) / median(nearest-train distance of test)."""
    fake_nn = nearest_distances(fake, train).median()
    test_nn = nearest_distances(test, train).median()
    return (fake_nn / test_nn).item()


def _update(metric, features: torch.Tensor, **kwargs) -> None:
    """``metric.update`` in chunks of :data:`CHUNK` (the chunks the features were computed in,
    so that the metric's sums are added up in the same order as from the images)."""
    for chunk in features.split(CHUNK):
        metric.update(chunk, **kwargs)


class _Given(torch.nn.Module):
    """A torchmetrics ``feature`` module for features computed beforehand: the evaluator runs
    once per image set, and FID, KID and IS (through ``head``, the evaluator's logits) all read
    its output."""

    def __init__(self, num_features: int, head: torch.nn.Module | None = None) -> None:
        super().__init__()
        self.num_features = num_features
        self.head = head if head is not None else torch.nn.Identity()

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(features)


def frechet_metric(num_features: int = NUM_FEATURES):
    """torchmetrics' FID over feature vectors ``(N, num_features)``; the real statistics
    survive ``reset()``, so one reference serves many sample sets."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    return FrechetInceptionDistance(
        feature=_Given(num_features), reset_real_features=False, **LOCAL_METRIC
    )


class ReferenceSet:
    """The held-out images that samples are compared with, embedded once.

    ``test``: uint8 test images ``(N, C, 28, 28)``; ``train``: the training images, used for the
    memorisation check and the nearest training images (may be ``None`` when neither is asked
    for). Their features are computed when first needed, and with ``cache_dir`` kept there for
    the next run on the same images and evaluator.
    """

    def __init__(
        self,
        evaluator: Evaluator,
        test: torch.Tensor,
        train: torch.Tensor | None,
        cache_dir: Path | None = None,
    ) -> None:
        self.evaluator = evaluator
        self.test_images = test
        self.train_images = train
        self.cache_dir = cache_dir
        # Cached too: every run and evaluation on a data set embeds the same test images.
        self.test_features = self._cached("test-features", lambda: evaluator.embed(test)[0])
        self.fid = frechet_metric()
        _update(self.fid, self.test_features, real=True)
        self._prdc_real: dict[tuple[int, int, int], tuple[torch.Tensor, torch.Tensor]] = {}

    @cached_property
    def digest(self) -> str:
        """sha256 hex digest of the evaluator and the training and test images: what every
        value cached on disk from this set depends on besides the metric code."""
        digest = hashlib.sha256(self.evaluator.sha256.encode())
        for images in (self.train_images, self.test_images):
            if images is not None:
                digest.update(images.numpy().tobytes())
        return digest.hexdigest()

    @cached_property
    def train_features(self) -> torch.Tensor:
        """``(N, 128)``, the training images' features (cached on disk with ``cache_dir``)."""
        if self.train_images is None:
            raise ValueError("this reference set was built without training images")
        return self._cached("train-features", lambda: self.evaluator.embed(self.train_images)[0])

    @cached_property
    def _test_nn_median(self) -> torch.Tensor:
        return self._cached(
            "test-nn-median",
            lambda: nearest_distances(self.test_features, self.train_features).median(),
        )

    def _cached(self, what: str, compute) -> torch.Tensor:
        """``compute()``, or its value kept in ``cache_dir`` for these images and evaluator."""
        if self.cache_dir is None:
            return compute()
        path = self.cache_dir / f"{what}-v{METRICS_VERSION}-{self.digest[:24]}.pt"
        with contextlib.suppress(Exception):  # missing or damaged: compute it again
            return torch.load(path, weights_only=True)
        value = compute()
        with contextlib.suppress(OSError):  # a cache we cannot write only costs time
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_torch_save(value, path)
        return value

    def frechet_distance(self, features: torch.Tensor) -> float:
        """FID of sample features ``(N, 128)`` against the test images'."""
        self.fid.reset()  # keeps the test statistics
        _update(self.fid, features, real=False)
        return self.fid.compute().item()

    def memorisation_ratio(
        self, features: torch.Tensor, distances: torch.Tensor | None = None
    ) -> float:
        """:func:`memorisation_ratio` of sample features ``(N, 128)``, the test side computed
        once; ``distances``: the samples' nearest-training-image distances ``(N,)`` when
        already known (zeros for training images: each is its own nearest)."""
        if distances is None:
            distances = nearest_distances(features, self.train_features)
        return (distances.median() / self._test_nn_median).item()

    def prdc_real(self, n: int, k: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The real side of PRDC: ``n`` test features drawn with ``seed`` ``(n, 128)``, float64
        (a random subset: the test set's first half is not like its second), and their
        :func:`kth_neighbour_distances` ``(n,)``. The samples, floor and ceiling of one
        evaluation draw the same subset, so it is computed once."""
        key = (n, k, seed)
        if key not in self._prdc_real:
            generator = torch.Generator().manual_seed(seed)
            pick = torch.randperm(self.test_features.shape[0], generator=generator)[:n]
            real = self.test_features[pick].double()
            self._prdc_real[key] = real, kth_neighbour_distances(real, k)
        return self._prdc_real[key]


def at_reference_size(images: torch.Tensor, reference_images: torch.Tensor) -> torch.Tensor:
    """uint8 ``images`` ``(N, C, h, w)`` resized (antialiased) to the reference's ``H × W`` when
    the channels agree and the size does not: a 32-pixel Fashion-MNIST run is scored by the
    28-pixel evaluator against the 28-pixel test set. Other images are returned as they are."""
    same_channels = images.shape[1] == reference_images.shape[1]
    if same_channels and images.shape[2:] != reference_images.shape[2:]:
        return resize_images(images, *reference_images.shape[2:])
    return images


def conditional_accuracy(probabilities: torch.Tensor, labels: torch.Tensor) -> float:
    """The fraction of samples asked to be class ``labels[i]`` that the evaluator classifies as
    that class (``probabilities``: ``(N, classes)``)."""
    return (probabilities.argmax(dim=1) == labels.to(probabilities.device)).double().mean().item()


def quick_scores(
    reference: ReferenceSet, images: torch.Tensor, labels: torch.Tensor | None = None
) -> dict[str, Any]:
    """FID and mode coverage only (and, for samples asked to be the classes ``labels``, the
    conditional accuracy): cheap enough to run during training."""
    images = at_reference_size(images, reference.test_images)
    features, probabilities = reference.evaluator.embed(images)
    coverage = class_coverage(probabilities, reference.evaluator.classes)
    scores = {
        "fid": reference.frechet_distance(features),
        "classes_covered": coverage["classes_covered"],
    }
    if labels is not None:
        scores["conditional_accuracy"] = conditional_accuracy(probabilities, labels)
    return scores


def all_scores(
    reference: ReferenceSet,
    images: torch.Tensor,
    *,
    k: int = K_NEIGHBOURS,
    prdc_num: int = 5000,
    seed: int = 0,
    labels: torch.Tensor | None = None,
) -> dict[str, Any]:
    """Every metric of this module for uint8 ``images`` against ``reference`` (the conditional
    accuracy too when ``labels`` says which class each image was asked to be)."""
    images = at_reference_size(images, reference.test_images)
    features, probabilities = reference.evaluator.embed(images)
    return feature_scores(
        reference, features, probabilities, k=k, prdc_num=prdc_num, seed=seed, labels=labels
    )


def feature_scores(
    reference: ReferenceSet,
    features: torch.Tensor,
    probabilities: torch.Tensor,
    *,
    k: int = K_NEIGHBOURS,
    prdc_num: int = 5000,
    seed: int = 0,
    labels: torch.Tensor | None = None,
    train_distances: torch.Tensor | None = None,
) -> dict[str, Any]:
    """:func:`all_scores` of images from what the evaluator made of them: ``features``
    ``(N, 128)`` and ``probabilities`` ``(N, classes)``, as :meth:`Evaluator.embed` returns
    them. ``train_distances``: each image's distance to its nearest training image ``(N,)``
    when already known (see :meth:`ReferenceSet.memorisation_ratio`)."""
    from torchmetrics.image.inception import InceptionScore
    from torchmetrics.image.kid import KernelInceptionDistance

    evaluator = reference.evaluator
    scores: dict[str, Any] = {
        "num": int(features.shape[0]),
        "fid": reference.frechet_distance(features),
    }

    subset = min(1000, features.shape[0], reference.test_images.shape[0])
    with warnings.catch_warnings():
        # torchmetrics warns that KID and IS keep every feature; here that is a few MB.
        warnings.simplefilter("ignore", UserWarning)
        kid = KernelInceptionDistance(
            feature=_Given(NUM_FEATURES), subset_size=subset, **LOCAL_METRIC
        )
        inception = InceptionScore(
            feature=_Given(NUM_FEATURES, evaluator.net.head), splits=10, **LOCAL_METRIC
        )
    with seeded(seed), torch.inference_mode():
        _update(kid, reference.test_features, real=True)
        _update(kid, features, real=False)
        kid_mean, kid_std = kid.compute()
        _update(inception, features)
        is_mean, is_std = inception.compute()
    scores.update(
        kid=kid_mean.item(),
        kid_std=kid_std.item(),
        inception_score=is_mean.item(),
        inception_score_std=is_std.item(),
    )

    n = min(prdc_num, features.shape[0], reference.test_features.shape[0])
    real, real_radii = reference.prdc_real(n, k, seed)
    scores.update(precision_recall_density_coverage(real, features[:n], k, real_radii))
    scores.update(class_coverage(probabilities, evaluator.classes))
    if labels is not None:
        scores["conditional_accuracy"] = conditional_accuracy(probabilities, labels)
    if reference.train_features is not None:
        scores["memorisation_ratio"] = reference.memorisation_ratio(features, train_distances)
    for key, value in scores.items():
        if isinstance(value, float) and not math.isfinite(value):
            scores[key] = None
    return scores
