"""Transparent images in folders: composited onto ``--background`` with alpha blending, never
read by dropping the alpha (which trains on whatever colour lies under transparent pixels).

The expected pixels are computed here in numpy from the RGBA values the test files hold, by
``out = round((alpha · colour + (255 − alpha) · background) / 255)``, and grayscale by
ITU-R 601 luma, independently of Pillow's compositing."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import ganforge.data.folder
from conftest import tiny_train
from ganforge.cli import main
from ganforge.data import load_dataset
from ganforge.data.images import decode_image, parse_background
from ganforge.errors import GanforgeError

#: One row of pixels, RGBA: half-transparent red, fully transparent green (the colour the old
#: conversion showed), opaque blue, and a colour at an uneven alpha.
RGBA_ROW = [(255, 0, 0, 128), (0, 255, 0, 0), (0, 0, 255, 255), (10, 200, 60, 77)]
#: Grey levels with alpha, for an LA image.
LA_ROW = [(200, 128), (90, 0), (30, 255), (170, 77)]
#: A palette image: indices into PALETTE, whose entries have the alphas PALETTE_ALPHA (a PNG
#: ``tRNS`` table given as bytes: the case Pillow warns about when converted to RGB).
PALETTE = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (10, 200, 60)]
PALETTE_ALPHA = [128, 0, 255, 77]
PALETTE_ROW = [0, 1, 2, 3]

BACKGROUNDS = {"white": (255, 255, 255), "black": (0, 0, 0), "#3366cC": (51, 102, 204)}


def _rgba_pixels(name: str) -> np.ndarray:
    """The straight (not premultiplied) RGBA pixels, ``(H, W, 4)`` uint8, of test image
    ``name``."""
    if name == "rgba":
        return np.array([RGBA_ROW, RGBA_ROW[::-1]], dtype=np.uint8)
    if name == "la":
        rows = [[(g, g, g, a) for g, a in LA_ROW], [(g, g, g, a) for g, a in LA_ROW[::-1]]]
        return np.array(rows, dtype=np.uint8)
    colours = [(*PALETTE[i], PALETTE_ALPHA[i]) for i in PALETTE_ROW]
    return np.array([colours, colours[::-1]], dtype=np.uint8)


def _write(folder: Path, name: str) -> Path:
    """Save test image ``name`` (``rgba``, ``la`` or ``palette``) as a PNG in ``folder``."""
    pixels = _rgba_pixels(name)
    path = folder / f"{name}.png"
    if name == "rgba":
        Image.fromarray(pixels, "RGBA").save(path)
    elif name == "la":
        Image.fromarray(pixels[..., [0, 3]], "LA").save(path)
    else:
        indices = np.array([PALETTE_ROW, PALETTE_ROW[::-1]], dtype=np.uint8)
        image = Image.fromarray(indices, "P")
        image.putpalette([v for colour in PALETTE for v in colour])
        image.save(path, transparency=bytes(PALETTE_ALPHA))
    return path


def _expected(name: str, background: tuple[int, int, int], channels: int) -> np.ndarray:
    """``(C, H, W)`` uint8: test image ``name`` blended onto ``background`` in numpy."""
    pixels = _rgba_pixels(name).astype(np.int64)
    colour, alpha = pixels[..., :3], pixels[..., 3:]
    # (2n + 255) // 510 rounds n / 255 half up; n / 255 never ends in exactly .5.
    blended = (2 * (colour * alpha + np.array(background) * (255 - alpha)) + 255) // 510
    if channels == 1:
        luma = blended @ np.array([0.299, 0.587, 0.114])
        blended = np.floor(luma + 0.5).astype(np.int64)[..., None]
    return blended.transpose(2, 0, 1).astype(np.uint8)


@pytest.fixture
def transparent_folder(tmp_path) -> Path:
    folder = tmp_path / "icons"
    folder.mkdir()
    for name in ("la", "palette", "rgba"):
        _write(folder, name)
    return folder


def test_the_palette_file_has_a_byte_table_that_the_old_conversion_warns_about(
    transparent_folder,
):
    """The premise: this PNG is the case Pillow warns about, and converting it to RGB as
    ganforge once did shows the hidden green of the fully transparent pixels."""
    with Image.open(transparent_folder / "palette.png") as img:
        assert img.mode == "P" and isinstance(img.info["transparency"], bytes)
        with pytest.warns(UserWarning, match="Palette images with Transparency"):
            old = np.asarray(img.convert("RGB"))
    assert tuple(old[0, 1]) == (0, 255, 0)


@pytest.mark.parametrize("channels", [3, 1])
@pytest.mark.parametrize("background", list(BACKGROUNDS))
def test_transparent_pixels_are_blended_onto_the_background(
    transparent_folder, background, channels
):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Pillow's transparency warning, or any other, fails
        data = load_dataset(  # at the files' own 2 × 4, so nothing is resized
            f"folder:{transparent_folder}", image_shape=(channels, 2, 4), background=background
        )
    assert data.images.shape == (3, channels, 2, 4)
    for image, name in zip(data.images, ("la", "palette", "rgba"), strict=True):  # file order
        want = _expected(name, BACKGROUNDS[background], channels)
        assert torch.equal(image, torch.from_numpy(want)), name


def test_the_default_background_is_white(transparent_folder):
    white = load_dataset(f"folder:{transparent_folder}", image_shape=(3, 2, 4), background="white")
    default = load_dataset(f"folder:{transparent_folder}", image_shape=(3, 2, 4))
    assert torch.equal(default.images, white.images)
    # The fully transparent pixel shows the background, never the green under it.
    assert default.images[1, :, 0, 1].tolist() == [255, 255, 255]


@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_a_single_transparent_colour_is_composited_too(tmp_path, mode):
    """A grayscale or RGB PNG's ``tRNS`` chunk names one fully transparent colour."""
    pixels = np.array([[10, 99, 99, 200]], dtype=np.uint8)
    if mode == "RGB":
        pixels = np.repeat(pixels[..., None], 3, axis=2)
    Image.fromarray(pixels, mode).save(
        tmp_path / "t.png", transparency=99 if mode == "L" else (99, 99, 99)
    )
    data = load_dataset(f"folder:{tmp_path}", image_shape=(3, 1, 4), background="#102030")
    assert data.images[0, :, 0].T.tolist() == [[10] * 3, [16, 32, 48], [16, 32, 48], [200] * 3]


def test_opaque_images_read_as_before(tmp_path):
    """Images without transparency take the plain conversion, whatever the background."""
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(5, 7, 3), dtype=np.uint8)
    Image.fromarray(pixels, "RGB").save(tmp_path / "x.png")
    for channels in (1, 3):
        with Image.open(tmp_path / "x.png") as img:
            plain = np.asarray(img.convert("L" if channels == 1 else "RGB"))
        data = load_dataset(f"folder:{tmp_path}", image_shape=(channels, 5, 7), background="black")
        got = data.images[0].permute(1, 2, 0).numpy()
        assert np.array_equal(got.reshape(plain.shape), plain)


@pytest.mark.parametrize(
    ("text", "rgb"),
    [("white", (255, 255, 255)), ("black", (0, 0, 0)), ("#00ff7F", (0, 255, 127))],
)
def test_parse_background(text, rgb):
    assert parse_background(text) == rgb


@pytest.mark.parametrize("text", ["grey", "#12345", "#1234567", "#12345g", "0x123456", "", "White"])
def test_parse_background_refuses_other_text(text):
    with pytest.raises(GanforgeError, match="background must be white, black or #RRGGBB"):
        parse_background(text)


def test_load_dataset_refuses_a_bad_background_even_without_transparent_files(tmp_path):
    Image.new("RGB", (4, 4)).save(tmp_path / "opaque.png")
    with pytest.raises(GanforgeError, match="background must be"):
        load_dataset(f"folder:{tmp_path}", image_shape=(3, 4, 4), background="#fff")


def test_train_refuses_a_bad_background_in_one_line(tmp_path, transparent_folder, capsys):
    run = tmp_path / "run"
    code = main(
        ["train", "--dataset", f"folder:{transparent_folder}", "--background", "grey",
         "--quiet", "--out", str(run)]
    )  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "background must be white, black or #RRGGBB" in lines[0]
    assert not run.exists()


def test_training_and_pixel_scoring_use_the_runs_background(tmp_path, monkeypatch, capsys):
    """``train --background black`` on a folder of transparent PNGs runs, records the setting,
    and both the training images and ``eval``'s pixel-space reference are read with it."""
    folder = tmp_path / "sprites"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for i in range(8):
        Image.fromarray(rng.integers(0, 256, (30, 30, 4), dtype=np.uint8), "RGBA").save(
            folder / f"{i}.png"
        )
    seen = []

    def recording(img, channels, background="white"):
        seen.append(background)
        return decode_image(img, channels, background)

    monkeypatch.setattr(ganforge.data.folder, "decode_image", recording)
    run = tmp_path / "run"
    flags = ("--dataset", f"folder:{folder}", "--background", "black", "--batch-size", "4")
    assert tiny_train(run, *flags, "--max-steps", "1") == 0
    assert json.loads((run / "config.json").read_text())["background"] == "black"
    assert seen and set(seen) == {"black"}
    seen.clear()
    capsys.readouterr()
    assert main(["eval", str(run), "--num", "8", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["evaluator"] is None
    assert seen and set(seen) == {"black"}
