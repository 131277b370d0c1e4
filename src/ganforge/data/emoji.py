"""``emoji`` and ``emoji-google``: every emoji as a 64×64 colour PNG, one class per category.

The images come from the npm packages ``emoji-datasource-twitter`` (Twemoji, CC-BY 4.0) and
``emoji-datasource-google`` (Noto Emoji, Apache 2.0), version 16.0.0. A package tarball is
fetched with the ordinary npm client when one is installed, else over HTTPS from the npm
registry; its sha256 is checked against the value pinned here before a byte of it is read.
Its ``emoji.json`` gives each image's category, and the 64 px images are laid out as a folder
the folder loader reads (:func:`ganforge.data.folder.load_image_folder`)::

    <data root>/emoji/<vendor>/<category>/<code points>.png   (+ LICENSE.txt, SOURCE.txt)

so ``--dataset emoji`` and ``--dataset folder:<data root>/emoji/twitter`` read the same images,
the 9 categories as classes. Two kinds of image are left out: the skin-tone variants (1,875 of
the 3,786 images, five recolourings of each of 323 people emoji: kept, they would make "People
& Body" 60% of the data, mostly near-duplicates) and the ``Component`` category (the five
skin-tone swatches, modifiers rather than emoji). That leaves 1,906 images per vendor.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from ganforge.data.folder import load_image_folder
from ganforge.data.images import DEFAULT_BACKGROUND, ImageData, ImageShape
from ganforge.errors import GanforgeError
from ganforge.files import file_sha256

VERSION = "16.0.0"
REGISTRY = "https://registry.npmjs.org"
#: Seconds an HTTPS read may stall, and the longest ``npm pack`` may take.
HTTPS_TIMEOUT = 60
NPM_TIMEOUT = 900
#: Categories that hold no emoji of their own (skin-tone modifiers).
EXCLUDED_CATEGORIES = frozenset({"Component"})
#: An image's file name as emoji.json gives it: hex code points joined by ``-``.
_IMAGE_NAME = re.compile(r"[0-9a-f]{1,8}(?:-[0-9a-f]{1,8})*\.png")
#: Far above any real member (64 px PNGs are a few KiB, emoji.json about 1.5 MiB): a cap on
#: what is read into memory.
_MAX_MEMBER_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class EmojiVendor:
    """One vendor's images: its npm package, the tarball's pinned sha256 and its licence."""

    dataset: str
    vendor: str
    artwork: str
    licence: str
    sha256: str
    credit: str

    @property
    def package(self) -> str:
        return f"emoji-datasource-{self.vendor}"

    @property
    def tarball_name(self) -> str:
        return f"{self.package}-{VERSION}.tgz"

    @property
    def url(self) -> str:
        return f"{REGISTRY}/{self.package}/-/{self.tarball_name}"

    @property
    def source(self) -> str:
        """Where it comes from, in one line (the registry's ``source``)."""
        return (
            f"{self.artwork} ({self.licence}), 64 px images of the npm package "
            f"{self.package}@{VERSION} (emoji-data by Cal Henderson, MIT)"
        )


#: Dataset name → vendor.
VENDORS: dict[str, EmojiVendor] = {
    "emoji": EmojiVendor(
        dataset="emoji",
        vendor="twitter",
        artwork="Twemoji",
        licence="CC-BY 4.0",
        sha256="f64a530c63bca463bd8317fdc4615ce63a53a0c65018e4ce2d848aaba7a28877",
        credit="Twemoji graphics, Copyright Twitter, Inc. and other contributors "
        "(https://github.com/jdecked/twemoji, v16.0.1), licensed under the Creative Commons "
        "Attribution 4.0 International licence (CC-BY 4.0): "
        "https://creativecommons.org/licenses/by/4.0/",
    ),
    "emoji-google": EmojiVendor(
        dataset="emoji-google",
        vendor="google",
        artwork="Noto Emoji",
        licence="Apache 2.0",
        sha256="fb5fd131b362aab7a55542d2a147a79708cce0a8b1c1bbacd470172708b5c438",
        credit="Noto Emoji images, Copyright Google LLC (https://github.com/googlefonts/"
        "noto-emoji, v2.048), licensed under the Apache License 2.0: "
        "https://www.apache.org/licenses/LICENSE-2.0 (its flag images come from "
        "region-flags, in the public domain)",
    ),
}


class _Unreachable(Exception):
    """The tarball could not be fetched; the message says how each route failed."""


def category_folder(category: str) -> str:
    """A category as a folder name: lower case, ``&`` spelled out, runs of anything but
    letters and digits as one ``-`` (``"Smileys & Emotion"`` → ``"smileys-and-emotion"``)."""
    words = category.lower().replace("&", " and ")
    return re.sub(r"[^a-z0-9]+", "-", words).strip("-")


def emoji_folder(dataset: str, root: Path) -> Path:
    """Where dataset ``emoji`` or ``emoji-google`` lives under the data root ``root``:
    ``<root>/emoji/<vendor>``."""
    return root / "emoji" / VENDORS[dataset].vendor


def _npm_pack(npm: str, vendor: EmojiVendor, dest: Path) -> Path:
    cmd = [npm, "pack", f"{vendor.package}@{VERSION}", "--pack-destination", str(dest)]
    cmd += ["--quiet", "--ignore-scripts"]
    try:
        result = subprocess.run(
            cmd, cwd=dest, capture_output=True, text=True, timeout=NPM_TIMEOUT, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise _Unreachable(f"npm pack failed: {exc}") from None
    tarball = dest / vendor.tarball_name
    if result.returncode != 0 or not tarball.is_file():
        lines = (result.stderr or result.stdout).strip().splitlines() or ["no output"]
        raise _Unreachable(f"npm pack failed: {lines[-1]}")
    return tarball


def _https_download(vendor: EmojiVendor, dest: Path) -> Path:
    tarball = dest / vendor.tarball_name
    try:
        with (
            urllib.request.urlopen(vendor.url, timeout=HTTPS_TIMEOUT) as response,
            tarball.open("wb") as out,
        ):
            shutil.copyfileobj(response, out)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise _Unreachable(f"{vendor.url}: {reason}") from None
    return tarball


def download_tarball(vendor: EmojiVendor, dest: Path) -> Path:
    """Fetch ``vendor``'s package tarball into the folder ``dest``; return its path.

    ``npm pack`` when npm is on PATH (it honours the user's registry and proxy settings),
    else, or if npm fails, a plain HTTPS download from the npm registry. The tarball is not
    checked here (:func:`read_emoji_tarball` does). Raises ``_Unreachable`` saying how each
    route failed."""
    npm = shutil.which("npm")
    failures = ["npm is not installed"]
    if npm:
        try:
            return _npm_pack(npm, vendor, dest)
        except _Unreachable as exc:
            failures = [str(exc)]
    try:
        return _https_download(vendor, dest)
    except _Unreachable as exc:
        failures.append(f"the npm registry is not reachable ({exc})")
    raise _Unreachable(" and ".join(failures))


def check_sha256(path: Path, expected: str) -> None:
    """:class:`GanforgeError` unless the file ``path`` has sha256 ``expected`` (hex)."""
    found = file_sha256(path)
    if found != expected:
        raise GanforgeError(
            f"{path.name} has sha256 {found}, expected {expected}: refusing to read it "
            "(a changed or corrupt download)"
        )


def read_emoji_tarball(tarball: Path, vendor: EmojiVendor) -> tuple[list[dict], dict[str, bytes]]:
    """``emoji.json``'s entries and the 64 px PNGs (file name → bytes) of a package tarball
    whose sha256 is ``vendor.sha256``, checked before it is opened.

    The filter is a whitelist: only regular files (no links, devices or folders) named exactly
    ``package/emoji.json`` or ``package/img/<vendor>/64/<hex code points>.png``, of bounded
    size, are read, into memory; tarfile extracts nothing to disk, and the files are written
    later under names built from those hex code points, so no member can reach outside the
    dataset's folder."""
    check_sha256(tarball, vendor.sha256)
    image_prefix = f"package/img/{vendor.vendor}/64/"
    entries: object = None
    images: dict[str, bytes] = {}
    try:
        with tarfile.open(tarball, "r:gz") as tar:
            for member in tar:
                name = member.name
                wanted = name == "package/emoji.json" or (
                    name.startswith(image_prefix)
                    and _IMAGE_NAME.fullmatch(name.removeprefix(image_prefix)) is not None
                )
                if not (wanted and member.isfile() and member.size <= _MAX_MEMBER_BYTES):
                    continue
                data = tar.extractfile(member).read()
                if name == "package/emoji.json":
                    entries = json.loads(data)
                else:
                    images[name.removeprefix(image_prefix)] = data
    except (tarfile.TarError, OSError, EOFError, ValueError) as exc:
        raise GanforgeError(
            f"{tarball.name} is not a readable emoji-datasource package: {exc}"
        ) from None
    if not isinstance(entries, list):
        raise GanforgeError(f"{tarball.name} holds no package/emoji.json list of emoji")
    return [e for e in entries if isinstance(e, dict)], images


def _select(entries: list[dict], images: dict[str, bytes]) -> tuple[dict[str, str], int]:
    """Image file name → category folder for every base emoji whose image is there, and how
    many listed images are missing."""
    chosen: dict[str, str] = {}
    missing = 0
    for entry in entries:
        image, category = entry.get("image"), entry.get("category")
        if not (isinstance(image, str) and isinstance(category, str)):
            continue
        if category in EXCLUDED_CATEGORIES or not _IMAGE_NAME.fullmatch(image):
            continue
        folder = category_folder(category)
        if not folder:
            continue
        if image not in images:
            missing += 1
        else:
            chosen.setdefault(image, folder)
    return chosen, missing


def _source_text(vendor: EmojiVendor, counts: Counter, missing: int) -> str:
    lines = [
        f"{vendor.package} {VERSION}, npm registry: {vendor.url}",
        f"tarball sha256: {vendor.sha256}",
        f"images: {sum(counts.values())} of 64x64 px, one folder per emoji.json category",
        *(f"  {folder}: {n}" for folder, n in sorted(counts.items())),
        "left out: skin-tone variants (near-duplicates) and the Component category "
        "(skin-tone swatches)",
        f"listed in emoji.json but missing from the package: {missing}",
        "laid out by ganforge data fetch; the images themselves are unchanged",
    ]
    return "\n".join(lines) + "\n"


def _licence_text(vendor: EmojiVendor) -> str:
    return (
        f"The images in this folder are {vendor.artwork}, licensed under {vendor.licence}.\n\n"
        f"{vendor.credit}.\n\n"
        f"They were taken unchanged from the npm package {vendor.package} {VERSION} "
        "(emoji-data, Copyright Cal Henderson, MIT licence: https://github.com/iamcal/emoji-data) "
        "and sorted into one folder per category by ganforge.\n"
    )


def lay_out_emoji(tarball: Path, vendor: EmojiVendor, target: Path) -> Path:
    """Check and read ``tarball`` (:func:`read_emoji_tarball`) and lay its base emoji out as
    ``target/<category>/<name>.png`` plus ``LICENSE.txt`` and ``SOURCE.txt``; return
    ``target``.

    Written into a temporary sibling of ``target`` and renamed when complete: a failed or
    interrupted lay-out leaves no ``target`` (nor the temporary folder, unless the process
    is killed outright)."""
    entries, images = read_emoji_tarball(tarball, vendor)
    chosen, missing = _select(entries, images)
    if not chosen:
        raise GanforgeError(f"{tarball.name}: emoji.json names none of its 64 px images")
    parent = target.parent
    created_parent = not parent.exists()
    parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{target.name}-partial-", dir=parent))
    try:
        for image, folder in chosen.items():
            (partial / folder).mkdir(exist_ok=True)
            (partial / folder / image).write_bytes(images[image])
        counts = Counter(chosen.values())
        (partial / "SOURCE.txt").write_text(_source_text(vendor, counts, missing))
        (partial / "LICENSE.txt").write_text(_licence_text(vendor))
        try:
            os.rename(partial, target)
        except OSError:
            if not target.is_dir():
                raise
            shutil.rmtree(partial)  # another fetch finished first: keep its folder
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        if created_parent:
            with contextlib.suppress(OSError):  # left alone if something else is in it
                parent.rmdir()
        raise
    return target


#: One image in this many of each category is held out as the test split: the evaluator's test
#: images, the reference of FID and the held-out side of the memorisation check.
TEST_EVERY = 5


def ensure_emoji(dataset: str, root: Path) -> Path:
    """Make dataset ``emoji`` or ``emoji-google`` available under the data root ``root`` and
    return its folder (:func:`emoji_folder`): kept if already there, else fetched
    (:func:`download_tarball`, into a temporary folder outside ``root``) and laid out
    (:func:`lay_out_emoji`). :class:`GanforgeError` in one line when it cannot be fetched."""
    vendor = VENDORS[dataset]
    target = emoji_folder(dataset, root)
    if target.is_dir():
        return target
    with tempfile.TemporaryDirectory(prefix="ganforge-emoji-") as tmp:
        try:
            tarball = download_tarball(vendor, Path(tmp))
        except _Unreachable as exc:
            raise GanforgeError(
                f"cannot fetch {dataset}: {exc}; on a machine with either, run "
                f"`ganforge data fetch {dataset}` and copy its {vendor.vendor} folder to {target}"
            ) from None
        try:
            return lay_out_emoji(tarball, vendor, target)
        except OSError as exc:
            raise GanforgeError(f"cannot write {dataset} under {target.parent}: {exc}") from None


def fetch_emoji(root: Path, download: bool = False) -> Path:
    """``ganforge data fetch emoji``: Twemoji under ``root`` (:func:`ensure_emoji`). The npm
    registry is the images' only source, so ``download`` changes nothing."""
    return ensure_emoji("emoji", root)


def fetch_emoji_google(root: Path, download: bool = False) -> Path:
    """``ganforge data fetch emoji-google``: Noto Emoji under ``root`` (:func:`ensure_emoji`);
    ``download`` changes nothing."""
    return ensure_emoji("emoji-google", root)


def load_emoji(
    name: str,
    split: str,
    *,
    root: Path,
    download: bool,
    image_shape: ImageShape,
    background: str = DEFAULT_BACKGROUND,
) -> ImageData:
    """The ``train`` or ``test`` split of ``emoji`` or ``emoji-google`` as uint8
    ``image_shape`` ``(C, H, W)``, composited onto ``background`` (the PNGs are transparent),
    labelled by category (9 classes, in folder-name order: ``activities``,
    ``animals-and-nature``, …). The test split is every :data:`TEST_EVERY`-th image of each
    category (:meth:`ImageData.held_out`): 381 of Twemoji's 1,906. Fetched first when missing,
    as MNIST is (:func:`ensure_emoji`); read by :func:`ganforge.data.folder.load_image_folder`.
    ``--dataset folder:PATH`` on the same folder reads all the images, uncut."""
    data = load_image_folder(ensure_emoji(name, root), image_shape, background)
    data.name = name
    return data.held_out(TEST_EVERY, split)
