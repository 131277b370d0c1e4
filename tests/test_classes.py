"""``--classes``: keep only some classes of a labelled dataset."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import EVAL_FLAGS, tiny_train
from ganforge.data import load_dataset
from ganforge.errors import GanforgeError
from ganforge.eval import reference_set, scoring


def test_only_the_kept_classes_are_loaded_relabelled_in_the_given_order():
    everything = load_dataset("mnist", "train", train_size=600)
    kept = load_dataset("mnist", "train", train_size=600, classes="7,5")
    assert kept.classes == ["7", "5"]
    assert sorted(kept.labels.unique().tolist()) == [0, 1]
    sevens = everything.images[everything.labels == 7]
    assert torch.equal(kept.images[kept.labels == 0], sevens)
    # train_size counts kept images; the test split keeps the same classes.
    assert len(load_dataset("mnist", "train", train_size=20, classes="5,6")) == 20
    test = load_dataset("mnist", "test", classes="5,6")
    assert test.classes == ["5", "6"] and len(test) == 20


def test_the_default_training_images_are_the_kept_ones_among_the_default_ones():
    # tiny MNIST has 600 training images: the default cut (50,000) keeps all, so all 5s.
    fives = load_dataset("mnist", "train", classes="5")
    assert len(fives) == 60


@pytest.mark.parametrize(
    ("selection", "message"),
    [
        ("5,12", "mnist has no class '12'; its classes are 0 to 9"),
        ("five", "mnist has no class 'five'"),
        ("5,,6", "classes must be class names or indices separated by commas"),
        ("5,5", "classes lists 5 more than once"),
    ],
)
def test_a_bad_selection_is_one_line(selection, message):
    with pytest.raises(GanforgeError, match=message):
        load_dataset("mnist", "train", classes=selection)


def test_an_unlabelled_dataset_is_refused(tmp_path, image_folder):
    single = tmp_path / "single"
    (image_folder / "cats").rename(single)
    with pytest.raises(GanforgeError, match=r"labelled dataset; folder:.* has none"):
        load_dataset(f"folder:{single}", "train", image_shape=(3, 32, 32), classes="0")


def test_a_conditional_run_has_the_kept_classes(tmp_path, capsys):
    run = tmp_path / "run"
    flags = ["--classes", "5,6,7", "--conditioning", "projection", "--max-steps", "2"]
    assert tiny_train(run, *flags) == 0
    config = json.loads((run / "config.json").read_text())
    assert config["classes"] == "5,6,7" and config["num_classes"] == 3


def test_an_unknown_class_stops_a_run_in_one_line(tmp_path, capsys):
    assert tiny_train(tmp_path / "run", "--classes", "3,10", "--max-steps", "1") == 2
    err = capsys.readouterr().err
    assert "mnist has no class '10'" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_the_evaluation_scores_against_the_kept_classes(tmp_path):
    # The reference: the kept classes of the test and training splits alone.
    assert len(reference_set("mnist").test_images) == 100
    kept = reference_set("mnist", classes="5,6,7")
    assert len(kept.test_images) == 30 and len(kept.train_images) == 180
    # A conditional run's samples, asked for 0, 1, 2, are scored as the digits 5, 6, 7 that
    # the evaluator names: the run evaluates through to its scores.
    run = tmp_path / "run"
    flags = ["--classes", "5,6,7", "--conditioning", "acgan", "--max-steps", "2", *EVAL_FLAGS]
    assert tiny_train(run, *flags) == 0
    scores = json.loads((run / "eval.json").read_text())["samples"]
    assert 0 <= scores["conditional_accuracy"] <= 1


def test_a_conditional_runs_labels_are_scored_as_the_datasets_classes(tmp_path, monkeypatch):
    run = tmp_path / "run"
    flags = ["--classes", "7,5", "--conditioning", "projection", "--max-steps", "1"]
    assert tiny_train(run, *flags) == 0
    seen = {}

    def record(reference, images, *, labels, **options):
        seen["labels"] = labels
        raise KeyboardInterrupt  # enough: the labels are what this test is about

    monkeypatch.setattr(scoring, "all_scores", record)
    with pytest.raises(KeyboardInterrupt):
        scoring.score_source(run, num=8)
    # Samples asked for 0, 1, 0, 1, ... (balanced) are the digits 7, 5, 7, 5, ...
    assert seen["labels"].tolist() == [7, 5] * 4
