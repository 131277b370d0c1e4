"""MkDocs hook: the pictures and data files of ``benchmarks/`` become files of the site, under
the same ``benchmarks/`` folder as the benchmark pages, so that a page including
``benchmarks/*.md`` (their links are relative to that folder) finds what they link to."""

from __future__ import annotations

from pathlib import Path

from mkdocs.structure.files import File, Files

#: The kinds of files of ``benchmarks/`` that pages show or link to.
SHARED = ("*.png", "*.json")


def on_files(files: Files, config) -> Files:
    root = Path(config.config_file_path).parent
    for pattern in SHARED:
        for path in sorted((root / "benchmarks").glob(pattern)):
            uri = f"benchmarks/{path.name}"
            if files.get_file_from_path(uri) is None:
                files.append(File.generated(config, uri, abs_src_path=str(path)))
    return files
