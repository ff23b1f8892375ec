"""Model versions on the volume: written atomically, checked on read, pruned to MODEL_KEEP.

MODEL_DIR/
  model_YYYYMMDD_HHMMSS/   weights (safetensors), tokenizer, metadata.json (written last)
  .tmp-model_.../          a version being written; renamed into place when complete
  ACTIVE                   the active version's name, replaced atomically
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable

log = logging.getLogger(__name__)

VERSION_PATTERN = re.compile(r"^model_\d{8}_\d{6}$")
TMP_PREFIX = ".tmp-"
ACTIVE_FILE = "ACTIVE"
METADATA = "metadata.json"


class RegistryError(RuntimeError):
    """The model folder cannot be used; the message says what to do."""


@dataclass(frozen=True)
class Version:
    name: str
    path: Path
    metadata: dict

    @property
    def rejected(self) -> bool:
        """Saved for the record, but it did not pass the evaluation gate."""
        return not self.metadata.get("gate", {}).get("passed", False)


class Registry:
    """The versions under one MODEL_DIR."""

    def __init__(self, root: str | Path, keep: int = 3):
        self.root = Path(root)
        self.keep = keep

    @classmethod
    def from_settings(cls, settings) -> "Registry":
        """The registry at MODEL_DIR, keeping MODEL_KEEP versions (of a Settings or a RunConfig)."""
        return cls(settings.model_dir, settings.model_keep)

    def check_writable(self) -> None:
        """Fail early, with the folder named, when versions cannot be written."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe = self.root / f"{TMP_PREFIX}probe"
            probe.write_text("ok")
            probe.unlink()
        except OSError as e:
            raise RegistryError(f"MODEL_DIR {self.root} is not writable ({e.strerror}); "
                                "point MODEL_DIR at a writable folder or volume.") from e

    def save(self, write: Callable[[Path], None], metadata: dict) -> Version:
        """Write a new version through ``write(folder)``, then its metadata, then rename it into place."""
        self.check_writable()
        self._remove_leftovers()
        name = self._new_name()
        tmp = self.root / f"{TMP_PREFIX}{name}"
        tmp.mkdir()
        write(tmp)
        files = {p.name: p.stat().st_size for p in sorted(tmp.iterdir()) if p.is_file()}
        metadata = {**metadata, "version": name, "files": files}
        (tmp / METADATA).write_text(json.dumps(metadata, indent=2, default=str))
        _fsync_tree(tmp)
        os.rename(tmp, self.root / name)
        _fsync_dir(self.root)
        log.info("Model saved to: %s", self.root / name)
        return Version(name, self.root / name, metadata)

    def versions(self) -> list[Version]:
        """Complete, intact versions, newest first; anything else in the folder is ignored."""
        if not self.root.is_dir():
            return []
        found = [self._read(p) for p in self.root.iterdir() if p.is_dir() and VERSION_PATTERN.match(p.name)]
        return sorted((v for v in found if v is not None), key=lambda v: v.name, reverse=True)

    def get(self, name: str) -> Version | None:
        """One intact version by name."""
        path = self.root / name
        return self._read(path) if VERSION_PATTERN.match(name) and path.is_dir() else None

    def active(self) -> Version | None:
        """The active version, if the pointer names an intact one."""
        try:
            name = (self.root / ACTIVE_FILE).read_text().strip()
        except OSError:
            return None
        return self.get(name)

    def activate(self, name: str) -> Version:
        """Point ACTIVE at ``name``: promote a new version or roll back to an old one."""
        version = self.get(name)
        if version is None:
            raise RegistryError(f"No intact model version {name!r} in {self.root}.")
        tmp = self.root / f"{TMP_PREFIX}{ACTIVE_FILE}"
        with open(tmp, "w") as f:
            f.write(name)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.root / ACTIVE_FILE)
        _fsync_dir(self.root)
        log.info("Model activated: %s", name)
        return version

    def prune(self) -> list[str]:
        """Delete all but the newest ``keep`` versions and the active one; returns what went."""
        active = self.active()
        keep = {v.name for v in self.versions()[: self.keep]} | ({active.name} if active else set())
        removed = [p.name for p in self.root.iterdir() if p.is_dir() and VERSION_PATTERN.match(p.name)
                   and p.name not in keep]
        for name in removed:
            shutil.rmtree(self.root / name, ignore_errors=True)
        return removed

    def _read(self, path: Path) -> Version | None:
        """A version whose metadata parses and whose files all have their recorded sizes."""
        try:
            metadata = json.loads((path / METADATA).read_text())
            intact = all((path / name).stat().st_size == size for name, size in metadata["files"].items())
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            intact = False
        if not intact:
            log.warning("Ignoring incomplete or corrupt model folder %s", path)
            return None
        return Version(path.name, path, metadata)

    def _new_name(self) -> str:
        """model_YYYYMMDD_HHMMSS for now, a second later if that name is taken."""
        moment = datetime.now(timezone.utc)
        while True:
            name = moment.strftime("model_%Y%m%d_%H%M%S")
            if not (self.root / name).exists() and not (self.root / f"{TMP_PREFIX}{name}").exists():
                return name
            moment += timedelta(seconds=1)

    def _remove_leftovers(self) -> None:
        """Half-written versions of runs that died; one run at a time holds the folder."""
        for path in self.root.glob(f"{TMP_PREFIX}*"):
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)


def version_json(version: Version, active: Version | None) -> dict:
    """A version as the admin API and the CLI show it."""
    meta = version.metadata
    return {"name": version.name, "active": active is not None and version.name == active.name,
            "rejected": version.rejected, "run_id": meta.get("run_id"), "metrics": meta.get("metrics", {}),
            "examples": meta.get("examples", {}), "gate": meta.get("gate", {}),
            "duration_s": meta.get("duration_s")}


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
