"""``--standing-stats``: a BatchNorm generator sampled with statistics of its current weights."""

from __future__ import annotations

import json

import torch

from conftest import tiny_train
from ganforge import sample
from ganforge.checkpoint_file import checkpoint_paths, load_checkpoint
from ganforge.steplog import read_step_log


def batchnorm_means(state: dict) -> list[torch.Tensor]:
    return [value for name, value in state.items() if name.endswith("running_mean")]


def final_fid(run) -> float:
    return json.loads((run / "eval.json").read_text())["samples"]["fid"]


def test_standing_statistics_change_what_samples_not_what_trains(tmp_path):
    plain, standing = tmp_path / "plain", tmp_path / "standing"
    flags = ["--preset", "dcgan", "--train-size", "320", "--max-steps", "6", "--seed", "0"]
    flags += ["--final-eval-num", "64"]
    assert tiny_train(plain, *flags, "--no-standing-stats") == 0
    assert tiny_train(standing, *flags) == 0  # the dcgan preset's default

    def losses(run):
        return [r["d_loss"] for r in read_step_log(run / "metrics.jsonl") if "d_loss" in r]

    assert losses(plain) == losses(standing)  # the same training, step for step
    old, new = (load_checkpoint(checkpoint_paths(run)[-1]) for run in (plain, standing))
    for a, b in zip(old["generator"].values(), new["generator"].values(), strict=True):
        assert torch.equal(a, b)  # G itself, running statistics included, is untouched
    assert "generator_standing" not in old
    re_estimated = batchnorm_means(new["generator_standing"])
    running = batchnorm_means(new["generator"])
    assert all(not torch.equal(a, b) for a, b in zip(re_estimated, running, strict=True))
    # Samples and scores use the standing copy.
    assert not torch.equal(sample(plain, 8, seed=1), sample(standing, 8, seed=1))
    plain_fid, standing_fid = (final_fid(run) for run in (plain, standing))
    assert plain_fid > 0 and standing_fid > 0 and plain_fid != standing_fid


def test_without_batchnorm_or_with_an_ema_there_is_nothing_to_keep(tmp_path):
    for preset in ("gan", "dcgan-ema"):
        run = tmp_path / preset
        flags = ["--preset", preset, "--max-steps", "3", "--standing-stats"]
        assert tiny_train(run, *flags, "--final-eval-num", "0") == 0
        assert "generator_standing" not in load_checkpoint(checkpoint_paths(run)[-1])
