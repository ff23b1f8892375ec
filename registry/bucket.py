"""Model versions in S3-compatible storage (Railway Buckets, AWS S3, MinIO), through boto3.

s3://bucket/prefix/model_YYYYMMDD_HHMMSS/<files>, then metadata.json, uploaded last: a version
without it is still being published (or its publisher died) and is not listed.

boto3 reads the endpoint and credentials from the standard variables itself
(AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY); the region comes from
Settings (AWS_REGION), which boto3 alone would not read.
"""

from __future__ import annotations

import json
import logging
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator
from urllib.parse import urlparse

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from registry.versions import METADATA, VERSION_PATTERN, StoreUnavailable, Version

log = logging.getLogger(__name__)
S3_ERRORS = (BotoCoreError, ClientError)


class Bucket:
    """The versions under one s3:// URL."""

    def __init__(self, url: str, region: str | None = None):
        parsed = urlparse(url)
        self.url = url
        self.name = parsed.netloc
        self.prefix = parsed.path.strip("/")
        self.client = boto3.client("s3", region_name=region)

    def check(self) -> None:
        """Fail early, with the bucket named, when it cannot be reached."""
        with self._errors("reach"):
            self.client.head_bucket(Bucket=self.name)

    def publish(self, version: Version) -> None:
        """Upload a complete local version; its metadata last, so that it is listed only once whole."""
        with self._errors(f"publish {version.name} to"):
            for file in version.files:
                self.client.upload_file(str(version.path / file), self.name, self._key(version.name, file))
            self.client.put_object(Bucket=self.name, Key=self._key(version.name, METADATA),
                                   Body=json.dumps(version.metadata, indent=2, default=str).encode())
        log.info("Model published to: %s/%s", self.url.rstrip("/"), version.name)

    def names(self) -> list[str]:
        """The version names under the prefix (complete or not)."""
        names = []
        with self._errors("list"):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.name, Prefix=self._folder(), Delimiter="/")
            for page in pages:
                for common in page.get("CommonPrefixes", []):
                    name = common["Prefix"].rstrip("/").rsplit("/", 1)[-1]
                    if VERSION_PATTERN.match(name):
                        names.append(name)
        return names

    def metadata(self, name: str) -> dict | None:
        """A published version's metadata; None when it has none (incomplete) or it is not JSON."""
        with self._errors("read"):
            try:
                body = self.client.get_object(Bucket=self.name, Key=self._key(name, METADATA))["Body"].read()
            except self.client.exceptions.NoSuchKey:
                return None
        try:
            metadata = json.loads(body)
        except ValueError:
            log.warning("Ignoring model version %s in %s: its metadata is not JSON", name, self.url)
            return None
        return metadata if isinstance(metadata, dict) and isinstance(metadata.get("files"), dict) else None

    def download(self, version: Version, into: Path) -> None:
        """Every file of ``version`` into the folder ``into``."""
        with self._errors(f"download {version.name} from"):
            for file in version.files:
                self.client.download_file(self.name, self._key(version.name, file), str(into / file))

    def remove(self, name: str) -> None:
        """Delete a version, metadata first, so that it stops being listed before its files go."""
        with self._errors(f"remove {name} from"):
            self.client.delete_object(Bucket=self.name, Key=self._key(name, METADATA))
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.name, Prefix=self._folder(name))
            for page in pages:
                keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
                if keys:
                    self.client.delete_objects(Bucket=self.name, Delete={"Objects": keys})

    def _key(self, *parts: str) -> str:
        """prefix/part/..., without empty parts."""
        return "/".join(p for p in (self.prefix, *parts) if p)

    def _folder(self, name: str = "") -> str:
        """prefix/name/, the key prefix of a version (or of all of them)."""
        key = self._key(name)
        return key + "/" if key else ""

    @contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        """Turn boto3's errors into StoreUnavailable, naming the store and the variables to check."""
        try:
            yield
        except S3_ERRORS as e:
            raise StoreUnavailable(self._advice(doing, e)) from e

    def _advice(self, doing: str, error: Exception) -> str:
        return (f"Could not {doing} the model store {self.url} ({type(error).__name__}: {error}). "
                "Check MODEL_STORE_URL and AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION.")
