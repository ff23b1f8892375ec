"""One model version as a folder: written atomically, with each file's size and SHA-256, checked on read.

model_YYYYMMDD_HHMMSS/   the LoRA adapter (or, with TRAIN_FULL and before adapters, the full weights) as
                         safetensors, the tokenizer, metadata.json (written last)
.tmp-model_.../          a version being written; renamed into place when complete
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable

log = logging.getLogger(__name__)

VERSION_PATTERN = re.compile(r"^model_\d{8}_\d{6}$")
TMP_PREFIX = ".tmp-"
METADATA = "metadata.json"


class RegistryError(RuntimeError):
    """Versions cannot be stored, found or trusted; the message says what to do."""


class StoreUnavailable(RegistryError):
    """The bucket could not be reached or refused the request: try again later, or fix its variables."""


@dataclass(frozen=True)
class Version:
    name: str
    path: Path  # where the files are, or would be once fetched into the local cache
    metadata: dict

    @property
    def rejected(self) -> bool:
        """Saved for the record, but it did not pass the evaluation gate."""
        return not self.metadata.get("gate", {}).get("passed", False)

    @property
    def files(self) -> dict[str, int]:
        """File name -> size in bytes, as recorded when the version was written."""
        return self.metadata["files"]


def write_version(root: Path, name: str, write: Callable[[Path], None], metadata: dict,
                  publish: Callable[[Version], None] | None = None) -> Version:
    """Write a version through ``write(folder)``, record its files, ``publish`` it, and rename it into place.

    Publishing before the rename means a complete folder in MODEL_DIR is always in the store too.
    """
    tmp = root / f"{TMP_PREFIX}{name}"
    tmp.mkdir()
    write(tmp)
    paths = [p for p in sorted(tmp.iterdir()) if p.is_file()]
    metadata = {**metadata, "version": name, "files": {p.name: p.stat().st_size for p in paths},
                "sha256": {p.name: sha256_of(p) for p in paths}}
    (tmp / METADATA).write_text(json.dumps(metadata, indent=2, default=str))
    _fsync_tree(tmp)
    if publish is not None:
        publish(Version(name, tmp, metadata))
    os.rename(tmp, root / name)
    _fsync_dir(root)
    return Version(name, root / name, metadata)


def read_version(path: Path) -> Version | None:
    """A folder whose metadata parses and whose files have their recorded sizes; None otherwise."""
    try:
        version = Version(path.name, path, json.loads((path / METADATA).read_text()))
        intact = all((path / name).stat().st_size == size for name, size in version.files.items())
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        intact = False
    if not intact:
        log.warning("Ignoring incomplete or corrupt model folder %s", path)
        return None
    return version


def verify(folder: Path, metadata: dict) -> str | None:
    """What is wrong with ``folder`` measured against ``metadata``, or None when every file matches.

    Versions written before checksums were recorded are checked by size alone.
    """
    checksums = metadata.get("sha256", {})
    for name, size in metadata["files"].items():
        path = folder / name
        if not path.is_file():
            return f"{name} is missing"
        if path.stat().st_size != size:
            return f"{name} has {path.stat().st_size} bytes, not {size}"
        if name in checksums and sha256_of(path) != checksums[name]:
            return f"{name} does not match its SHA-256"
    return None


def sha256_of(path: Path) -> str:
    """The file's SHA-256, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def new_name(taken: Callable[[str], bool]) -> str:
    """model_YYYYMMDD_HHMMSS for now, a second later while ``taken(name)``."""
    moment = datetime.now(timezone.utc)
    while taken(name := moment.strftime("model_%Y%m%d_%H%M%S")):
        moment += timedelta(seconds=1)
    return name


def version_json(version: Version, active: Version | None) -> dict:
    """A version as the admin API and the CLI show it."""
    meta = version.metadata
    return {"name": version.name, "active": active is not None and version.name == active.name,
            "rejected": version.rejected, "run_id": meta.get("run_id"), "metrics": meta.get("metrics", {}),
            "examples": meta.get("examples", {}), "gate": meta.get("gate", {}),
            "duration_s": meta.get("duration_s"), "evaluation": meta.get("evaluation"),
            "parent": meta.get("parent"), "trained_on": meta.get("trained_on"), "weights": meta.get("weights", "full")}


def _fsync_tree(folder: Path) -> None:
    """Flush every file of ``folder``, and the folder itself, to disk."""
    for path in folder.iterdir():
        if path.is_file():
            with open(path, "rb") as f:
                os.fsync(f.fileno())
    _fsync_dir(folder)


def _fsync_dir(folder: Path) -> None:
    """Flush a directory entry, so a rename survives a power cut."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
