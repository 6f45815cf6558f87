"""Opening an uploaded zip safely: every entry name and size is checked from the central
directory before a single byte is decompressed.

`zipfile` never inflates an entry past the size its directory entry declares, so checking the
declared sizes bounds what extracting can produce (a zip bomb is refused, not unpacked).
"""

from __future__ import annotations

import stat
import zipfile
from dataclasses import dataclass
from typing import IO

from services.domain.datasets.report import DatasetRejected, Problem

# Folders and files that archivers add and that are never part of a dataset.
IGNORED_PARTS = {"__MACOSX", ".DS_Store", "Thumbs.db", "desktop.ini"}


@dataclass(frozen=True)
class Limits:
    max_files: int = 200_000
    max_uncompressed_bytes: int = 20 * 1024**3
    max_ratio: float = 200.0  # whole archive, uncompressed / compressed
    max_entry_ratio: float = 1000.0  # one entry (only checked above 1 MiB uncompressed)
    max_entry_bytes: int = 512 * 1024**2


LIMITS = Limits()


def _unsafe_name(name: str) -> bool:
    parts = name.replace("\\", "/").split("/")
    return (
        name.startswith(("/", "\\")) or ".." in parts or (len(name) > 1 and name[1] == ":") or "\x00" in name
    )


def _is_symlink(info: zipfile.ZipInfo) -> bool:
    return info.create_system == 3 and stat.S_ISLNK(info.external_attr >> 16)


def ignored(name: str) -> bool:
    return any(part in IGNORED_PARTS or part.startswith("._") for part in name.split("/"))


def open_archive(
    fileobj: IO[bytes], limits: Limits = LIMITS
) -> tuple[zipfile.ZipFile, list[zipfile.ZipInfo]]:
    """The zip and its file entries (directories and archiver litter left out).

    Raises DatasetRejected for: not a zip, a damaged zip, an empty archive, unsafe names
    (absolute, `..`, drive letters, symlinks), and archives beyond the limits (file count,
    total uncompressed size, compression ratio of the whole or of one entry).
    """
    fileobj.seek(0)
    if not zipfile.is_zipfile(fileobj):
        raise DatasetRejected("The file is not a zip archive: upload a .zip of your dataset")
    fileobj.seek(0)
    try:
        archive = zipfile.ZipFile(fileobj)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise DatasetRejected(f"The zip archive is damaged ({exc}): create it again and re-upload") from exc
    try:
        infos = _checked_entries(archive, limits)
    except BaseException:
        archive.close()
        raise
    return archive, infos


def _checked_entries(archive: zipfile.ZipFile, limits: Limits) -> list[zipfile.ZipInfo]:
    all_infos = archive.infolist()
    if len(all_infos) > limits.max_files:
        raise DatasetRejected(
            f"The archive has {len(all_infos)} entries; the limit is {limits.max_files}: split the dataset"
        )
    unsafe = [
        Problem(i.filename, "absolute path or '..' in the name (path traversal) is not allowed")
        for i in all_infos
        if _unsafe_name(i.filename)
    ]
    unsafe += [
        Problem(i.filename, "symbolic links are not allowed in a dataset archive")
        for i in all_infos
        if _is_symlink(i) and not _unsafe_name(i.filename)
    ]
    if unsafe:
        raise DatasetRejected("The archive has unsafe entry names (path traversal)", unsafe)
    infos = [i for i in all_infos if not i.is_dir() and not ignored(i.filename)]
    if not infos:
        raise DatasetRejected(
            "The archive is empty: zip a YOLO (data.yaml, images/, labels/), COCO (a .json and the "
            "images) or ImageFolder (one folder per class) dataset"
        )
    total = sum(i.file_size for i in infos)
    packed = max(1, sum(i.compress_size for i in infos))
    if total > limits.max_uncompressed_bytes:
        raise DatasetRejected(
            f"The archive expands to {total} bytes; the limit is {limits.max_uncompressed_bytes} bytes: "
            "split the dataset into smaller uploads"
        )
    if total / packed > limits.max_ratio:
        raise DatasetRejected(
            f"The archive expands {total / packed:.0f}x ({total} bytes from {packed}); the limit is "
            f"{limits.max_ratio:.0f}x: this looks like a zip bomb"
        )
    bombs = [
        Problem(i.filename, f"expands {i.file_size / max(1, i.compress_size):.0f}x: looks like a zip bomb")
        for i in infos
        if i.file_size > 1024**2 and i.file_size / max(1, i.compress_size) > limits.max_entry_ratio
    ]
    bombs += [
        Problem(i.filename, f"{i.file_size} bytes is larger than the {limits.max_entry_bytes} byte limit")
        for i in infos
        if i.file_size > limits.max_entry_bytes
    ]
    if bombs:
        raise DatasetRejected("The archive has entries beyond the size limits", bombs)
    return infos


LAYOUT_FOLDERS = {
    "images",
    "labels",
    "annotations",
    "train",
    "training",
    "val",
    "valid",
    "validation",
    "test",
}


def strip_common_root(names: list[str]) -> str:
    """The one wrapping folder every entry sits in ("" when there is none), e.g. "mydata/".

    A folder that is itself part of a layout (images/, train/...) or that holds images directly
    (a lone ImageFolder class) is not a wrapper.
    """
    firsts = {n.split("/", 1)[0] for n in names}
    if len(firsts) != 1 or not all("/" in n for n in names):
        return ""
    top = next(iter(firsts))
    part_of_layout = top.lower() in LAYOUT_FOLDERS or any(
        n.count("/") == 1 and "." in n.rsplit("/", 1)[1] for n in names
    )
    has_index_file = any(n.count("/") == 1 and n.lower().endswith((".yaml", ".yml", ".json")) for n in names)
    return "" if part_of_layout and not has_index_file else top + "/"
