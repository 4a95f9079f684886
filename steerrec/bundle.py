"""The bundle: the one contract between offline training and online serving.

A bundle is a directory. ``manifest.json`` lists every other file with its sha256, so a reader
can refuse a corrupt or partial bundle and name the file at fault. This module needs only numpy
and pydantic: the serving image imports it without torch.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

FORMAT_VERSION = 1
MANIFEST = "manifest.json"

# File names fixed by the contract (docs/bundle.md); other files may be added freely.
USER_IDS = "user_ids.json"
ITEM_IDS = "item_ids.json"
USER_FACTORS = "user_factors.npy"
ITEM_FACTORS = "item_factors.npy"
ITEM_BIAS = "item_bias.npy"
TRAIN_INTERACTIONS = "train_interactions.npz"
TEST_INTERACTIONS = "test_interactions.npz"
ITEM_METADATA = "item_metadata.json"
MODEL_WEIGHTS = "model_weights.npz"
SAE_ENCODER = "sae_encoder.onnx"
SAE_DECODER = "sae_decoder.onnx"
SAE_WEIGHTS = "sae_weights.npz"
SAE_CONFIG = "sae_config.json"
NEURONS = "neurons.json"
CONCEPT_TREE = "concept_tree.json"

BASE_FILES = (USER_IDS, ITEM_IDS, USER_FACTORS, ITEM_FACTORS, TRAIN_INTERACTIONS, ITEM_METADATA)
SAE_FILES = (SAE_ENCODER, SAE_DECODER, SAE_WEIGHTS, SAE_CONFIG)


class BundleError(Exception):
    """A bundle that cannot be used; the message names the directory and the file at fault."""


class FileEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    bytes: int = Field(ge=0)


class ModelInfo(BaseModel):
    model_config = ConfigDict(extra="allow")
    kind: str
    """Registry name of the base model ("mf", "ncf")."""
    dim: int = Field(gt=0)
    """Width of the user and item factor rows."""
    has_item_bias: bool
    dot_product: bool = True
    """True when ranking score = user_factors @ item_factors.T + item_bias (servable by FAISS)."""
    config: dict[str, Any] = {}


class DatasetInfo(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str
    n_users: int
    n_items: int
    n_train_interactions: int
    split: str = ""


class Manifest(BaseModel):
    model_config = ConfigDict(extra="allow")
    format_version: int
    created_at: str
    dataset: DatasetInfo
    model: ModelInfo
    files: dict[str, FileEntry]
    metrics: dict[str, Any] = {}
    """Figures keyed by stage ("train", "eval", "sae", "interpret")."""
    sae: dict[str, Any] | None = None
    """SAE summary (architecture, n_latents, prefixes) once ``steerrec sae`` has run."""


SLUG_PATTERN = r"^[a-z0-9]+(?:-[a-z0-9]+)*$"


class TopItem(BaseModel):
    model_config = ConfigDict(extra="allow")
    index: int = Field(ge=0)
    """Row in item_ids / item_factors."""
    item: str
    """Raw item id."""
    title: str
    activation: float


class ConceptShare(BaseModel):
    model_config = ConfigDict(extra="allow")
    facet: str
    """Metadata family: genre, decade, tag, popularity, ..."""
    concept: str
    share: float
    """Fraction of the neuron's top items that carry the concept."""


class NeuronRecord(BaseModel):
    """One SAE latent as ``neurons.json`` describes it (a list of these, ordered by id)."""

    model_config = ConfigDict(extra="allow")
    id: int = Field(ge=0)
    """Column of the latent in z."""
    label: str
    slug: str = Field(pattern=SLUG_PATTERN)
    """Unique, usable as a steer target: ``steer=<slug>:+2``."""
    aliases: list[Annotated[str, Field(pattern=SLUG_PATTERN)]] = []
    """More targets for this neuron, unique across every slug and alias: plain concept slugs that
    no neuron owns but this neuron's two-concept label names."""
    confidence: float = Field(ge=0.0, le=1.0)
    prefix: int = Field(ge=0)
    """Matryoshka level (0 = the first, most general prefix)."""
    status: str = "ok"
    """"ok", "low_confidence" or "dead"."""
    top_items: list[TopItem] = []
    concepts: list[ConceptShare] = []
    """The concept distribution of the top items, largest first."""
    parent: int | None = None
    """Id of the parent neuron in an earlier prefix (concept tree), if any."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, 0o644)  # mkstemp's 0600 would hide the bundle from a serving user
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, obj: Any) -> None:
    _atomic_write_bytes(Path(path), json.dumps(obj, indent=1, ensure_ascii=False).encode())


def write_npy(path: Path, array: np.ndarray) -> None:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as handle:  # a handle: np.save would append ".npy" to a path
        np.save(handle, array, allow_pickle=False)
    os.replace(tmp, path)


class BundleWriter:
    """Adds files to a bundle directory and keeps the manifest's checksums in step."""

    def __init__(self, root: str | Path, manifest: Manifest):
        self.root = Path(root)
        self.manifest = manifest

    @classmethod
    def create(cls, root: str | Path, dataset: DatasetInfo, model: ModelInfo) -> BundleWriter:
        root = Path(root)
        root.mkdir(parents=True, exist_ok=True)
        if (root / MANIFEST).exists():
            (root / MANIFEST).unlink()  # a half-rewritten bundle must not look complete
        manifest = Manifest(
            format_version=FORMAT_VERSION,
            created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            dataset=dataset,
            model=model,
            files={},
        )
        return cls(root, manifest)

    @classmethod
    def open(cls, root: str | Path) -> BundleWriter:
        """Opens an existing, verified bundle for adding files (``steerrec sae``, ``interpret``)."""
        bundle = Bundle.open(root)
        return cls(bundle.root, bundle.manifest)

    def _register(self, name: str) -> Path:
        path = self.root / name
        self.manifest.files[name] = FileEntry(sha256=sha256_file(path), bytes=path.stat().st_size)
        return path

    def add_json(self, name: str, obj: Any) -> None:
        write_json(self.root / name, obj)
        self._register(name)

    def add_array(self, name: str, array: np.ndarray) -> None:
        write_npy(self.root / name, array)
        self._register(name)

    def add_npz(self, name: str, **arrays: np.ndarray) -> None:
        tmp = self.root / f".{name}.tmp"
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays)
        os.replace(tmp, self.root / name)
        self._register(name)

    def add_file(self, name: str) -> None:
        """Registers a file already written under the bundle directory (ONNX graphs, reports)."""
        if not (self.root / name).is_file():
            raise BundleError(f"{self.root / name}: cannot register a file that does not exist")
        self._register(name)

    def remove(self, name: str) -> None:
        self.manifest.files.pop(name, None)
        (self.root / name).unlink(missing_ok=True)

    def commit(self) -> Path:
        """Writes the manifest last, so a crash mid-export leaves no manifest rather than a lie."""
        write_json(self.root / MANIFEST, self.manifest.model_dump(mode="json"))
        return self.root


class Bundle:
    """A verified, read-only bundle. ``open`` checks every checksum before anything is used."""

    def __init__(self, root: Path, manifest: Manifest):
        self.root = root
        self.manifest = manifest

    @classmethod
    def open(cls, root: str | Path, verify: bool = True) -> Bundle:
        root = Path(root)
        if not root.is_dir():
            raise BundleError(f"{root}: bundle directory does not exist")
        manifest_path = root / MANIFEST
        if not manifest_path.is_file():
            raise BundleError(f"{manifest_path}: missing; the bundle is partial or was never exported")
        try:
            manifest = Manifest.model_validate_json(manifest_path.read_bytes())
        except ValidationError as exc:
            raise BundleError(f"{manifest_path}: invalid manifest: {exc}") from exc
        if manifest.format_version != FORMAT_VERSION:
            raise BundleError(
                f"{manifest_path}: format_version {manifest.format_version} is not supported "
                f"(this steerrec reads version {FORMAT_VERSION})"
            )
        required = list(BASE_FILES) + ([ITEM_BIAS] if manifest.model.has_item_bias else [])
        for name in required:
            if name not in manifest.files:
                raise BundleError(f"{root / name}: required file is not listed in {MANIFEST}")
        bundle = cls(root, manifest)
        if verify:
            for name in manifest.files:
                bundle.verify_file(name)
        return bundle

    def verify_file(self, name: str) -> Path:
        path = self.root / name
        entry = self.manifest.files.get(name)
        if entry is None:
            raise BundleError(f"{path}: not listed in {MANIFEST}")
        if not path.is_file():
            raise BundleError(f"{path}: listed in {MANIFEST} but missing")
        if path.stat().st_size != entry.bytes:
            raise BundleError(
                f"{path}: size {path.stat().st_size} bytes, manifest says {entry.bytes}; file is corrupt or truncated"
            )
        if sha256_file(path) != entry.sha256:
            raise BundleError(f"{path}: sha256 does not match {MANIFEST}; file is corrupt")
        return path

    def has(self, name: str) -> bool:
        return name in self.manifest.files

    @property
    def has_sae(self) -> bool:
        return all(self.has(name) for name in SAE_FILES)

    def path(self, name: str) -> Path:
        if name not in self.manifest.files:
            raise BundleError(f"{self.root / name}: not in this bundle")
        return self.root / name

    def json(self, name: str) -> Any:
        path = self.path(name)
        try:
            return json.loads(path.read_bytes())
        except json.JSONDecodeError as exc:
            raise BundleError(f"{path}: invalid JSON: {exc}") from exc

    def array(self, name: str, mmap: bool = False) -> np.ndarray:
        path = self.path(name)
        try:
            return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise BundleError(f"{path}: unreadable array: {exc}") from exc

    def npz(self, name: str) -> dict[str, np.ndarray]:
        path = self.path(name)
        try:
            with np.load(path, allow_pickle=False) as data:
                return {key: data[key] for key in data.files}
        except (ValueError, OSError) as exc:
            raise BundleError(f"{path}: unreadable archive: {exc}") from exc

    def user_ids(self) -> list[str]:
        return self._ids(USER_IDS, self.manifest.dataset.n_users)

    def item_ids(self) -> list[str]:
        return self._ids(ITEM_IDS, self.manifest.dataset.n_items)

    def _ids(self, name: str, expected: int) -> list[str]:
        ids = self.json(name)
        if not isinstance(ids, list) or len(ids) != expected or not all(isinstance(x, str) for x in ids):
            raise BundleError(f"{self.root / name}: expected a list of {expected} string ids")
        if len(set(ids)) != len(ids):
            raise BundleError(f"{self.root / name}: ids are not unique")
        return ids

    def factors(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """User factors [n_users, d], item factors [n_items, d] and item bias [n_items], float32."""
        info, data = self.manifest.model, self.manifest.dataset
        users = self.array(USER_FACTORS)
        items = self.array(ITEM_FACTORS)
        for name, arr, rows in ((USER_FACTORS, users, data.n_users), (ITEM_FACTORS, items, data.n_items)):
            if arr.dtype != np.float32 or arr.shape != (rows, info.dim):
                raise BundleError(
                    f"{self.root / name}: expected float32 [{rows}, {info.dim}], got {arr.dtype} {list(arr.shape)}"
                )
        if info.has_item_bias:
            bias = self.array(ITEM_BIAS)
            if bias.dtype != np.float32 or bias.shape != (data.n_items,):
                raise BundleError(f"{self.root / ITEM_BIAS}: expected float32 [{data.n_items}]")
        else:
            bias = np.zeros(data.n_items, dtype=np.float32)
        return users, items, bias

    def train_interactions(self) -> tuple[np.ndarray, np.ndarray]:
        """The training items of every user as CSR (indptr [n_users + 1], indices)."""
        data = self.npz(TRAIN_INTERACTIONS)
        try:
            indptr, indices = data["indptr"], data["indices"]
        except KeyError as exc:
            raise BundleError(f"{self.root / TRAIN_INTERACTIONS}: missing array {exc}") from exc
        n_users, n_items = self.manifest.dataset.n_users, self.manifest.dataset.n_items
        if indptr.shape != (n_users + 1,) or indptr[-1] != len(indices) or (len(indices) and indices.max() >= n_items):
            raise BundleError(f"{self.root / TRAIN_INTERACTIONS}: CSR arrays do not match the bundle's dimensions")
        return indptr, indices

    def neurons(self) -> list[NeuronRecord]:
        """``neurons.json``, validated: ids 0..n_latents-1 in order, unique slugs and aliases."""
        path = self.path(NEURONS)
        raw = self.json(NEURONS)
        if not isinstance(raw, list):
            raise BundleError(f"{path}: expected a list of neurons")
        try:
            records = [NeuronRecord.model_validate(r) for r in raw]
        except ValidationError as exc:
            raise BundleError(f"{path}: invalid neuron record: {exc}") from exc
        n_latents = (self.manifest.sae or {}).get("n_latents", len(records))
        if [r.id for r in records] != list(range(n_latents)):
            raise BundleError(f"{path}: expected one record per latent, ids 0..{n_latents - 1} in order")
        names = Counter(name for r in records for name in (r.slug, *r.aliases))
        dup = sorted(name for name, count in names.items() if count > 1)[:5]
        if dup:
            raise BundleError(f"{path}: slugs and aliases must be unique; repeated: {dup}")
        return records

    def item_metadata(self) -> dict[str, Any]:
        meta = self.json(ITEM_METADATA)
        if not isinstance(meta, dict) or len(meta.get("title", [])) != self.manifest.dataset.n_items:
            raise BundleError(f"{self.root / ITEM_METADATA}: expected a 'title' list with one entry per item")
        return meta
