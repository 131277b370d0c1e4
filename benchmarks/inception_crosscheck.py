"""Cross-check ganforge's Inception FID/KID against torch-fidelity's own computation.

    python benchmarks/inception_crosscheck.py --weights FILE SAMPLES REFERENCE
    python benchmarks/inception_crosscheck.py --demo DIR

SAMPLES is a ``.npz`` of uint8 images (key ``images``, as ``ganforge sample --out`` writes) or
a folder of PNG/JPEG files; REFERENCE is a folder of PNG/JPEG files, all of one size and
opaque (torch-fidelity drops an alpha channel where ganforge composites it). ganforge scores
SAMPLES as ``ganforge eval SAMPLES --evaluator inception --inception-weights FILE --dataset
folder:REFERENCE`` does; torch-fidelity as ``torch_fidelity.calculate_metrics(input1=SAMPLES,
input2=REFERENCE, fid=True, kid=True, feature_extractor_weights_path=FILE)``. Both FIDs, both
KIDs and their differences are printed.

``--demo DIR`` needs no weights and no data: it writes into DIR the FID Inception network of
torch-fidelity with random weights, saved in the real file's format (a plain state_dict with
the real file's keys), and two small sets of synthetic 32×32 colour images, then runs the
check on them. Random weights test the plumbing (loading, resizing, layer, maths), not the
numbers a paper would report.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

#: The real file's name: the cross-check then also shows the name in ganforge's protocol.
WEIGHTS_NAME = "weights-inception-2015-12-05-6726825d.pth"


def write_random_weights(path: Path, seed: int = 0) -> Path:
    """Save torch-fidelity's FID Inception network with random weights at ``path``, as the
    real file is saved: a plain state_dict of the same keys (no ``num_batches_tracked``).

    Convolutions keep PyTorch's random initialisation; each BatchNorm gets random scales and
    shifts, running mean 0 and the running variance that makes its convolution's output of
    unit variance for inputs of second moment 1/2 (a ReLU of a unit normal): the features
    neither vanish nor explode through the 94 layers, whatever images come."""
    from torch_fidelity.feature_extractor_inceptionv3 import (
        BasicConv2d,
        FeatureExtractorInceptionV3,
    )

    class Unloaded(FeatureExtractorInceptionV3):
        def load_state_dict(self, state_dict, strict=True, assign=False):
            return None  # keep the random initialisation: no weights are at hand

    torch.manual_seed(seed)
    with tempfile.TemporaryDirectory() as folder:
        empty = Path(folder) / "empty.pth"
        torch.save({}, empty)
        net = Unloaded("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(empty))
    with torch.no_grad():
        for block in net.modules():
            if isinstance(block, BasicConv2d):
                block.bn.running_mean.zero_()
                block.bn.running_var.copy_(0.5 * block.conv.weight.pow(2).sum((1, 2, 3)))
                block.bn.weight.uniform_(0.5, 1.5)
                block.bn.bias.normal_(0.0, 0.2)
    state = {
        key: value.detach().clone()
        for key, value in net.state_dict().items()
        if not key.endswith("num_batches_tracked")
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return path


def demo_images(count: int, seed: int, noise: float) -> np.ndarray:
    """``count`` uint8 ``32×32×3`` images: smooth random colour fields (4×4 upsampled) plus
    Gaussian pixel noise of standard deviation ``noise`` (in 0-255 units)."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, size=(count, 4, 4, 3))
    images = coarse.repeat(8, axis=1).repeat(8, axis=2)
    images = images + rng.normal(0, noise, size=images.shape)
    return np.clip(np.rint(images), 0, 255).astype(np.uint8)


def write_demo(folder: Path, count: int = 64) -> tuple[Path, Path]:
    """``folder/samples.npz`` and ``folder/reference/NNN.png``: ``count`` images each, of two
    different distributions (:func:`demo_images`, with and without pixel noise)."""
    samples = folder / "samples.npz"
    reference = folder / "reference"
    reference.mkdir(parents=True, exist_ok=True)
    np.savez(samples, images=demo_images(count, seed=1, noise=40.0))
    for i, image in enumerate(demo_images(count, seed=2, noise=0.0)):
        Image.fromarray(image).save(reference / f"{i:03d}.png")
    return samples, reference


class _Uint8Images(torch.utils.data.Dataset):
    """uint8 ``(N, 3, H, W)`` images as torch-fidelity's inputs want them, one per item."""

    def __init__(self, images: torch.Tensor) -> None:
        self.images = images

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.images[index]


def _folder_images(folder: Path) -> torch.Tensor:
    """uint8 ``(N, C, H, W)``: a folder of images as ganforge's folder loader reads it, at
    the size of its first image."""
    from ganforge.data import load_dataset, native_image_shape

    first = min(p for p in folder.iterdir() if p.suffix.lower() in {".png", ".jpg", ".jpeg"})
    with Image.open(first) as img:
        width, height = img.size
    channels = native_image_shape(f"folder:{folder}")[0]
    return load_dataset(f"folder:{folder}", image_shape=(channels, height, width)).images


def torch_fidelity_scores(samples: Path, reference: Path, weights: Path) -> dict[str, float]:
    """torch-fidelity's FID and KID of SAMPLES (``.npz`` or folder) against the REFERENCE
    folder with the weights file ``weights``; KID's subset size as ganforge takes it (at most
    the smaller set), all else at torch-fidelity's defaults."""
    import torch_fidelity

    from ganforge.eval import npz_images

    if samples.suffix == ".npz":
        images = npz_images(samples)
        input1: object = _Uint8Images(images.expand(-1, 3, -1, -1).contiguous())
        count = images.shape[0]
    else:
        input1, count = str(samples), _folder_images(samples).shape[0]
    metrics = torch_fidelity.calculate_metrics(
        input1=input1,
        input2=str(reference),
        fid=True,
        kid=True,
        kid_subset_size=min(1000, count, _folder_images(reference).shape[0]),
        feature_extractor_weights_path=str(weights),
        cuda=False,
        cache=False,
        save_cpu_ram=True,  # no loader processes: the same batches, in this process
        verbose=False,
    )
    return {
        "fid": metrics["frechet_inception_distance"],
        "kid": metrics["kernel_inception_distance_mean"],
    }


def ganforge_scores(samples: Path, reference: Path, weights: Path, data_root: Path) -> dict:
    """``ganforge eval SAMPLES --evaluator inception --inception-weights WEIGHTS --dataset
    folder:REFERENCE --num N --json`` (N: every sample), through the command line's own
    function; a folder of samples is read by ganforge's folder loader into an ``.npz`` first."""
    import contextlib
    import io

    from ganforge.cli import main
    from ganforge.eval import npz_images

    if samples.is_dir():
        images = _folder_images(samples)
        samples = data_root / "samples.npz"
        np.savez(samples, images=images.permute(0, 2, 3, 1).numpy())
    flags = ["--evaluator", "inception", "--inception-weights", str(weights)]
    flags += ["--dataset", f"folder:{reference}", "--data-root", str(data_root)]
    flags += ["--num", str(npz_images(samples).shape[0]), "--json"]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = main(["eval", str(samples), *flags])
    if status != 0:
        raise SystemExit(status)
    return json.loads(out.getvalue())


def crosscheck(samples: Path, reference: Path, weights: Path) -> dict[str, float]:
    """Both libraries' FID and KID and their differences."""
    with tempfile.TemporaryDirectory() as data_root:
        ours = ganforge_scores(samples, reference, weights, Path(data_root))
    theirs = torch_fidelity_scores(samples, reference, weights)
    return {
        "ganforge_fid": ours["samples"]["fid"],
        "torch_fidelity_fid": theirs["fid"],
        "fid_difference": ours["samples"]["fid"] - theirs["fid"],
        "ganforge_kid": ours["samples"]["kid"],
        "torch_fidelity_kid": theirs["kid"],
        "kid_difference": ours["samples"]["kid"] - theirs["kid"],
        "samples": ours["samples"]["num"],
        "reference": ours["protocol"]["reference"]["num"],
        "weights_sha256": ours["protocol"]["weights"]["sha256"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("samples", type=Path, nargs="?", help=".npz or folder of images")
    parser.add_argument("reference", type=Path, nargs="?", help="folder of images")
    parser.add_argument("--weights", type=Path, help="the Inception weights file")
    parser.add_argument("--demo", type=Path, metavar="DIR", help="random weights, synthetic sets")
    args = parser.parse_args(argv)
    if args.demo is not None:
        weights = args.demo / WEIGHTS_NAME
        if not weights.is_file():
            write_random_weights(weights)
        samples, reference = write_demo(args.demo)
    elif args.samples and args.reference and args.weights:
        samples, reference, weights = args.samples, args.reference, args.weights
    else:
        parser.error("give --weights FILE SAMPLES REFERENCE, or --demo DIR")
    result = crosscheck(samples, reference, weights)
    print(f"weights: {weights} (sha256 {result['weights_sha256'][:16]}…)")
    print(
        f"images: {result['samples']} samples ({samples}) against {result['reference']} "
        f"reference images ({reference})"
    )
    for metric in ("fid", "kid"):
        print(
            f"{metric.upper()}: ganforge {result[f'ganforge_{metric}']:.6f}  torch-fidelity "
            f"{result[f'torch_fidelity_{metric}']:.6f}  difference "
            f"{result[f'{metric}_difference']:.3e}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
