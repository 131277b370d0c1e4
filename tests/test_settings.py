"""Every training setting declared once (``ganforge.config.setting``), and what is generated
from the declarations: the ``ganforge train`` flags, the single-field checks of ``validate``,
``RESUMABLE_CHANGES``, the VAE's refusals and the documentation's reference table."""

from __future__ import annotations

import argparse
from dataclasses import fields
from pathlib import Path

import pytest

from ganforge.cli import build_parser
from ganforge.config import (
    KINDS,
    REFERENCE_COMMAND,
    RESUMABLE_CHANGES,
    SETTING_GROUPS,
    SETTINGS,
    Setting,
    TrainConfig,
    build_config,
    settings,
    settings_reference_markdown,
)
from ganforge.errors import GanforgeError

REFERENCE = Path(__file__).resolve().parents[1] / "docs" / "reference" / "train-settings.md"

#: What a checkpoint's config holds: no name, type or default may change (the checkpoints of
#: earlier versions must keep loading, and a run's meaning with them).
FIELDS = {
    "preset": ("str", "gan"), "description": ("str", ""), "architecture": ("str", "mlp"),
    "loss": ("str", "gan"), "likelihood": ("str", "bernoulli"), "init": ("str", "default"),
    "g_width": ("float", 1.0), "d_width": ("float", 1.0), "dataset": ("str", "mnist"),
    "data_root": ("str | None", None), "download": ("bool", False),
    "train_size": ("int | None", None), "train_subset": ("str", "first"), "epochs": ("int", 10),
    "max_steps": ("int | None", None), "time_budget": ("float", 0.0),
    "batch_size": ("int", 128), "optimizer": ("str", "adam"), "lr": ("float", 1e-3),
    "lr_g": ("float | None", None), "lr_d": ("float | None", None),
    "lr_decay": ("str", "none"), "beta1": ("float", 0.5),
    "beta2": ("float", 0.999), "n_critic": ("int", 1), "gp_weight": ("float", 0.0),
    "r1_gamma": ("float", 0.0), "weight_clip": ("float", 0.0), "spectral_norm": ("bool", False),
    "ema": ("float", 0.0), "ema_every": ("int", 10), "standing_stats": ("bool", False),
    "augment": ("str", "none"), "augment_policy": ("str", "color,translation,cutout"),
    "ada_target": ("float", 0.6), "ada_images": ("int", 100_000), "xflip": ("bool", False),
    "real_label": ("float", 1.0), "flip_labels": ("float", 0.0),
    "instance_noise": ("float", 0.0), "conditioning": ("str", "none"),
    "num_classes": ("int", 0), "noise_dim": ("int", 96), "noise": ("str", "uniform"),
    "image_size": ("int", 0), "channels": ("int", 0), "seed": ("int", 0),
    "device": ("str", "auto"), "out": ("str | None", None), "sample_every": ("int", 250),
    "grid_size": ("int", 64), "keep_checkpoints": ("int", 2), "checkpoint_every": ("int", 0),
    "on_nan": ("str", "stop"), "eval_every": ("int", 0), "eval_num": ("int", 2000),
    "final_eval_num": ("int", 10_000), "tensorboard": ("bool", False), "wandb": ("bool", False),
    "precision": ("str", "auto"), "compile": ("bool", False), "sync_bn": ("bool", False),
    "background": ("str", "white"), "classes": ("str | None", None),
    "init_from": ("str | None", None), "init_partial": ("bool", False), "freeze_d": ("int", 0),
    "accumulate": ("int", 1),
}  # fmt: skip


def test_the_fields_keep_their_names_types_defaults_and_order():
    found = {f.name: (str(f.type), f.default) for f in fields(TrainConfig)}
    assert list(found) == list(FIELDS)
    for name, (kind, default) in FIELDS.items():
        assert found[name] == (kind, default), name
        assert type(found[name][1]) is type(default), name  # 0.0 stays a float in to_dict


def test_every_field_is_a_declared_setting():
    assert list(SETTINGS) == [f.name for f in fields(TrainConfig)]
    for declared in SETTINGS.values():
        assert isinstance(declared, Setting)
        assert declared.default == FIELDS[declared.name][1]
        assert declared.kind in KINDS
    assert settings() == tuple(SETTINGS.values())


def test_every_flag_has_help_a_group_and_a_placeholder():
    flags = [s for s in SETTINGS.values() if s.group is not None]
    assert {s.name for s in SETTINGS.values()} - {s.name for s in flags} == {
        "preset",
        "description",
    }
    for declared in flags:
        assert declared.group in SETTING_GROUPS, declared.name
        assert declared.help.strip(), declared.name
        assert declared.kind == "bool" or declared.metavar, declared.name
    for group in SETTING_GROUPS:
        assert settings(group), f"group {group} has no setting"
    assert {s.metavar for s in SETTINGS.values() if s.kind == "path"} == {"PATH"}
    assert [s.name for s in SETTINGS.values() if s.kind == "path"] == [
        "data_root",
        "out",
        "init_from",
    ]


def test_what_none_and_zero_mean_is_declared_where_they_are_values():
    for declared in SETTINGS.values():
        assert declared.optional == (declared.unset != ""), declared.name
        if declared.kind in ("int", "float") and declared.choices is None:
            assert declared.low is not None, declared.name
            assert declared.kind == "int" or declared.high is not None, declared.name


def test_resumable_changes_are_how_long_and_how_watched_a_run_is():
    assert set(RESUMABLE_CHANGES) == {
        "device", "data_root", "download", "epochs", "max_steps", "time_budget",
        "sample_every", "keep_checkpoints", "checkpoint_every", "eval_every", "eval_num",
        "final_eval_num", "tensorboard", "wandb", "compile", "on_nan",
    }  # fmt: skip
    assert len(RESUMABLE_CHANGES) == len(set(RESUMABLE_CHANGES))


#: A GAN-only setting → a value other than the one a VAE keeps.
GAN_ONLY = {
    "conditioning": "projection",
    "n_critic": 5,
    "gp_weight": 10.0,
    "r1_gamma": 1.0,
    "weight_clip": 0.01,
    "spectral_norm": True,
    "augment": "diffaugment",
    "real_label": 0.9,
    "flip_labels": 0.1,
    "instance_noise": 0.1,
    "lr_g": 1e-3,
    "lr_d": 1e-3,
    "freeze_d": 1,
}


def test_the_gan_only_settings_are_the_declared_ones():
    assert {s.name for s in SETTINGS.values() if s.gan_only} == set(GAN_ONLY)


@pytest.mark.parametrize("key", GAN_ONLY)
def test_a_vae_refuses_each_gan_only_setting_naming_the_value_it_takes(key):
    neutral = SETTINGS[key].vae_neutral
    build_config("vae", overrides={key: neutral} if neutral is not None else {})
    with pytest.raises(GanforgeError) as info:
        build_config("vae", overrides={key: GAN_ONLY[key]})
    assert str(info.value) == f"{key} is a GAN option; loss elbo (a VAE) takes {key} {neutral}"


def _edges(declared: Setting) -> tuple[list, list]:
    """Values just inside and just outside ``declared``'s range: (accepted, refused)."""
    low, high = declared.low, declared.high
    if declared.kind == "int":
        accepted, refused = [low], [low - 1]
        if high is not None:
            accepted, refused = [*accepted, high], [*refused, high + 1]
        return accepted, refused
    accepted = [low if declared.low_inclusive else low + 1e-9]
    refused = [low - 1e-6 if declared.low_inclusive else low, float("nan")]
    accepted.append(high if declared.high_inclusive else high - 1e-6)
    refused.append(high + 1e-6 if declared.high_inclusive else high)
    return accepted, refused


NUMBERS = [s.name for s in SETTINGS.values() if s.kind in ("int", "float") and s.choices is None]


@pytest.mark.parametrize("key", NUMBERS)
def test_each_number_is_checked_against_its_declared_range(key):
    accepted, refused = _edges(SETTINGS[key])
    for value in accepted:
        assert getattr(build_config("gan", None, {key: value}), key) == value
    for value in refused:
        with pytest.raises(GanforgeError) as info:
            build_config("gan", None, {key: value})
        lines = str(info.value).splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"{key} must be "), lines
        assert f"got {value!r}" in lines[0]


#: A value of the wrong type for each kind of setting.
WRONG_TYPE = {"int": 2.5, "float": "fast", "bool": "yes", "str": 3, "path": 3}


@pytest.mark.parametrize("key", [name for name in SETTINGS if name != "preset"])
def test_a_value_of_the_wrong_type_is_one_line_naming_the_setting(key):
    value = WRONG_TYPE[SETTINGS[key].kind]
    with pytest.raises(GanforgeError) as info:
        build_config("gan", None, {key: value})
    lines = str(info.value).splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{key} must be "), lines
    assert repr(value) in lines[0]


def test_choices_come_from_the_declaration_and_the_registries():
    architectures = ("mlp", "dcgan", "radford", "resnet", "module:callable")
    assert SETTINGS["architecture"].options() == architectures
    assert "cifar10" in SETTINGS["dataset"].options()  # the list the old comment had missed
    with pytest.raises(GanforgeError, match="unknown dataset 'cifar100'"):
        build_config(overrides={"dataset": "cifar100"})
    message = "channels must be 0 (the architecture's or dataset's), 1 or 3, got 2"
    with pytest.raises(GanforgeError, match=message.replace("(", r"\(").replace(")", r"\)")):
        build_config(overrides={"channels": 2})
    with pytest.raises(GanforgeError, match="final_eval_num must be 0 \\(skip\\) or an integer"):
        build_config(overrides={"final_eval_num": 3})
    assert build_config(overrides={"final_eval_num": 0}).final_eval_num == 0


# ---------------------------------------------------------------------------------------------
# The parser


def _train_parser() -> argparse.ArgumentParser:
    commands = next(
        action
        for action in build_parser()._actions
        if isinstance(action, argparse._SubParsersAction)
    )
    return commands.choices["train"]


def test_the_flags_are_generated_with_their_kinds_and_default_none():
    parser = _train_parser()
    by_flag = {a.option_strings[0]: a for a in parser._actions if a.option_strings}
    for declared in SETTINGS.values():
        if declared.group is None:
            assert declared.flag not in by_flag or declared.name == "preset"
            continue
        action = by_flag[declared.flag]
        assert action.default is None, declared.flag  # presets and --resume see "not given"
        if declared.kind == "bool":
            assert isinstance(action, argparse.BooleanOptionalAction)
        else:
            assert action.type is KINDS[declared.kind], declared.flag
            assert (
                action.metavar
                == {"int": "N", "float": "X", "str": "NAME", "path": "PATH"}[declared.kind]
            )
    args = parser.parse_args(["--lr-g", "2e-4", "--no-xflip", "--train-size", "7"])
    assert (args.lr_g, args.xflip, args.train_size, args.epochs) == (2e-4, False, 7, None)


def test_each_settings_group_is_an_argument_group_holding_its_flags():
    groups = {group.title: group for group in _train_parser()._action_groups}
    assert [title for title in groups if title in SETTING_GROUPS] == list(SETTING_GROUPS)
    run_flags = {a.option_strings[0] for a in groups["run"]._group_actions}
    assert run_flags == {"--preset", "--config", "--quiet", "--resume", "--trust-code"}
    for group in SETTING_GROUPS:
        flags = [a.option_strings[0] for a in groups[group]._group_actions]
        assert flags == [s.flag for s in settings(group)]


def test_the_help_shows_values_and_defaults_from_the_declaration():
    lr = SETTINGS["lr"].help_line()
    assert lr.endswith("[a number > 0 and < 10; default 0.001; other presets: 5e-05, 0.0001, "
                       "0.0002, 0.003]")  # fmt: skip
    assert SETTINGS["eval_every"].help_line().endswith("[an integer ≥ 0; default 500]")
    assert SETTINGS["xflip"].help_line().endswith("[default off]")
    assert SETTINGS["max_steps"].help_line().endswith("default no limit]")


# ---------------------------------------------------------------------------------------------
# The reference table of the documentation


def test_the_reference_file_is_what_the_declarations_generate():
    assert REFERENCE.read_text(encoding="utf-8") == settings_reference_markdown(), (
        f"{REFERENCE.relative_to(REFERENCE.parents[2])} is out of date: run {REFERENCE_COMMAND}"
    )


def test_the_reference_has_a_table_per_group_and_a_row_per_flag():
    text = settings_reference_markdown()
    sections = text.split("\n## ")[1:]
    assert [section.splitlines()[0] for section in sections] == list(SETTING_GROUPS)
    for section, group in zip(sections, SETTING_GROUPS, strict=True):
        rows = [line for line in section.splitlines() if line.startswith("| `--")]
        assert len(rows) == len(settings(group))
        for row, declared in zip(rows, settings(group), strict=True):
            assert row.startswith(f"| `{declared.flag}"), row
            assert row.count(" | ") == 5, row  # six cells: a | in a cell would add one
            assert (" | yes | " in row) == declared.resumable, row
