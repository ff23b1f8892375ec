"""Where versions are kept, which one is active, and how many stay.

Without MODEL_STORE_URL, versions live in MODEL_DIR (a volume). With
MODEL_STORE_URL=s3://bucket/prefix, each saved version is also published to the bucket,
which is then the list of versions, and MODEL_DIR is a local cache whose files are
checked against the bucket's checksums before a version is used. Either way the
active version is a row in the database: activating or rolling back is one UPDATE
that every worker and replica reads.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path
from typing import Callable

from sqlalchemy import Engine

from registry.bucket import Bucket
from registry.versions import (TMP_PREFIX, VERSION_PATTERN, RegistryError, Version, new_name, read_version, verify,
                               write_version)
from storage.active_version import ActivePointer

log = logging.getLogger(__name__)

LEGACY_ACTIVE_FILE = "ACTIVE"  # where the active version's name was kept before the database held it
DOWNLOAD_PREFIX = ".download-"
STALE_DOWNLOAD_S = 3600


class Registry:
    """The versions of one MODEL_DIR (and bucket), and the database's pointer to the active one."""

    def __init__(self, root: str | Path, engine: Engine, keep: int = 3, bucket: Bucket | None = None):
        self.root = Path(root)
        self.pointer = ActivePointer(engine)
        self.keep = keep
        self.bucket = bucket

    @classmethod
    def from_settings(cls, settings, engine: Engine) -> "Registry":
        """MODEL_DIR, MODEL_KEEP and MODEL_STORE_URL of a Settings or a RunConfig."""
        bucket = Bucket(settings.model_store_url, settings.aws_region) if settings.model_store_url else None
        return cls(settings.model_dir, engine, settings.model_keep, bucket)

    @property
    def location(self) -> str:
        """Where versions are listed from, for messages."""
        return self.bucket.url if self.bucket else str(self.root)

    def check_writable(self) -> None:
        """Fail early, naming the folder or bucket, when versions cannot be written."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe = self.root / f"{TMP_PREFIX}probe"
            probe.write_text("ok")
            probe.unlink()
        except OSError as e:
            raise RegistryError(f"MODEL_DIR {self.root} is not writable ({e.strerror}); "
                                "point MODEL_DIR at a writable folder or volume.") from e
        if self.bucket:
            self.bucket.check()

    def save(self, write: Callable[[Path], None], metadata: dict) -> Version:
        """Write a new version through ``write(folder)`` into MODEL_DIR, then publish it to the bucket."""
        self.check_writable()
        self._remove_leftovers()
        taken = set(self.bucket.names()) if self.bucket else set()
        name = new_name(lambda n: n in taken or (self.root / n).exists() or (self.root / f"{TMP_PREFIX}{n}").exists())
        version = write_version(self.root, name, write, metadata, self.bucket.publish if self.bucket else None)
        log.info("Model saved to: %s", version.path)
        return version

    def versions(self) -> list[Version]:
        """Complete, intact versions, newest first; anything else is ignored."""
        if self.bucket:
            found = [self.get(name) for name in self.bucket.names()]
        else:
            found = [read_version(p) for p in self._folders()]
        return sorted((v for v in found if v is not None), key=lambda v: v.name, reverse=True)

    def get(self, name: str) -> Version | None:
        """One complete version by name (its metadata; its files may still have to be fetched)."""
        if not VERSION_PATTERN.match(name):
            return None
        if self.bucket:
            metadata = self.bucket.metadata(name)
            return Version(name, self.root / name, metadata) if metadata else None
        path = self.root / name
        return read_version(path) if path.is_dir() else None

    def active_name(self) -> str | None:
        """The active version's name, from the database (one query)."""
        name, ever_set = self.pointer.get()
        if name is None and not ever_set:
            name = self._adopt_active_file()
        return name

    def active(self) -> Version | None:
        """The active version, if it is complete in the store."""
        name = self.active_name()
        return self.get(name) if name else None

    def activate(self, name: str) -> Version:
        """Make ``name`` active for every process: promote a new version or roll back to an old one."""
        version = self.get(name)
        if version is None:
            raise RegistryError(f"No intact model version {name!r} in {self.location}.")
        self.pointer.set(name)
        log.info("Model activated: %s", name)
        return version

    def local(self, version: Version) -> Path:
        """A folder holding ``version``'s files, each checked against its recorded size and SHA-256.

        With a bucket, a missing or damaged cached copy is downloaded again; without one, a
        damaged version raises: a version that fails verification is never served.
        """
        problem = verify(version.path, version.metadata)
        if problem is None:
            return version.path
        if self.bucket is None:
            raise RegistryError(f"Model version {version.name} in {self.root} failed verification: {problem}.")
        if version.path.exists():
            log.warning("Cached model version %s failed verification (%s); downloading it again", version.name, problem)
        self._fetch(version)
        return version.path

    def prune(self) -> list[str]:
        """Delete all but the newest ``keep`` versions and the active one; returns what went."""
        active = self.active_name()
        names = [v.name for v in self.versions()]
        keep = set(names[: self.keep]) | ({active} if active else set())
        removed = [name for name in names if name not in keep]
        if self.bucket:
            for name in removed:
                self.bucket.remove(name)
        return sorted(set(removed) | set(self._drop_folders(keep)))

    def _fetch(self, version: Version) -> None:
        """Download ``version`` beside the cache, verify it, and rename it into place."""
        self.root.mkdir(parents=True, exist_ok=True)
        self._remove_stale_downloads()
        tmp = self.root / f"{DOWNLOAD_PREFIX}{version.name}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        try:
            self.bucket.download(version, tmp)
            problem = verify(tmp, version.metadata)
            if problem:
                raise RegistryError(f"Model version {version.name} from {self.bucket.url} failed verification: "
                                    f"{problem}. It will not be served.")
            shutil.rmtree(version.path, ignore_errors=True)
            try:
                os.rename(tmp, version.path)
            except OSError:  # another worker put a copy in place first
                if verify(version.path, version.metadata) is not None:
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        log.info("Model version %s downloaded from %s", version.name, self.bucket.url)
        self._drop_folders(set(self.bucket.names()))  # copies of versions retention removed: the cache stays bounded

    def _folders(self) -> list[Path]:
        """The version folders in MODEL_DIR, intact or not."""
        if not self.root.is_dir():
            return []
        return [p for p in self.root.iterdir() if p.is_dir() and VERSION_PATTERN.match(p.name)]

    def _drop_folders(self, keep: set[str]) -> list[str]:
        """Delete the version folders in MODEL_DIR not named in ``keep``; returns their names."""
        dropped = [p for p in self._folders() if p.name not in keep]
        for path in dropped:
            shutil.rmtree(path, ignore_errors=True)
        return [p.name for p in dropped]

    def _adopt_active_file(self) -> str | None:
        """Carry the ACTIVE file of a volume written before the database held the pointer into the database."""
        try:
            name = (self.root / LEGACY_ACTIVE_FILE).read_text().strip()
        except OSError:
            return None
        if self.get(name) is None:
            return None
        self.pointer.set(name)
        log.info("Active model version %s taken over from %s", name, self.root / LEGACY_ACTIVE_FILE)
        return name

    def _remove_leftovers(self) -> None:
        """Half-written versions of runs that died; one run at a time holds the folder."""
        for path in self.root.glob(f"{TMP_PREFIX}*"):
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)

    def _remove_stale_downloads(self) -> None:
        """Downloads that a process killed midway left behind (a live one is never this old)."""
        for path in self.root.glob(f"{DOWNLOAD_PREFIX}*"):
            if time.time() - path.stat().st_mtime > STALE_DOWNLOAD_S:
                shutil.rmtree(path, ignore_errors=True)
