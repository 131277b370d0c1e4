"""Tests of the training configuration: presets, config files, overrides and validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from ganforge.config import (
    TrainConfig,
    build_config,
    config_from_checkpoint,
    read_config_file,
    resume_config,
)
from ganforge.errors import GanforgeError
from ganforge.presets import PRESETS


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# ---------------------------------------------------------------------------------------------
# Presets: the assignment's numbers

ASSIGNMENT = {
    # preset: (epochs, architecture, loss, init)
    "gan": (10, "mlp", "gan", "default"),
    "lsgan": (10, "mlp", "lsgan", "default"),
    "dcgan": (5, "dcgan", "gan", "xavier"),
}


@pytest.mark.parametrize("preset", ASSIGNMENT)
def test_preset_has_the_assignments_numbers(preset):
    config = build_config(preset)
    epochs, architecture, loss, init = ASSIGNMENT[preset]
    assert config.preset == preset
    assert config.batch_size == 128
    assert config.lr == 1e-3
    assert (config.beta1, config.beta2) == (0.5, 0.999)
    assert config.noise_dim == 96
    assert config.sample_every == 250
    assert config.epochs == epochs
    assert config.architecture == architecture
    assert config.loss == loss
    assert config.init == init
    assert config.dataset == "mnist"
    # Sampling, not training: only the dcgan's BatchNorm generator has statistics to stand.
    assert config.standing_stats == (preset == "dcgan")


BEYOND = {
    # preset: the settings that make it that paper's method
    "wgan": {
        "loss": "wgan", "optimizer": "rmsprop", "lr": 5e-5, "weight_clip": 0.01, "n_critic": 5,
    },
    "wgan-gp": {
        "loss": "wgan", "optimizer": "adam", "lr": 1e-4, "beta1": 0.0, "beta2": 0.9,
        "gp_weight": 10.0, "n_critic": 5, "spectral_norm": False,
    },
    "hinge-sn": {"loss": "hinge", "spectral_norm": True, "n_critic": 1, "gp_weight": 0.0},
    "cgan": {"loss": "gan", "conditioning": "projection", "num_classes": 0, "lr": 2e-4},
    "acgan": {"loss": "gan", "conditioning": "acgan", "num_classes": 0, "lr": 2e-4},
    "vae": {"loss": "elbo", "likelihood": "bernoulli", "noise": "normal", "beta1": 0.9},
    "dcgan-ema": {"loss": "gan", "ema": 0.999, "lr": 1e-3, "batch_size": 128},
    "fast": {"loss": "gan", "g_width": 0.5, "d_width": 0.5, "lr": 3e-3, "ema": 0.995},
}  # fmt: skip


@pytest.mark.parametrize("preset", BEYOND)
def test_presets_beyond_the_assignment_hold_their_papers_settings(preset):
    config = build_config(preset)
    assert config.architecture == "dcgan" and config.dataset == "mnist"
    for key, value in BEYOND[preset].items():
        assert getattr(config, key) == value, key


def test_presets_are_the_assignments_and_the_ones_beyond():
    # colour (resnet networks for colour folders): tests/test_resnet.py
    assert list(PRESETS) == [*ASSIGNMENT, *BEYOND, "colour"]


def test_default_preset_is_gan():
    assert build_config().preset == "gan"
    assert build_config(None, None, None) == build_config("gan")


# ---------------------------------------------------------------------------------------------
# Precedence: preset < file < overrides


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("run.toml", 'epochs = 3\nbatch_size = 64\nloss = "lsgan"\nlr = 2e-4\n'),
        ("run.yaml", "epochs: 3\nbatch_size: 64\nloss: lsgan\nlr: 0.0002\n"),
        ("run.yml", "epochs: 3\nbatch_size: 64\nloss: lsgan\nlr: 0.0002\n"),
    ],
)
def test_file_overrides_preset_and_flags_override_file(tmp_path, name, text):
    path = write(tmp_path, name, text)
    from_file = build_config("dcgan", path)
    assert (from_file.epochs, from_file.batch_size, from_file.loss) == (3, 64, "lsgan")
    assert from_file.lr == 2e-4
    assert from_file.architecture == "dcgan"  # untouched preset value
    assert from_file.init == "xavier"
    with_flags = build_config("dcgan", path, {"epochs": 2, "batch_size": None, "lr": None})
    assert with_flags.epochs == 2  # the override wins
    assert with_flags.batch_size == 64  # None overrides are ignored
    assert with_flags.lr == 2e-4


def test_toml_and_yaml_give_the_same_config(tmp_path):
    toml = write(tmp_path, "a.toml", 'seed = 7\ndevice = "cpu"\ndownload = true\nmax_steps = 9\n')
    yaml = write(tmp_path, "a.yaml", "seed: 7\ndevice: cpu\ndownload: true\nmax_steps: 9\n")
    assert build_config("lsgan", toml) == build_config("lsgan", yaml)
    assert build_config("lsgan", toml).max_steps == 9


def test_preset_named_in_file_is_used_without_a_preset_argument(tmp_path):
    path = write(tmp_path, "c.toml", 'preset = "dcgan"\n')
    config = build_config(None, path)
    assert (config.preset, config.architecture, config.epochs) == ("dcgan", "dcgan", 5)


def test_preset_in_overrides_beats_preset_argument():
    config = build_config("gan", None, {"preset": "dcgan"})
    assert (config.preset, config.architecture, config.init) == ("dcgan", "dcgan", "xavier")


def test_overrides_beat_preset_without_file():
    config = build_config("gan", None, {"architecture": "dcgan", "noise_dim": 8, "seed": None})
    assert (config.architecture, config.noise_dim, config.seed) == ("dcgan", 8, 0)


def test_preset_argument_and_file_preset_stay_consistent(tmp_path):
    path = write(tmp_path, "c.toml", 'preset = "dcgan"\n')
    config = build_config("gan", path)
    preset = PRESETS[config.preset]
    assert (config.architecture, config.init, config.epochs) == (
        preset["architecture"],
        preset["init"],
        preset["epochs"],
    )


def test_empty_yaml_file_is_the_preset(tmp_path):
    assert build_config("dcgan", write(tmp_path, "e.yaml", "")) == build_config("dcgan")


def test_read_config_file_returns_the_keys(tmp_path):
    path = write(tmp_path, "k.toml", 'dataset = "fashion-mnist"\ntrain_size = 100\n')
    assert read_config_file(path) == {"dataset": "fashion-mnist", "train_size": 100}


def test_config_round_trips_through_to_dict():
    config = build_config("lsgan", None, {"seed": 3})
    assert TrainConfig(**config.to_dict()) == config


# ---------------------------------------------------------------------------------------------
# Errors


def test_unknown_preset():
    with pytest.raises(GanforgeError, match="unknown preset 'began'") as info:
        build_config("began")
    assert "dcgan" in str(info.value)


@pytest.mark.parametrize(
    ("name", "text"),
    [("bad.toml", "batchsize = 64\n"), ("bad.yaml", "batchsize: 64\n")],
)
def test_unknown_file_key_names_it_and_suggests_closest(tmp_path, name, text):
    with pytest.raises(GanforgeError) as info:
        build_config("gan", write(tmp_path, name, text))
    message = str(info.value)
    assert "'batchsize'" in message
    assert "did you mean 'batch_size'" in message


def test_unknown_override_key_suggests_closest():
    with pytest.raises(GanforgeError, match="'noise_dimm'") as info:
        build_config("gan", None, {"noise_dimm": 3})
    assert "did you mean 'noise_dim'" in str(info.value)


@pytest.mark.parametrize("name", ["run.json", "run.ini", "run", "run.TOML.txt"])
def test_config_file_suffix_must_be_toml_or_yaml(tmp_path, name):
    with pytest.raises(GanforgeError, match=r"\.toml, \.yaml or \.yml"):
        build_config("gan", write(tmp_path, name, "epochs = 1\n"))


@pytest.mark.parametrize(
    ("name", "text"),
    [("bad.toml", "epochs = = 3\n"), ("bad.toml", "[unclosed\n"), ("bad.yaml", "epochs: [1\n")],
)
def test_unparsable_config_file(tmp_path, name, text):
    with pytest.raises(GanforgeError, match="not valid") as info:
        build_config("gan", write(tmp_path, name, text))
    assert name in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("text", ["- 1\n- 2\n", "just a string\n", "42\n"])
def test_yaml_file_must_hold_a_table(tmp_path, text):
    with pytest.raises(GanforgeError, match="table"):
        build_config("gan", write(tmp_path, "list.yaml", text))


def test_missing_config_file(tmp_path):
    with pytest.raises(GanforgeError, match="cannot read"):
        build_config("gan", tmp_path / "missing.toml")


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": -5}, "batch_size"),
        ({"epochs": -1}, "epochs"),
        ({"epochs": 0}, "epochs"),
        ({"lr": 0}, "lr"),
        ({"lr": -1e-3}, "lr"),
        ({"lr": 10}, "lr"),
        ({"lr": float("nan")}, "lr"),
        ({"lr": "1e-3"}, "lr"),
        ({"epochs": "10"}, "epochs"),
        ({"epochs": 2.0}, "epochs"),
        ({"batch_size": True}, "batch_size"),
        ({"noise_dim": False}, "noise_dim"),
        ({"beta1": 1.0}, "beta1"),
        ({"beta1": -0.1}, "beta1"),
        ({"beta2": 1}, "beta2"),
        ({"beta2": True}, "beta2"),
        ({"seed": -1}, "seed"),
        ({"max_steps": 0}, "max_steps"),
        ({"train_size": 0}, "train_size"),
        ({"sample_every": 0}, "sample_every"),
        ({"grid_size": 0}, "grid_size"),
        ({"keep_checkpoints": 0}, "keep_checkpoints"),
        ({"device": "tpu"}, "device"),
        ({"architecture": "stylegan"}, "architecture"),
        ({"loss": "began"}, "loss"),
        ({"init": "orthogonal"}, "init"),
        ({"download": "yes"}, "download"),
        ({"download": 1}, "download"),
        ({"dataset": "cifar-100"}, "dataset"),
        ({"dataset": 3}, "dataset"),
    ],
)
def test_invalid_value_is_named(overrides, key):
    with pytest.raises(GanforgeError) as info:
        build_config("gan", None, overrides)
    message = str(info.value)
    assert key in message
    assert repr(overrides[key]) in message
    assert len(message.splitlines()) == 1


def test_invalid_value_in_a_file(tmp_path):
    with pytest.raises(GanforgeError, match="beta1 must be a number"):
        build_config("gan", write(tmp_path, "b.toml", "beta1 = 1.0\n"))
    with pytest.raises(GanforgeError, match="epochs must be an integer"):
        build_config("gan", write(tmp_path, "e.yaml", "epochs: ten\n"))


@pytest.mark.parametrize(
    "overrides",
    [
        {"beta1": 0.0, "beta2": 0.0},
        {"lr": 9.99, "seed": 0, "max_steps": 1, "train_size": 1},
        {"device": "cpu", "dataset": "folder:."},  # an existing folder
        {"dataset": "fashion-mnist", "download": True},
        {"lr": 1, "epochs": 1, "batch_size": 1},
    ],
)
def test_boundary_values_are_accepted(overrides):
    config = build_config("gan", None, overrides)
    for key, value in overrides.items():
        assert getattr(config, key) == value


def test_several_problems_give_one_line_each():
    overrides = {"batch_size": 0, "lr": 0, "device": "tpu", "loss": "began", "epochs": True}
    with pytest.raises(GanforgeError) as info:
        build_config("gan", None, overrides)
    lines = str(info.value).splitlines()
    assert len(lines) == len(overrides)
    for key in overrides:
        assert sum(line.startswith(key) for line in lines) == 1, key


def test_preset_of_wrong_type_in_file(tmp_path):
    with pytest.raises(GanforgeError):
        build_config(None, write(tmp_path, "p.toml", 'preset = ["gan"]\n'))


def test_yaml_scientific_notation_lr(tmp_path):
    assert build_config("gan", write(tmp_path, "lr.yaml", "lr: 2e-4\n")).lr == 2e-4


def test_a_checkpoint_from_before_ema_every_keeps_its_every_iteration_ema():
    saved = TrainConfig(ema=0.99).to_dict()
    del saved["ema_every"]  # what a checkpoint of an older ganforge holds
    assert config_from_checkpoint(saved, "old.pt", "0.1").ema_every == 1
    assert config_from_checkpoint(TrainConfig().to_dict(), "new.pt", "0.2").ema_every == 10


def test_a_folder_dataset_under_the_home_folder_is_found(tmp_path, monkeypatch):
    # The shell leaves `folder:~/photos` as it is: ganforge expands the ~ itself.
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "photos").mkdir()
    assert build_config("dcgan", overrides={"dataset": "folder:~/photos"}).dataset == (
        "folder:~/photos"
    )


# ---------------------------------------------------------------------------------------------
# What a user says outranks what a preset assumed: a length given without epochs ends the run


@pytest.mark.parametrize(
    ("overrides", "epochs"),
    [
        ({"max_steps": 1000}, 0),
        ({"time_budget": 60.0}, 0),
        ({"max_steps": 1000, "epochs": 7}, 7),  # both given: whichever comes first
        ({"time_budget": 60.0, "epochs": 2}, 2),
        ({"time_budget": 0.0}, 5),  # no budget is no length
        ({"train_size": 1000}, 5),
        ({"max_steps": None, "epochs": None}, 5),  # flags not given
    ],
)
def test_a_length_given_without_epochs_replaces_the_presets_epochs(overrides, epochs):
    config = build_config("dcgan", None, {"train_size": 1000, **overrides})
    assert config.epochs == epochs
    assert config.max_steps == overrides.get("max_steps")


def test_a_length_in_the_config_file_also_replaces_the_presets_epochs(tmp_path):
    length = write(tmp_path, "length.toml", "max_steps = 500\n")
    assert build_config("dcgan", length).epochs == 0
    both = write(tmp_path, "both.yaml", "max_steps: 500\nepochs: 3\n")
    assert build_config("dcgan", both).epochs == 3
    # The file's epochs and the flags' length: the user said both.
    epochs = write(tmp_path, "epochs.toml", "epochs = 4\n")
    assert build_config("dcgan", epochs, {"max_steps": 9}).epochs == 4
    # The flags' epochs and the file's length, likewise.
    assert build_config("dcgan", length, {"epochs": 2}).epochs == 2


def test_epochs_zero_needs_a_length_to_end_the_run():
    assert build_config("gan", None, {"epochs": 0, "max_steps": 10}).epochs == 0
    assert build_config("gan", None, {"epochs": 0, "time_budget": 5.0}).epochs == 0
    with pytest.raises(GanforgeError) as info:
        build_config("gan", None, {"epochs": 0})
    message = str(info.value)
    assert message.startswith("epochs must be an integer ≥ 1, got 0;")
    assert "needs max_steps or time_budget" in message and "\n" not in message


def test_instance_noise_anneals_over_epochs_so_its_run_keeps_them():
    # The old command line still runs: its noise falls over the preset's epochs, as it did.
    kept = build_config("dcgan", None, {"instance_noise": 0.1, "max_steps": 50})
    assert (kept.epochs, kept.max_steps) == (5, 50)
    bounded = build_config("dcgan", None, {"instance_noise": 0.1, "max_steps": 50, "epochs": 2})
    assert (bounded.epochs, bounded.max_steps) == (2, 50)
    with pytest.raises(GanforgeError) as info:
        build_config("dcgan", None, {"instance_noise": 0.1, "time_budget": 9.0, "epochs": 0})
    assert str(info.value) == (
        "instance_noise falls to 0 over the run's epochs, and a run ended by max_steps or "
        "time_budget alone has none; give epochs too"
    )


def test_a_decaying_rate_falls_over_epochs_so_its_run_keeps_them():
    kept = build_config("colour", None, {"lr_decay": "linear", "max_steps": 50})
    assert (kept.epochs, kept.max_steps) == (200, 50)
    assert build_config("colour", None, {"max_steps": 50}).epochs == 0  # none: no schedule
    with pytest.raises(GanforgeError) as info:
        build_config("colour", None, {"lr_decay": "linear", "time_budget": 9.0, "epochs": 0})
    assert str(info.value) == (
        "lr_decay linear falls to 0 over the run's epochs, and a run ended by max_steps or "
        "time_budget alone has none; give epochs too"
    )


def test_a_resume_keeps_the_epochs_its_run_was_planned_with():
    saved = build_config("dcgan", None, {"train_size": 1000, "device": "cpu"})
    assert resume_config(saved, {"max_steps": 1000, "epochs": None}).epochs == 5
    assert resume_config(saved, {"time_budget": 30.0}).epochs == 5
    assert resume_config(saved, {"max_steps": 1000, "epochs": 8}).epochs == 8
    unlimited = build_config("dcgan", None, {"max_steps": 100})
    assert resume_config(unlimited, {"max_steps": 1000}).epochs == 0
    with pytest.raises(GanforgeError, match="--lr cannot change when resuming"):
        resume_config(saved, {"max_steps": 1000, "lr": 0.5})


def test_a_checkpoint_of_a_run_without_epoch_limit_loads():
    values = build_config("dcgan", None, {"max_steps": 7}).to_dict()
    assert config_from_checkpoint(values, "run.pt", "0.3").epochs == 0
