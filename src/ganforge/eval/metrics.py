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

import math
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from typing import Any

import torch

from ganforge.data import resize_images
from ganforge.eval.classifier import Evaluator, FeatureExtractor, LogitsExtractor

COVERAGE_THRESHOLD = 0.02
K_NEIGHBOURS = 3
#: The fewest images the k-NN metrics can score (k neighbours besides the point itself).
MIN_POINTS = K_NEIGHBOURS + 1
#: Bump when a change alters any score, so cached floor/ceiling numbers are not reused.
METRICS_VERSION = 1
#: Images per forward pass of the evaluator inside torchmetrics (bounds activation memory).
CHUNK = 1000
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


def kth_neighbour_distances(points: torch.Tensor, k: int) -> torch.Tensor:
    """Distance from each point to its k-th nearest other point, ``(N,)``."""
    distances = torch.cdist(points, points)
    # The 0-th nearest is the point itself (distance 0).
    return distances.kthvalue(k + 1, dim=1).values


def precision_recall_density_coverage(
    real: torch.Tensor, fake: torch.Tensor, k: int = 3
) -> dict[str, float]:
    """PRDC of feature sets ``real (R, D)`` and ``fake (F, D)``.

    Precision: the fraction of fake points inside some real point's k-NN ball. Recall: the
    fraction of real points inside some fake point's k-NN ball. Density: the mean number of real
    balls a fake point falls in, divided by k. Coverage: the fraction of real points whose ball
    holds at least one fake point. Balls are open (``<``), as in Naeem et al.'s code.
    """
    real, fake = real.double(), fake.double()
    real_radii = kth_neighbour_distances(real, k)
    fake_radii = kth_neighbour_distances(fake, k)
    distances = torch.cdist(real, fake)  # (R, F)
    inside_real = distances < real_radii[:, None]
    return {
        "precision": inside_real.any(dim=0).double().mean().item(),
        "recall": (distances < fake_radii[None, :]).any(dim=1).double().mean().item(),
        "density": inside_real.sum().item() / (k * fake.shape[0]),
        "coverage": (distances.min(dim=1).values < real_radii).double().mean().item(),
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
    queries: torch.Tensor, references: torch.Tensor, chunk: int = 2000
) -> torch.Tensor:
    """Distance from each query ``(Q, D)`` to its nearest reference ``(R, D)``, ``(Q,)``."""
    references = references.double()
    return torch.cat(
        [torch.cdist(q, references).min(dim=1).values for q in queries.double().split(chunk)]
    )


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


def _update(metric, images: torch.Tensor, **kwargs) -> None:
    """``metric.update`` in chunks, so 10,000 images never pass the evaluator at once."""
    for chunk in images.split(CHUNK):
        metric.update(chunk, **kwargs)


def frechet_metric(feature: torch.nn.Module):
    """torchmetrics' FID over a custom feature module (one with ``num_features``); the real
    statistics survive ``reset()``, so one reference serves many sample sets."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    return FrechetInceptionDistance(feature=feature, reset_real_features=False, **LOCAL_METRIC)


class ReferenceSet:
    """The held-out images that samples are compared with, embedded once.

    ``test``: uint8 test images ``(N, C, 28, 28)``; ``train``: the training images, used for the
    memorisation check (may be ``None`` to skip it).
    """

    def __init__(
        self, evaluator: Evaluator, test: torch.Tensor, train: torch.Tensor | None
    ) -> None:
        self.evaluator = evaluator
        self.test_images = test
        self.train_features = evaluator.embed(train)[0] if train is not None else None
        self.fid = frechet_metric(FeatureExtractor(evaluator.net))
        _update(self.fid, test, real=True)

    @cached_property
    def test_features(self) -> torch.Tensor:
        """``(N, 128)``; computed on first use (training's FID checks never need it)."""
        return self.evaluator.embed(self.test_images)[0]

    @cached_property
    def _test_nn_median(self) -> torch.Tensor:
        return nearest_distances(self.test_features, self.train_features).median()

    def frechet_distance(self, images: torch.Tensor) -> float:
        self.fid.reset()  # keeps the test statistics
        _update(self.fid, images, real=False)
        return self.fid.compute().item()

    def memorisation_ratio(self, features: torch.Tensor) -> float:
        """:func:`memorisation_ratio` of sample features, the test side computed once."""
        return (
            nearest_distances(features, self.train_features).median() / self._test_nn_median
        ).item()


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
    _, probabilities = reference.evaluator.embed(images)
    coverage = class_coverage(probabilities, reference.evaluator.classes)
    scores = {
        "fid": reference.frechet_distance(images),
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
    from torchmetrics.image.inception import InceptionScore
    from torchmetrics.image.kid import KernelInceptionDistance

    evaluator = reference.evaluator
    features, probabilities = evaluator.embed(images)
    scores: dict[str, Any] = {
        "num": int(images.shape[0]),
        "fid": reference.frechet_distance(images),
    }

    subset = min(1000, images.shape[0], reference.test_images.shape[0])
    with warnings.catch_warnings():
        # torchmetrics warns that KID and IS keep every feature; here that is a few MB.
        warnings.simplefilter("ignore", UserWarning)
        kid = KernelInceptionDistance(
            feature=FeatureExtractor(evaluator.net), subset_size=subset, **LOCAL_METRIC
        )
        inception = InceptionScore(
            feature=LogitsExtractor(evaluator.net), splits=10, **LOCAL_METRIC
        )
    with seeded(seed):
        _update(kid, reference.test_images, real=True)
        _update(kid, images, real=False)
        kid_mean, kid_std = kid.compute()
        _update(inception, images)
        is_mean, is_std = inception.compute()
    scores.update(
        kid=kid_mean.item(),
        kid_std=kid_std.item(),
        inception_score=is_mean.item(),
        inception_score_std=is_std.item(),
    )

    # A seeded random subset of the test set: its first half is not like its second.
    test_features = reference.test_features
    n = min(prdc_num, features.shape[0], test_features.shape[0])
    pick = torch.randperm(test_features.shape[0], generator=torch.Generator().manual_seed(seed))
    scores.update(precision_recall_density_coverage(test_features[pick[:n]], features[:n], k))
    scores.update(class_coverage(probabilities, evaluator.classes))
    if labels is not None:
        scores["conditional_accuracy"] = conditional_accuracy(probabilities, labels)
    if reference.train_features is not None:
        scores["memorisation_ratio"] = reference.memorisation_ratio(features)
    for key, value in scores.items():
        if isinstance(value, float) and not math.isfinite(value):
            scores[key] = None
    return scores
