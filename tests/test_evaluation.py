"""``ganforge eval``, ``compare`` and ``report`` end to end, with the shipped MNIST evaluator on
the tiny synthetic MNIST of conftest.py."""

import json

import numpy as np
import pytest
import torch

from conftest import EVAL_FLAGS, tiny_train
from ganforge.cli import main
from ganforge.errors import GanforgeError
from ganforge.eval import classifier as evaluator_module
from ganforge.eval import score_source
from ganforge.eval.classifier import EvaluatorNet, load_evaluator, random_shift, shipped_manifest


def error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ganforge: error: ")
    return lines[0]


@pytest.fixture(scope="module")
def evaluated_run(tmp_path_factory, tiny_mnist_root):
    """A tiny dcgan run with evaluation during training and a final evaluation of 64 samples."""
    import os

    os.environ["GANFORGE_DATA"] = str(tiny_mnist_root)
    run = tmp_path_factory.mktemp("runs") / "dc"
    assert tiny_train(run, "--preset", "dcgan", "--max-steps", "4", *EVAL_FLAGS) == 0
    return run


def test_shipped_evaluators_meet_their_accuracy_bars():
    manifest = shipped_manifest()
    assert manifest["mnist"]["test_accuracy"] >= 0.992
    assert manifest["fashion-mnist"]["test_accuracy"] >= 0.91
    for dataset in ("mnist", "fashion-mnist"):
        evaluator = load_evaluator(dataset)
        assert evaluator.name == f"{dataset}@{manifest[dataset]['sha256'][:12]}"
        features, probabilities = evaluator.embed(torch.zeros(3, 1, 28, 28, dtype=torch.uint8))
        assert features.shape == (3, 128) and probabilities.shape == (3, 10)
        torch.testing.assert_close(probabilities.sum(1), torch.ones(3))


def test_shipped_mnist_evaluator_reads_the_synthetic_bars():
    """The tiny MNIST's images are bars, not digits; the evaluator must still give every image
    a probability vector. (Its accuracy is measured on real MNIST by its manifest.)"""
    from ganforge.data.datasets import load_dataset

    test = load_dataset("mnist", "test")
    _, probabilities = load_evaluator("mnist").embed(test.images)
    assert probabilities.shape == (100, 10)


def test_a_tampered_evaluator_is_refused(tmp_path, monkeypatch):
    original = evaluator_module.shipped_path("mnist")
    tampered = tmp_path / "mnist.pt"
    data = bytearray(original.read_bytes())
    data[len(data) // 2] ^= 0xFF
    tampered.write_bytes(bytes(data))
    monkeypatch.setattr(evaluator_module, "shipped_path", lambda dataset: tampered)
    with pytest.raises(GanforgeError, match="corrupt or was changed"):
        load_evaluator("mnist")


def test_evaluator_from_a_file_and_its_errors(tmp_path):
    path = evaluator_module.shipped_path("mnist")
    assert load_evaluator(path=path).dataset == "mnist"
    with pytest.raises(GanforgeError, match="trained on 'mnist', not on 'fashion-mnist'"):
        load_evaluator("fashion-mnist", path=path)
    with pytest.raises(GanforgeError, match="no shipped evaluator fits"):
        load_evaluator("folder:/some/photos")
    junk = tmp_path / "junk.pt"
    torch.save({"weights": torch.zeros(3)}, junk)
    with pytest.raises(GanforgeError, match="is not a ganforge evaluator"):
        load_evaluator(path=junk)


def test_random_shift_moves_each_image_by_its_own_offset():
    images = torch.zeros(64, 1, 8, 8)
    images[:, :, 4, 4] = 1.0
    shifted = random_shift(images, 2, torch.Generator().manual_seed(0))
    positions = {tuple(torch.nonzero(img[0])[0].tolist()) for img in shifted}
    assert all(2 <= r <= 6 and 2 <= c <= 6 for r, c in positions)
    assert len(positions) > 5, "offsets must differ between images"
    assert shifted.sum().item() == 64  # nothing lost: the pixel stays inside the padding


def test_evaluator_training_learns_the_synthetic_classes(tmp_path, capsys):
    """Three short epochs (12 steps) on the 600 synthetic bars, whose label is the bar's row:
    far above the 10% of chance, though the ±2 px shifts blur neighbouring rows."""
    out = tmp_path / "ev.pt"
    assert (
        main(
            [
                "evaluator",
                "train",
                "--dataset",
                "mnist",
                "--epochs",
                "3",
                "--out",
                str(out),
                "--manifest",
                str(tmp_path / "manifest.json"),
            ]
        )
        == 0
    )
    evaluator = load_evaluator(path=out)
    assert evaluator.test_accuracy >= 0.5
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["mnist"]["sha256"] == evaluator.sha256
    assert "test accuracy" in capsys.readouterr().out


def test_training_logs_fid_and_writes_eval_and_report(evaluated_run):
    records = [
        json.loads(line) for line in (evaluated_run / "metrics.jsonl").read_text().splitlines()
    ]
    evals = [r for r in records if "fid" in r]
    assert [r["step"] for r in evals] == [2, 4]
    assert all(r["fid"] > 0 and 0 <= r["classes_covered"] <= 10 for r in evals)
    result = json.loads((evaluated_run / "eval.json").read_text())
    assert result["evaluator"] == load_evaluator("mnist").name
    assert result["num"] == 64
    for key in (
        "fid",
        "kid",
        "inception_score",
        "precision",
        "recall",
        "density",
        "coverage",
        "classes_covered",
        "kl_uniform",
        "memorisation_ratio",
    ):
        assert key in result["samples"] and key in result["floor"] and key in result["ceiling"]
    # Real images score better than noise on every distance.
    assert result["floor"]["fid"] < result["ceiling"]["fid"]
    assert result["floor"]["kid"] < result["ceiling"]["kid"]
    assert result["floor"]["memorisation_ratio"] < 1e-5  # they are training images
    page = (evaluated_run / "report.html").read_text()
    assert "data:image/png;base64," in page
    assert "http://" not in page and "https://" not in page
    for heading in (
        "Final samples",
        "Samples over training",
        "Losses",
        "FID during training",
        "Classes of the samples",
        "Metrics",
        "Is it copying?",
        "FID against training time",
        "Config",
    ):
        assert f"<h2>{heading}</h2>" in page or f">{heading}</h2>" in page


def test_eval_is_reproducible_and_prints_json(evaluated_run, capsys):
    args = ["eval", str(evaluated_run), "--num", "48", "--json", "--prdc-num", "40"]
    assert main(args) == 0
    first = json.loads(capsys.readouterr().out)
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out) == first
    assert first["num"] == 48 and first["evaluator"].startswith("mnist@")
    assert json.loads((evaluated_run / "eval.json").read_text()) == first


def test_eval_table_names_the_evaluator(evaluated_run, capsys):
    assert main(["eval", str(evaluated_run), "--num", "32"]) == 0
    out = capsys.readouterr().out
    assert f"evaluator: {load_evaluator('mnist').name}" in out
    assert "real train (floor)" in out and "uniform noise (ceiling)" in out
    assert "FID" in out and "class histogram" in out


def test_eval_of_an_npz_of_training_images_matches_the_floor(tmp_path, capsys):
    from ganforge.data.datasets import load_dataset

    train = load_dataset("mnist", "train").images
    samples = tmp_path / "real.npz"
    np.savez(samples, images=train[:200, 0].numpy())
    assert main(["eval", str(samples), "--num", "200", "--json", "--prdc-num", "100"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["samples"]["memorisation_ratio"] < 1e-5
    assert result["samples"]["fid"] < result["ceiling"]["fid"]
    # Copies are found: each sample's nearest training image is itself, at distance 0.
    nearest = result["nearest"]
    assert nearest["space"] == "features" and len(nearest["samples"]) == 8
    for i, found in enumerate(nearest["samples"]):
        assert found["train_indices"][0] == i and found["distances"][0] == 0
        assert found["distances"] == sorted(found["distances"]) and len(found["distances"]) == 4
    # From Python, the function behind ``ganforge eval`` scores the same file alike.
    assert json.loads(json.dumps(score_source(samples, num=200, prdc_num=100))) == result


def test_compare_prints_a_markdown_table_and_a_chart(evaluated_run, tmp_path, capsys):
    chart = tmp_path / "chart.png"
    assert (
        main(
            [
                "compare",
                str(evaluated_run),
                str(evaluated_run),
                "--chart",
                str(chart),
                "--num",
                "64",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    header = out.splitlines()[0]
    for column in (
        "preset",
        "loss",
        "steps",
        "wall time",
        "FID",
        "KID",
        "Inception Score",
        "precision",
        "recall",
        "coverage",
    ):
        assert column in header
    assert "| dc | dcgan | gan | 4 |" in out
    assert "real images (floor)" in out and "uniform noise (ceiling)" in out
    assert "| dcgan | 2 |" in out  # the per-preset summary of the two runs
    assert chart.stat().st_size > 1000


def test_report_command_rebuilds_the_page(evaluated_run, capsys):
    (evaluated_run / "report.html").unlink()
    assert main(["report", str(evaluated_run)]) == 0
    assert (evaluated_run / "report.html").is_file()
    capsys.readouterr()


def test_folder_runs_are_scored_on_pixels(tmp_path, image_folder, capsys):
    run = tmp_path / "folder"
    dataset = f"folder:{image_folder}"
    assert tiny_train(run, "--dataset", dataset, "--batch-size", "4", "--max-steps", "2") == 0
    capsys.readouterr()
    assert main(["eval", str(run), "--num", "12", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["evaluator"] is None and "no shipped evaluator fits" in result["note"]
    assert set(result["samples"]) >= {"precision", "recall", "coverage", "memorisation_ratio"}
    assert result["nearest"]["space"] == "pixels" and (run / "nearest.png").is_file()
    assert "Is it copying?" in (run / "report.html").read_text()


@pytest.mark.parametrize(
    ("images", "message"),
    [
        (np.full((4, 28, 28), np.nan, dtype=np.float32), "NaN"),
        (np.zeros((4, 28), dtype=np.uint8), "expected N×H×W or N×H×W×C"),
        (np.zeros((0, 28, 28), dtype=np.uint8), "holds no images"),
        (np.zeros((4, 32, 32, 3), dtype=np.uint8), "samples are 3×32×32 images"),
        (np.zeros((4, 28, 28, 3), dtype=np.uint8), "samples are 3×28×28 images"),
        (np.full((4, 28, 28), 3.0, dtype=np.float32), "must lie in [0, 1]"),
    ],
)
def test_eval_rejects_bad_samples(tmp_path, capsys, images, message):
    path = tmp_path / "bad.npz"
    np.savez(path, images=images)
    assert main(["eval", str(path)]) == 2
    assert message in error_line(capsys)


def test_eval_needs_enough_points_for_the_neighbour_metrics(tmp_path, capsys):
    np.savez(tmp_path / "three.npz", images=np.zeros((3, 28, 28), dtype=np.uint8))
    assert main(["eval", str(tmp_path / "three.npz")]) == 2
    assert "holds 3 images; scoring needs 4" in error_line(capsys)
    assert main(["eval", str(tmp_path / "three.npz"), "--prdc-num", "0"]) == 2
    assert "--prdc-num must be from 1 to 1,000,000, got 0" in error_line(capsys)
    assert main(["eval", str(tmp_path / "three.npz"), "--prdc-num", "3"]) == 2
    assert "--num and --prdc-num must be at least 4" in error_line(capsys)


def test_sample_rejects_an_unknown_device(capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        main(["sample", str(tmp_path), "--out", "x.npz", "--device", "gpu"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'gpu'" in capsys.readouterr().err


def test_eval_rejects_missing_and_unreadable_files(tmp_path, capsys):
    assert main(["eval", str(tmp_path / "none.npz")]) == 2
    assert "samples file not found" in error_line(capsys)
    (tmp_path / "text.npz").write_text("not a zip")
    assert main(["eval", str(tmp_path / "text.npz")]) == 2
    assert "is not a readable .npz" in error_line(capsys)
    np.savez(tmp_path / "other.npz", pictures=np.zeros((2, 28, 28), dtype=np.uint8))
    assert main(["eval", str(tmp_path / "other.npz")]) == 2
    assert "has no array named 'images'" in error_line(capsys)


def test_eval_with_the_wrong_evaluator_for_the_dataset(tmp_path, capsys):
    np.savez(tmp_path / "s.npz", images=np.zeros((8, 28, 28), dtype=np.uint8))
    shipped = str(evaluator_module.shipped_path("fashion-mnist"))
    assert main(["eval", str(tmp_path / "s.npz"), "--evaluator", shipped]) == 2
    assert "trained on 'fashion-mnist', not on 'mnist'" in error_line(capsys)


def test_tensorboard_logging(tmp_path):
    pytest.importorskip("tensorboard")
    run = tmp_path / "tb"
    assert tiny_train(run, "--preset", "gan", "--max-steps", "3", "--tensorboard") == 0
    events = list((run / "tensorboard").glob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(run / "tensorboard"))
    accumulator.Reload()
    assert {"train/d_loss", "train/g_loss"} <= set(accumulator.Tags()["scalars"])
    assert "samples" in accumulator.Tags()["images"]


def test_evaluator_net_shapes():
    net = EvaluatorNet()
    assert net(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    assert net.features(torch.zeros(2, 1, 28, 28, dtype=torch.uint8)).shape == (2, 128)
    colour = EvaluatorNet(3, 9, image_size=32)
    assert colour.image_shape == (3, 32, 32)
    assert colour(torch.zeros(2, 3, 32, 32)).shape == (2, 9)


def test_the_shipped_emoji_evaluator_reads_colour_at_32_pixels():
    manifest = shipped_manifest()["emoji"]
    assert manifest["test_accuracy"] >= 0.7  # nine categories: chance is about 0.2
    evaluator = load_evaluator("emoji")
    assert evaluator.image_shape == (3, 32, 32) and len(evaluator.classes) == 9
    assert load_evaluator("emoji-google").name == evaluator.name  # one evaluator, both vendors
    features, probabilities = evaluator.embed(torch.zeros(2, 3, 32, 32, dtype=torch.uint8))
    assert features.shape == (2, 128) and probabilities.shape == (2, 9)


def test_an_evaluator_for_a_folder_is_tested_on_images_held_out_of_its_training(
    tmp_path, image_folder, capsys
):
    """A folder has one split: every fifth image of each class is held out to test on, and
    the evaluator reads colour at 32 px; a folder without classes is refused in one line."""
    out = tmp_path / "ev.pt"
    dataset = f"folder:{image_folder}"
    evaluator = evaluator_module.train_evaluator(dataset, out, epochs=1, batch_size=4, log=str)
    blob = torch.load(out, weights_only=True)
    assert (
        blob["image_size"] == 32 and blob["channels"] == 3 and blob["classes"] == ["cats", "dogs"]
    )
    assert evaluator.test_accuracy in (0.0, 0.5, 1.0)  # one held-out image of each class
    assert load_evaluator(dataset, out).image_shape == (3, 32, 32)
    flat = tmp_path / "flat"
    flat.mkdir()
    for image in sorted(image_folder.rglob("*.png")):
        (flat / f"{image.parent.name}-{image.name}").write_bytes(image.read_bytes())
    with pytest.raises(GanforgeError, match="an evaluator learns to tell classes apart"):
        evaluator_module.train_evaluator(f"folder:{flat}", out, epochs=1, batch_size=4, log=str)


def test_the_reference_set_embeds_each_image_set_once_and_caches_it(tmp_path):
    """Scores from features computed once equal scores from the images; the test and training
    images' features and the test side of the memorisation ratio are kept on disk and reused."""
    from ganforge.data.datasets import load_dataset
    from ganforge.eval import metrics

    evaluator = load_evaluator("mnist")
    train = load_dataset("mnist", "train").images
    test = load_dataset("mnist", "test").images
    cache = tmp_path / "eval-cache"
    first = metrics.ReferenceSet(evaluator, test, train, cache_dir=cache)
    samples = train[:60]
    scores = metrics.all_scores(first, samples, prdc_num=50)
    assert sorted(p.name.split("-v")[0] for p in cache.iterdir()) == [
        "test-features",
        "test-nn-median",
        "train-features",
    ]
    # FID as torchmetrics computes it from the images through the evaluator's feature layer.
    by_images = metrics.frechet_metric()
    for chunk in test.split(metrics.CHUNK):
        by_images.update(evaluator.net.features(chunk).detach(), real=True)
    by_images.update(evaluator.net.features(samples).detach(), real=False)
    assert scores["fid"] == pytest.approx(by_images.compute().item(), rel=1e-5)

    calls = []
    embed = evaluator.embed

    def counting_embed(images, *args, **kwargs):
        calls.append(images.shape[0])
        return embed(images, *args, **kwargs)

    evaluator.embed = counting_embed
    again = metrics.ReferenceSet(evaluator, test, train, cache_dir=cache)
    assert torch.equal(again.train_features, first.train_features)
    assert torch.equal(again.test_features, first.test_features)
    assert calls == []  # both sides came from disk
    assert metrics.all_scores(again, samples, prdc_num=50) == scores


def test_summary_times_the_final_evaluation(evaluated_run):
    summary = json.loads((evaluated_run / "summary.json").read_text())
    assert summary["final_evaluation_s"] > 0
    assert summary["train_time_s"] <= summary["wall_time_s"]


def test_pooling_before_the_relu_gives_the_features_of_relu_then_pooling_to_the_bit():
    """The evaluator's blocks pool before their ReLU; the classic order, ReLU then pooling,
    gives the same bits from the same weights; the probabilities of features embedded before
    are those that embedding returned."""
    from ganforge.data.datasets import load_dataset

    evaluator = load_evaluator("mnist")
    layers = list(evaluator.net.body)
    for i, layer in enumerate(layers[:-1]):
        if isinstance(layer, torch.nn.MaxPool2d):
            layers[i], layers[i + 1] = layers[i + 1], layer  # each pool is followed by its ReLU
    relu_then_pool = torch.nn.Sequential(*layers)
    assert [type(m) for m in relu_then_pool[:4]] == [
        torch.nn.Conv2d,
        torch.nn.BatchNorm2d,
        torch.nn.ReLU,
        torch.nn.MaxPool2d,
    ]
    images = load_dataset("mnist", "train").images[:300]
    with torch.inference_mode():
        for batch in (images, images[:5]):
            expected = relu_then_pool(evaluator.net._as_float(batch))
            assert torch.equal(evaluator.net.features(batch), expected)
    features, probabilities = evaluator.embed(images)
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))
    assert torch.equal(evaluator.probabilities(features[order]), probabilities[order])


def test_the_floor_from_the_training_features_is_the_floor_from_the_images(tmp_path):
    """The floor scored from the reference's training features (picked by index, each at
    distance 0 from its nearest training image) is the floor scored from the images; the
    ceiling, scored after it with the real side of PRDC reused, is a fresh one's."""
    from ganforge.data.datasets import load_dataset
    from ganforge.eval import metrics, scoring

    evaluator = load_evaluator("mnist")
    train = load_dataset("mnist", "train").images
    test = load_dataset("mnist", "test").images
    reference = metrics.ReferenceSet(evaluator, test, train)
    points = scoring._reference_points(reference, train, 64, 0, 40, tmp_path)

    generator = torch.Generator().manual_seed(0)
    pick = torch.randperm(len(train), generator=generator)[:64]
    noise = torch.randint(0, 256, (64, *train.shape[1:]), generator=generator, dtype=torch.uint8)
    floor = metrics.all_scores(
        metrics.ReferenceSet(evaluator, test, train), train[pick], prdc_num=40
    )
    # The search in float32 finds rounding noise where the distance is 0.
    assert floor.pop("memorisation_ratio") < 1e-5
    assert points["floor"].pop("memorisation_ratio") == 0.0
    assert points["floor"] == floor
    fresh = metrics.ReferenceSet(evaluator, test, train)
    assert points["ceiling"] == metrics.all_scores(fresh, noise, prdc_num=40)

    # Another subset of as many training images has a floor of its own.
    other = metrics.ReferenceSet(evaluator, test, train.flip(0))
    scoring._reference_points(other, other.train_images, 64, 0, 40, tmp_path)
    assert len(list((tmp_path / "eval-cache").glob("*.json"))) == 2
