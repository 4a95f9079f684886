"""Fetches the official dataset archives, checking each against a pinned checksum before use.

Redistribution is forbidden for every dataset here, so the project ships none: users download
from the publisher. The checksum is verified before anything is extracted, extraction refuses
members that would land outside the target folder, and the folder appears only once complete
(it is built under a temporary name and renamed), so an interrupted run never looks finished.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal

from tqdm import tqdm

from .schema import DataError

_MARKER = ".steerrec-download"
"""Written into a finished folder; holds the verified archive checksum."""


@dataclass(frozen=True)
class DownloadSpec:
    url: str
    checksum: str
    """Of the downloaded file: ``sha256:<hex>`` or ``md5:<hex>``."""
    archive: Literal["zip", "zip-flat", "file"]
    """``zip``: members already sit under ``directory/``; ``zip-flat``: members at the archive
    root, extracted into ``directory``; ``file``: kept as is inside ``directory``."""
    directory: str
    """Folder under the destination that the loader takes."""
    dataset: str
    """Name in ``steerrec.training.data.LOADERS``."""
    license: str


DOWNLOADS: dict[str, DownloadSpec] = {
    # GroupLens also publishes md5 c4d9eecfca2ab87c1945afe126590906 for this archive.
    "ml-1m": DownloadSpec(
        url="https://files.grouplens.org/datasets/movielens/ml-1m.zip",
        checksum="sha256:a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20",
        archive="zip",
        directory="ml-1m",
        dataset="ml-1m",
        license="GroupLens: research use only, no redistribution or commercial use; cite Harper & Konstan 2015.",
    ),
    "ml-100k": DownloadSpec(
        url="https://files.grouplens.org/datasets/movielens/ml-100k.zip",
        checksum="md5:0e33842e24a9c977be4e0107933c0723",
        archive="zip",
        directory="ml-100k",
        dataset="ml-100k",
        license="GroupLens: research use only, no redistribution or commercial use; cite Harper & Konstan 2015.",
    ),
    "lastfm-2k": DownloadSpec(
        url="https://files.grouplens.org/datasets/hetrec2011/hetrec2011-lastfm-2k.zip",
        checksum="sha256:6738f48195667ff03caaab4d32ca9a3133d8cc026b7c3cdaf6ce1010e913c59c",
        archive="zip-flat",
        directory="lastfm-2k",
        dataset="lastfm-2k",
        license="Last.fm via HetRec 2011: non-commercial use only; cite Last.fm and Cantador et al., RecSys 2011.",
    ),
    "amazon-fashion-5core": DownloadSpec(
        url="https://jmcauley.ucsd.edu/data/amazon_v2/categoryFilesSmall/AMAZON_FASHION_5.json.gz",
        checksum="sha256:5c73b65d0a5cc5dcd905b75a87086c37513ff0d023b02b381e729ab8a9541cb6",
        archive="file",
        directory="amazon-fashion-5core",
        dataset="amazon",
        license="UCSD (Ni, Li & McAuley, EMNLP 2019): research use.",
    ),
}


def _spec(name: str) -> DownloadSpec:
    if name not in DOWNLOADS:
        raise DataError(f"unknown download {name!r}; choose one of: {', '.join(DOWNLOADS)}")
    return DOWNLOADS[name]


def dataset_for_download(name: str) -> str:
    """The loader (``load_dataset`` name) that reads what ``download(name)`` returns."""
    return _spec(name).dataset


def _fetch(url: str, target: Path, algorithm: str, progress: bool) -> str:
    """Streams ``url`` into ``target``, returning the hex digest of what was written."""
    digest = hashlib.new(algorithm)
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(target, "wb") as out:
            size = response.headers.get("Content-Length")
            total = int(size) if size else None
            with tqdm(total=total, unit="B", unit_scale=True, desc=url.rsplit("/", 1)[-1], disable=not progress) as bar:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
    except (urllib.error.URLError, OSError) as e:
        raise DataError(f"{url}: download failed ({e})") from None
    return digest.hexdigest()


def _extract_zip(archive: Path, into: Path) -> None:
    """Extracts after checking every member, so a hostile archive writes nothing."""
    try:
        with zipfile.ZipFile(archive) as zf:
            for member in zf.namelist():
                parts = PurePosixPath(member.replace("\\", "/"))
                if parts.is_absolute() or ".." in parts.parts or (parts.parts and ":" in parts.parts[0]):
                    raise DataError(f"{archive}: refusing member {member!r}, which would land outside {into}")
            zf.extractall(into)
    except zipfile.BadZipFile as e:
        raise DataError(f"{archive}: not a valid zip archive ({e})") from None


def _unpack(spec: DownloadSpec, downloaded: Path, staging: Path, file_name: str) -> Path:
    """Lays the download out under ``staging``; returns the folder that becomes the dataset's."""
    if spec.archive == "file":
        shutil.move(downloaded, staging / file_name)
        return staging
    _extract_zip(downloaded, staging)
    if spec.archive == "zip-flat":
        return staging
    root = staging / spec.directory
    if not root.is_dir():
        raise DataError(f"{spec.url}: the archive has no {spec.directory}/ folder")
    return root


def download(name: str, dest: Path, progress: bool = True) -> Path:
    """Downloads dataset ``name`` under ``dest`` and returns the folder its loader takes.

    A folder left by an earlier verified download is returned as is; any other existing
    folder of that name is left alone and reported, never overwritten.
    """
    spec = _spec(name)
    algorithm, _, expected = spec.checksum.partition(":")
    if algorithm not in ("sha256", "md5") or not expected:
        raise DataError(f"download {name!r}: checksum {spec.checksum!r} is not 'sha256:<hex>' or 'md5:<hex>'")
    dest = Path(dest)
    target = dest / spec.directory
    marker = target / _MARKER
    if target.exists():
        if marker.is_file() and marker.read_text().strip() == spec.checksum:
            return target
        raise DataError(
            f"{target} already exists but is not a verified download of {name}; remove it or load it directly"
        )
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest, prefix=f".{spec.directory}.") as work:
        downloaded = Path(work) / "download"
        actual = _fetch(spec.url, downloaded, algorithm, progress)
        if actual != expected.lower():
            downloaded.unlink()
            raise DataError(
                f"{spec.url}: checksum mismatch, expected {algorithm}:{expected.lower()}, got {algorithm}:{actual};"
                " the file was deleted"
            )
        staging = Path(work) / "staging"
        staging.mkdir()
        root = _unpack(spec, downloaded, staging, spec.url.rsplit("/", 1)[-1])
        (root / _MARKER).write_text(spec.checksum + "\n")
        root.rename(target)
    return target
