"""``ganforge eval --evaluator inception``: FID and KID in the FID Inception network's features.

The real weights are not at hand (no internet), so torch-fidelity's Inception network is built
with random weights and saved as the real file is (a plain state_dict of the same keys), by
``benchmarks/inception_crosscheck.py``. With that one file, ganforge's numbers must be
torch-fidelity's own: the loading, the resize, the layer and the maths are then the same.
Inception runs at 299 × 299 whatever the images' size, some images a second on a shared CPU:
the image sets are tiny, and the reference features are cached between the tests.
"""

import hashlib
import importlib.util
import json
import urllib.error
from pathlib import Path

import pytest
import torch

from conftest import tiny_train
from ganforge.cli import main
from ganforge.console import SILENT
from ganforge.eval import inception
from test_evaluation import error_line

CROSSCHECK = Path(__file__).parents[1] / "benchmarks" / "inception_crosscheck.py"
#: Images per set: enough for FID and KID to be defined, few enough for a CPU.
N = 6


def _crosscheck_module():
    spec = importlib.util.spec_from_file_location("inception_crosscheck", CROSSCHECK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


crosscheck = _crosscheck_module()


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    """(random weights in the real file's format, N samples as .npz, a folder of N others)."""
    folder = tmp_path_factory.mktemp("inception")
    weights = crosscheck.write_random_weights(folder / crosscheck.WEIGHTS_NAME)
    samples, reference = crosscheck.write_demo(folder, count=N)
    return weights, samples, reference


def eval_inception(capsys, source: Path, weights: Path, *flags: str) -> dict:
    argv = ["eval", str(source), "--evaluator", "inception", "--inception-weights", str(weights)]
    assert main([*argv, *flags, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_the_random_weights_file_has_the_real_file_s_keys(sets):
    weights, _, _ = sets
    state = torch.load(weights, weights_only=True)
    # The converter of the real file writes these and nothing else (no num_batches_tracked).
    assert not any(key.endswith("num_batches_tracked") for key in state)
    assert {"Conv2d_1a_3x3.conv.weight", "Mixed_7c.branch_pool.bn.running_var", "fc.bias"} <= set(
        state
    )
    assert state["fc.weight"].shape == (1008, 2048)


def test_fid_and_kid_are_torch_fidelity_s_own(sets, capsys):
    weights, samples, reference = sets
    ours = eval_inception(capsys, samples, weights, "--dataset", f"folder:{reference}")
    theirs = crosscheck.torch_fidelity_scores(samples, reference, weights)
    assert ours["samples"]["num"] == N and ours["protocol"]["reference"]["num"] == N
    assert ours["samples"]["fid"] > 1  # the two sets differ, so equal numbers mean something
    assert ours["samples"]["fid"] == pytest.approx(theirs["fid"], abs=1e-3)
    # torch-fidelity's KID multiplies its float32 features in float32; ganforge's are float64.
    assert ours["samples"]["kid"] == pytest.approx(theirs["kid"], abs=1e-5)


def test_grayscale_images_are_repeated_to_rgb():
    gray = torch.randint(0, 256, (2, 1, 20, 20), dtype=torch.uint8)
    extractor = _Recorder()
    inception.inception_features(gray, extractor)
    (seen,) = extractor.batches
    assert seen.shape == (2, 3, 20, 20) and seen.dtype == torch.uint8
    assert torch.equal(seen, gray.expand(-1, 3, -1, -1))


class _Recorder(torch.nn.Module):
    """Stands in for the network where only what it is handed is checked."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[torch.Tensor] = []

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor]:
        self.batches.append(images.clone())
        return (torch.zeros(images.shape[0], 2048),)


def test_the_reference_keeps_a_runs_classes():
    # A --classes run is compared with the images of its classes, as its own evaluation is.
    everything, _ = inception.reference_images("mnist", (1, 28, 28))
    kept, described = inception.reference_images("mnist", (1, 28, 28), classes="5,6")
    assert described["classes"] == "5,6" and described["num"] == len(kept) == 20
    assert len(everything) == 100


def test_reference_features_are_computed_once_per_images_and_weights(tmp_path):
    images = torch.randint(0, 256, (3, 3, 8, 8), dtype=torch.uint8)
    extractor = _Recorder()
    first = inception._reference_features(images, extractor, "ab" * 32, tmp_path, SILENT)
    again = inception._reference_features(images, extractor, "ab" * 32, tmp_path, SILENT)
    assert len(extractor.batches) == 1 and torch.equal(first, again)
    inception._reference_features(images, extractor, "cd" * 32, tmp_path, SILENT)  # new weights
    inception._reference_features(images.flip(0), extractor, "ab" * 32, tmp_path, SILENT)
    assert len(extractor.batches) == 3


def test_missing_weights_offline_say_where_to_put_them(sets, capsys, monkeypatch):
    from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3

    _, samples, reference = sets
    monkeypatch.delenv("TORCH_HOME", raising=False)  # torch hub's folder: under XDG_CACHE_HOME
    asked = []

    def offline(url, destination, *args, **kwargs):
        asked.append((url, Path(destination)))
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    # torch hub's download, below torch-fidelity's own call: a machine without internet
    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    argv = ["eval", str(samples), "--evaluator", "inception", "--dataset", f"folder:{reference}"]
    assert main(argv) == 2
    line = error_line(capsys)
    expected = inception.default_weights_path()
    assert expected.parent == Path(torch.hub.get_dir()) / "checkpoints"
    assert expected.name == crosscheck.WEIGHTS_NAME
    assert f"not at {expected} and could not be downloaded" in line
    assert "--inception-weights FILE" in line and URL_INCEPTION_V3 in line
    # torch-fidelity's own address, into torch hub's cache
    assert asked == [(URL_INCEPTION_V3, expected)]


def test_files_that_are_not_the_inception_weights_are_refused(sets, tmp_path, capsys):
    weights, samples, reference = sets
    argv = ["eval", str(samples), "--dataset", f"folder:{reference}", "--evaluator", "inception"]
    assert main([*argv, "--inception-weights", str(tmp_path / "none.pth")]) == 2
    assert "Inception weights file not found" in error_line(capsys)
    torch.save({"fc.weight": torch.zeros(2, 2)}, tmp_path / "other.pth")
    assert main([*argv, "--inception-weights", str(tmp_path / "other.pth")]) == 2
    assert "does not hold the weights of the FID Inception network" in error_line(capsys)
    torch.save({"net": torch.nn.Linear(2, 2)}, tmp_path / "pickled.pth")  # code, not weights
    assert main([*argv, "--inception-weights", str(tmp_path / "pickled.pth")]) == 2
    assert "is not a weights file that loads safely" in error_line(capsys)
    assert main([*argv[:-2], "--inception-weights", str(weights)]) == 2
    assert "--inception-weights is for --evaluator inception" in error_line(capsys)


def test_a_run_s_eval_json_carries_the_protocol_and_its_report_shows_it(sets, tmp_path, capsys):
    weights, _, reference = sets
    run = tmp_path / "run"
    flags = ["--architecture", "radford", "--dataset", f"folder:{reference}"]
    assert tiny_train(run, *flags, "--batch-size", "4", "--max-steps", "2") == 0
    capsys.readouterr()
    result = eval_inception(capsys, run, weights, "--num", str(N))
    saved = json.loads((run / "eval.json").read_text())
    assert saved == result and saved["evaluator"] == "inception"
    assert saved["samples"]["num"] == N and saved["samples"]["fid"] > 0
    protocol = saved["protocol"]
    assert protocol["samples"] == {"num": N, "resolution": "3×32×32"}
    assert protocol["reference"] == {
        "dataset": f"folder:{reference}",
        "split": "train (the dataset has no test split)",
        "num": N,
        "resolution": "3×32×32",
        "resolution_source": "the samples' (the folder's images resized)",
        "background": "white",
    }
    sha256 = hashlib.sha256(weights.read_bytes()).hexdigest()
    assert protocol["weights"] == {
        "file": crosscheck.WEIGHTS_NAME,
        "path": str(weights),
        "sha256": sha256,
    }
    assert protocol["feature_layer"].startswith("2048")
    assert protocol["resize"]["size"] == [299, 299] and "bilinear" in protocol["resize"]["filter"]
    assert protocol["kid"]["subset_size"] == N and protocol["kid"]["subsets"] == 100
    assert {"ganforge", "torch", "torch-fidelity", "numpy"} <= set(protocol["versions"])
    page = (run / "report.html").read_text()
    assert "Inception FID/KID" in page and sha256[:12] in page
