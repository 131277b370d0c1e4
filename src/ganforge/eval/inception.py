"""FID and KID comparable with papers: the 2048-d pool features of the FID Inception network
(the TensorFlow 2015-12-05 graph of TTUR, as converted by torch-fidelity; the network that
pytorch-fid, torch-fidelity and clean-fid's legacy mode use), through torch-fidelity's own
``FeatureExtractorInceptionV3``: it takes uint8 ``(N, 3, H, W)`` images and resizes them to
299 × 299 itself, with TensorFlow 1.x's bilinear filter.

The weights file (``weights-inception-2015-12-05-6726825d.pth``) is read from torch-fidelity's
cache (torch hub's ``checkpoints`` folder) or from a file given; a missing one is downloaded by
torch-fidelity's own code (same address, same cache) when the network can be reached. Every
score carries its protocol (samples, reference set, resize, layer, weights' sha256, versions),
as clean-fid asks of any FID that is reported.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import io
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch

from ganforge.checkpoint_file import atomic_torch_save
from ganforge.console import SILENT, Console
from ganforge.data import dataset_spec, load_dataset, native_image_shape, resolve_data_root
from ganforge.data.images import DEFAULT_BACKGROUND, shape_text
from ganforge.errors import GanforgeError
from ganforge.files import file_sha256

#: The ``--evaluator`` value that asks for Inception features instead of a classifier file.
INCEPTION = "inception"
#: Samples scored by default with Inception (``--num`` to change): the network runs at
#: 299 × 299, slow on a CPU (2.3 images a second on this project's busy 2-core machine, the
#: crosscheck of benchmarks/inception_crosscheck.py); the reference set is embedded once, then
#: cached.
DEFAULT_NUM = 5_000
#: torch-fidelity's name of the 2048-d pool features (average-pooled ``Mixed_7c``).
FEATURE_LAYER = "2048"
#: torch-fidelity's registered name of this feature extractor.
EXTRACTOR_NAME = "inception-v3-compat"


def _fidelity_defaults() -> dict[str, Any]:
    from torch_fidelity.defaults import DEFAULTS

    return DEFAULTS


def weights_url() -> str:
    """The address torch-fidelity downloads the weights from."""
    from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3

    return URL_INCEPTION_V3


def default_weights_path() -> Path:
    """Where torch-fidelity keeps the weights: torch hub's ``checkpoints`` folder (under
    ``$TORCH_HOME/hub``, by default ``~/.cache/torch/hub``), named as the download's address
    names it, as ``torch.hub.load_state_dict_from_url`` resolves it."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(weights_url()).path).name


def _one_line(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None) or exc
    return " ".join(str(reason).split()) or type(exc).__name__


def _download(path: Path, console: Console) -> None:
    """Have torch-fidelity fetch its weights into its cache (``path``), as it does when it
    is given no weights file; :class:`GanforgeError` in one line naming ``path`` when the
    download fails (offline, say)."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    try:
        # torch hub's own lines (its address, its progress) would break the one-line error
        with contextlib.redirect_stderr(io.StringIO()):
            FeatureExtractorInceptionV3(EXTRACTOR_NAME, [FEATURE_LAYER])
    except (OSError, http.client.HTTPException) as exc:
        raise GanforgeError(
            f"the FID Inception weights are not at {path} and could not be downloaded "
            f"({_one_line(exc)}): put {path.name} (from {weights_url()}) there, "
            "or pass --inception-weights FILE"
        ) from None
    if not path.is_file():  # torch hub resolved another folder than ours: say so, not guess
        raise GanforgeError(f"torch-fidelity downloaded its weights, but not to {path}")
    console.notice(f"downloaded the FID Inception weights to {path}")


def _check_weights_file(path: Path) -> None:
    """:class:`GanforgeError` unless ``path`` holds a plain state_dict (names → tensors),
    read with ``weights_only``: torch-fidelity then loads it without that guard."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise GanforgeError(f"Inception weights file not found: {path}") from None
    except Exception as exc:  # pickle, zip and torch errors alike: one line
        raise GanforgeError(
            f"{path} is not a weights file that loads safely ({_one_line(exc)[:200]})"
        ) from None
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise GanforgeError(f"{path} is not a state_dict (a dict of tensors)")


def load_inception(
    weights: str | Path | None = None, console: Console = SILENT
) -> tuple[torch.nn.Module, Path]:
    """torch-fidelity's FID Inception network (eval mode, on the CPU) giving the 2048-d
    features, and the weights file it was built from: ``weights``, or torch-fidelity's cached
    file (:func:`default_weights_path`), downloaded by torch-fidelity if missing."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    if weights is None:
        path = default_weights_path()
        if not path.is_file():
            _download(path, console)
    else:
        path = Path(weights).expanduser()
    _check_weights_file(path)
    try:
        extractor = FeatureExtractorInceptionV3(
            EXTRACTOR_NAME, [FEATURE_LAYER], feature_extractor_weights_path=str(path)
        )
    except RuntimeError:  # load_state_dict's many-line report of missing or odd keys
        raise GanforgeError(
            f"{path} does not hold the weights of the FID Inception network (its names or "
            "shapes differ from torch-fidelity's FeatureExtractorInceptionV3)"
        ) from None
    return extractor, path


def inception_features(
    images: torch.Tensor,
    extractor: torch.nn.Module,
    console: Console = SILENT,
    batch_size: int | None = None,
) -> torch.Tensor:
    """float32 ``(N, 2048)`` pool features of uint8 images ``(N, C, H, W)`` (C = 1 is
    repeated to RGB), exactly as the network gives them; the extractor resizes to 299 × 299.
    ``batch_size``: torch-fidelity's default (64), so the batches are the ones its own
    ``calculate_metrics`` runs."""
    batch_size = batch_size or _fidelity_defaults()["batch_size"]
    if images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    chunks = []
    console.start_progress(images.shape[0])
    try:
        with torch.inference_mode():
            for start in range(0, images.shape[0], batch_size):
                batch = images[start : start + batch_size].contiguous()
                (features,) = extractor(batch)
                chunks.append(features)
                console.advance(batch.shape[0])
    finally:
        console.end_progress()
    return torch.cat(chunks)


def reference_images(
    dataset: str,
    sample_shape: tuple[int, ...],
    data_root: str | None = None,
    background: str = DEFAULT_BACKGROUND,
    classes: str | None = None,
) -> tuple[torch.Tensor, dict[str, Any]]:
    """The images samples are compared with, uint8 ``(N, C, H, W)``, and their description:
    the dataset's test split (its training images when it has none, as ``ganforge eval``
    uses), at its native resolution and channels; a folder, whose images may be of any size,
    at the samples' ``(H, W)`` (``sample_shape``: ``(C, H, W)``), resized by the folder
    loader as for training. Transparent images are composited onto ``background``;
    ``classes`` (a run's ``--classes``) keeps the images of those classes alone, as the
    run's own evaluation does."""
    channels, height, width = native_image_shape(dataset)
    native = height > 0 and width > 0
    if not native:
        height, width = sample_shape[-2:]
    images = load_dataset(
        dataset,
        "test",
        data_root=data_root,
        image_shape=(channels, height, width),
        background=background,
        classes=classes,
    ).images
    has_test = dataset_spec(dataset).splits
    described = {
        "dataset": dataset,
        "split": "test" if has_test else "train (the dataset has no test split)",
        "num": int(images.shape[0]),
        "resolution": shape_text((channels, height, width)),
        "resolution_source": "native" if native else "the samples' (the folder's images resized)",
        "background": background,
    }
    return images, described if classes is None else {**described, "classes": classes}


def _reference_features(
    images: torch.Tensor,
    extractor: torch.nn.Module,
    weights_sha256: str,
    cache_dir: Path,
    console: Console,
) -> torch.Tensor:
    """:func:`inception_features` of the reference images, kept in ``cache_dir`` under a key of
    the images themselves, the weights and torch-fidelity's version."""
    import torch_fidelity

    key = hashlib.sha256(f"{weights_sha256}-{torch_fidelity.__version__}".encode())
    key.update(str(tuple(images.shape)).encode())
    key.update(images.numpy().tobytes())
    path = cache_dir / f"inception-{FEATURE_LAYER}-{key.hexdigest()[:24]}.pt"
    with contextlib.suppress(Exception):  # missing or damaged: compute it again
        return torch.load(path, weights_only=True)
    console.notice(
        f"embedding {images.shape[0]} reference images with Inception (once: cached in {cache_dir})"
    )
    features = inception_features(images, extractor, console)
    with contextlib.suppress(OSError):  # a cache we cannot write only costs time
        cache_dir.mkdir(parents=True, exist_ok=True)
        atomic_torch_save(features, path)
    return features


def fid_kid(fake: torch.Tensor, real: torch.Tensor) -> dict[str, Any]:
    """FID, KID (mean and standard deviation over subsets) of features ``(N, D)`` and
    ``(M, D)``, in float64, and KID's settings.

    The maths are torch-fidelity's own (``metric_fid``, ``metric_kid``), not torchmetrics':
    the same code as ``torch_fidelity.calculate_metrics``, so a cross-check against it
    compares the features and nothing else, and KID's subsets come from a seeded numpy
    ``RandomState`` (torchmetrics draws them from the global torch generator)."""
    from torch_fidelity.metric_fid import (
        KEY_METRIC_FID,
        fid_features_to_statistics,
        fid_statistics_to_metric,
    )
    from torch_fidelity.metric_kid import (
        KEY_METRIC_KID_MEAN,
        KEY_METRIC_KID_STD,
        kid_features_to_metric,
    )

    fake, real = fake.double(), real.double()
    fid = fid_statistics_to_metric(
        fid_features_to_statistics(fake), fid_features_to_statistics(real), verbose=False
    )[KEY_METRIC_FID]
    defaults = _fidelity_defaults()
    kid_settings = {
        "subsets": defaults["kid_subsets"],
        "subset_size": min(defaults["kid_subset_size"], fake.shape[0], real.shape[0]),
        "kernel": "polynomial",
        "degree": defaults["kid_kernel_poly_degree"],
        "gamma": defaults["kid_kernel_poly_gamma"] or 1 / fake.shape[1],
        "coef0": defaults["kid_kernel_poly_coef0"],
        "seed": defaults["rng_seed"],
    }
    kid = kid_features_to_metric(
        fake,
        real,
        kid_subsets=kid_settings["subsets"],
        kid_subset_size=kid_settings["subset_size"],
        verbose=False,
    )
    return {
        "fid": fid,
        "kid": kid[KEY_METRIC_KID_MEAN],
        "kid_std": kid[KEY_METRIC_KID_STD],
        "kid_settings": kid_settings,
    }


def _versions() -> dict[str, str]:
    import numpy
    import PIL
    import torch_fidelity
    import torchvision

    from ganforge.version import __version__

    return {
        "ganforge": __version__,
        "torch": torch.__version__,
        "torch-fidelity": torch_fidelity.__version__,
        "torchvision": torchvision.__version__,
        "numpy": numpy.__version__,
        "pillow": PIL.__version__,
    }


def score_inception(
    images: torch.Tensor,
    *,
    dataset: str,
    data_root: str | None = None,
    background: str = DEFAULT_BACKGROUND,
    weights: str | Path | None = None,
    console: Console = SILENT,
    classes: str | None = None,
) -> dict[str, Any]:
    """Inception FID and KID of uint8 samples ``(N, C, H, W)`` against ``dataset``'s
    reference images (:func:`reference_images`, of the ``classes`` a run kept):
    ``{"evaluator": "inception", "note", "samples": {"num", "fid", "kid", "kid_std"},
    "protocol": {...}}``; the protocol names everything the numbers depend on (clean-fid's
    list: sample count, reference set and size, resize filter and size, feature layer,
    weights file and sha256, versions)."""
    # First: a missing weights file fails before any work is done.
    extractor, path = load_inception(weights, console)
    sha256 = file_sha256(path)
    reference, described = reference_images(
        dataset, tuple(images.shape[1:]), data_root, background, classes
    )
    cache = resolve_data_root(data_root) / "eval-cache"
    real = _reference_features(reference, extractor, sha256, cache, console)
    console.notice(f"embedding {images.shape[0]} samples with Inception")
    scores = fid_kid(inception_features(images, extractor, console), real)
    kid_settings = scores.pop("kid_settings")
    size = extractor.INPUT_IMAGE_SIZE
    protocol = {
        "features": "torch-fidelity FeatureExtractorInceptionV3 (the FID Inception network, "
        "TensorFlow inception-2015-12-05)",
        "feature_layer": f"{FEATURE_LAYER} (pool3: average-pooled Mixed_7c)",
        "weights": {"file": path.name, "path": str(path), "sha256": sha256},
        "samples": {"num": int(images.shape[0]), "resolution": shape_text(images.shape[1:])},
        "reference": described,
        "input": "uint8 RGB, grayscale repeated to 3 channels",
        "resize": {
            "filter": "bilinear as TensorFlow 1.x (torch-fidelity's "
            "interpolate_bilinear_2d_like_tensorflow1x, align_corners=False)",
            "size": [size, size],
        },
        "fid": "torch_fidelity.metric_fid on float64 features (mean, numpy.cov)",
        "kid": kid_settings,
        "versions": _versions(),
    }
    kept = "" if classes is None else f" (classes {classes})"
    note = (
        f"Inception FID/KID: {images.shape[0]} samples against {described['num']} "
        f"{dataset}{kept} {described['split'].split()[0]} images at {described['resolution']}, "
        f"resized to {size}×{size}; weights {path.name} (sha256 {sha256[:12]}…)"
    )
    return {
        "evaluator": INCEPTION,
        "note": note,
        "samples": {"num": int(images.shape[0]), **scores},
        "protocol": protocol,
    }
