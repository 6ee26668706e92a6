"""The on-disk index directory: versions that list segments, switched atomically.

The folder holds CURRENT (the live version's name), versions/<n>/manifest.json (the segments of
version n with their deleted documents), segments/<m>/ (storage/segment.py), pending/ and a write
lock: docs/architecture.md, "Storage layout", lists every file.

A write publishes its new segment (written to a staging folder, then renamed), then writes a new
version listing it, and only then points CURRENT at that version, so a crash or kill -9 anywhere
leaves the previous version fully usable. Old versions beyond KEEP_VERSIONS are pruned after a
successful switch, and segments no kept version lists go with them.

A folder that holds versions but whose CURRENT is missing, empty or names a broken version
(a listed segment missing or not the size its manifest says) is *damaged*, never "no index":
every reader and writer refuses it with `IndexDamagedError` until `policyqa index repair` points
CURRENT at the newest complete version. Nothing in such a folder is deleted or overwritten
automatically.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from ingest.schema import Document
from storage.segment import DocumentKey, read_doc_keys, read_jsonl, segment_problem

FORMAT_VERSION = 2
KEEP_VERSIONS = 2
VERSION_NAME = re.compile(r"\d{6}")
COMMIT_FIELDS = ("format_version", "version", "created", "segments")  # what commit() writes into a manifest
STAGING_PREFIX = "."  # versions/.<n>-xxxx and segments/.<m>-xxxx while a commit writes them


class IndexMissingError(Exception):
    """No index has been built in this directory yet."""

    def __init__(self, index_dir: Path) -> None:
        super().__init__(f"no index in {index_dir}: run `policyqa ingest PATH` first")
        self.index_dir = index_dir


class IndexDamagedError(Exception):
    """The folder holds index versions, but the live one cannot be read as it is."""

    def __init__(self, index_dir: Path, problem: str, repairable_to: str | None = None) -> None:
        self.index_dir, self.problem, self.repairable_to = index_dir, problem, repairable_to
        if repairable_to:
            advice = (f"`policyqa index repair --index-dir {index_dir}` points CURRENT at version {repairable_to}, "
                      "the newest complete one")
        else:
            advice = "no complete version is left to repair to: restore the folder from a backup or ingest into a new one"
        super().__init__(f"the index in {index_dir} is damaged: {problem}; nothing was changed. {advice}")


class IndexFormatError(Exception):
    """An index written by an older policyqa, in a layout this one does not read."""

    def __init__(self, index_dir: Path, found: object) -> None:
        super().__init__(
            f"the index in {index_dir} was written by an older policyqa (index format {found}; this one reads "
            f"format {FORMAT_VERSION}): ingest the documents into a new folder (`policyqa ingest PATH --index-dir NEW`)"
        )


@dataclass
class Version:
    """A committed version: its manifest and the segments it lists with their deleted documents."""

    name: str
    manifest: dict

    @property
    def segments(self) -> list[tuple[str, set[str]]]:
        return [(s["name"], set(s["deleted"])) for s in self.manifest["segments"]]

    @property
    def fields(self) -> dict:
        """What the version's writer said of it (model, counts), without what `IndexStore.commit` adds."""
        return {k: v for k, v in self.manifest.items() if k not in COMMIT_FIELDS}


def read_manifest(folder: Path) -> dict:
    """A version's manifest; `ValueError` naming the file when it is missing or not JSON."""
    path = folder / "manifest.json"
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"{_short(path)} is missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{_short(path)} cannot be read ({exc})") from None
    if not isinstance(manifest, dict):
        raise ValueError(f"{_short(path)} is not a manifest")
    return manifest


def _short(path: Path) -> str:
    """versions/<n>/<file>: what an error names, without the folders above the index."""
    return "/".join(path.parts[-3:])


def version_problem(folder: Path) -> str | None:
    """Why a version folder is not a complete version, or None when it is (an older format is complete)."""
    try:
        manifest = read_manifest(folder)
    except ValueError as exc:
        return str(exc)
    if manifest.get("format_version") != FORMAT_VERSION:
        return None
    segments = folder.parent.parent / "segments"
    for entry in manifest.get("segments", []):
        problem = segment_problem(segments / str(entry.get("name")))
        if problem:
            return problem
    return None


class IndexStore:
    def __init__(self, index_dir: Path) -> None:
        self.index_dir = Path(index_dir)
        self.versions_dir = self.index_dir / "versions"
        self.segments_dir = self.index_dir / "segments"

    def version_names(self) -> list[str]:
        """Every version folder, oldest first (complete or not)."""
        return _names(self.versions_dir)

    def newest_complete_version(self) -> str | None:
        return next((v for v in reversed(self.version_names()) if version_problem(self.versions_dir / v) is None), None)

    def current_version(self) -> str | None:
        """The live version; None when no index was ever committed here.

        Raises `IndexDamagedError` when versions exist but CURRENT does not name a complete one, and
        `IndexFormatError` when it names a version an older policyqa wrote.
        """
        try:
            name = (self.index_dir / "CURRENT").read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            if not self.version_names():
                return None
            raise self._damaged("the file CURRENT is missing") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise self._damaged(f"the file CURRENT cannot be read ({exc})") from None
        if not VERSION_NAME.fullmatch(name):
            raise self._damaged("the file CURRENT is empty" if not name else f"CURRENT holds {name[:40]!r}, not a version name")
        if not (self.versions_dir / name).is_dir():
            raise self._damaged(f"CURRENT names version {name}, which is not in versions/")
        problem = version_problem(self.versions_dir / name)
        if problem:
            raise self._damaged(f"version {name} is incomplete: {problem}")
        found = read_manifest(self.versions_dir / name).get("format_version")
        if found != FORMAT_VERSION:
            raise IndexFormatError(self.index_dir, found)
        return name

    def _damaged(self, problem: str) -> IndexDamagedError:
        return IndexDamagedError(self.index_dir, problem, self.newest_complete_version())

    def exists(self) -> bool:
        """True when there is a live index; False when none was ever committed; raises when damaged."""
        return self.current_version() is not None

    def is_empty(self) -> bool:
        """No folder, or a folder with nothing in it but an unfinished first ingest's checkpoints."""
        if not self.index_dir.exists():
            return True
        return all(p.name in ("pending", ".write.lock") for p in self.index_dir.iterdir())

    def repair(self) -> str:
        """Point CURRENT at the newest complete version; returns its name. Deletes nothing."""
        version = self.newest_complete_version()
        if version is None:
            raise IndexDamagedError(self.index_dir, "no version in versions/ is complete")
        with self.writing(clean=False):
            self._point_current_at(version)
        return version

    @contextmanager
    def writing(self, clean: bool = True):
        """Hold the folder's write lock: one writer at a time, across processes.

        Under the lock no commit is under way, so the staging folders of a killed one can go, and so
        can segments that a killed commit published but no version lists (`clean`, never on a
        damaged folder: what no version lists may be what a repair needs).
        """
        self.index_dir.mkdir(parents=True, exist_ok=True)
        with (self.index_dir / ".write.lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                for folder in (self.versions_dir, self.segments_dir):
                    for stale in folder.glob(f"{STAGING_PREFIX}*") if folder.is_dir() else []:
                        shutil.rmtree(stale, ignore_errors=True)
                if clean and self.exists():
                    self._remove_unlisted_segments()
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def live(self) -> Version:
        """The live version (raises `IndexMissingError` when there is none)."""
        name = self.current_version()
        if name is None:
            raise IndexMissingError(self.index_dir)
        with self.reading(name):
            return Version(name, read_manifest(self.versions_dir / name))

    def segment_folder(self, name: str) -> Path:
        return self.segments_dir / name

    def load_documents(self) -> list[Document]:
        """The live documents alone, without reading the (much larger) clause stores."""
        return self._live_documents(lambda folder: read_jsonl(folder / "documents.jsonl", Document))

    def document_keys(self) -> list[DocumentKey]:
        """Id, source and hash of every live document, without reading document texts (what a write needs)."""
        return self._live_documents(read_doc_keys) if self.exists() else []

    def _live_documents(self, read: Callable[[Path], list]) -> list:
        """What `read(segment folder)` gives of each segment's documents, but those deleted since."""
        version = self.live()
        with self.reading(version.name):
            return [d for name, deleted in version.segments
                    for d in read(self.segments_dir / name) if d.doc_id not in deleted]

    @contextmanager
    def reading(self, version: str):
        """Turn a file of a version that cannot be read into an `IndexDamagedError` naming the version."""
        try:
            yield
        except (IndexDamagedError, IndexFormatError):
            raise
        except (OSError, ValueError, RuntimeError, KeyError, TypeError) as exc:  # faiss raises RuntimeError
            raise self._damaged(f"version {version} cannot be read: {str(exc).splitlines()[0][:200]}") from None

    @contextmanager
    def new_segment(self):
        """(staging folder, name): write a segment into the folder; it is published under the name when the block ends."""
        self.segments_dir.mkdir(parents=True, exist_ok=True)
        names = _names(self.segments_dir)
        number = int(names[-1]) + 1 if names else 1
        staging = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{number:06d}-", dir=self.segments_dir))
        try:
            yield staging, f"{number:06d}"
            os.replace(staging, self.segments_dir / f"{number:06d}")
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise

    def commit(self, segments: list[tuple[str, set[str]]], fields: dict) -> str:
        """Write a version listing `segments` (name, deleted doc ids), then switch CURRENT to it atomically."""
        self.versions_dir.mkdir(parents=True, exist_ok=True)
        previous = self.current_version()  # raises on a damaged folder: never build over it
        names = self.version_names()
        name = f"{int(names[-1]) + 1 if names else 1:06d}"
        staging = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{name}-", dir=self.versions_dir))
        manifest = {
            "format_version": FORMAT_VERSION,
            "version": name,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            **fields,
            "segments": [{"name": seg, "deleted": sorted(deleted)} for seg, deleted in segments],
        }
        try:
            path = staging / "manifest.json"
            with path.open("w", encoding="utf-8") as f:
                f.write(json.dumps(manifest, ensure_ascii=False, indent=2))
                f.flush()
                os.fsync(f.fileno())
            os.replace(staging, self.versions_dir / name)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        self._point_current_at(name)
        self._prune(keep={name, previous})
        return name

    def _point_current_at(self, name: str) -> None:
        tmp = self.index_dir / f".CURRENT.{os.getpid()}"
        with tmp.open("w", encoding="utf-8") as f:
            f.write(name)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.index_dir / "CURRENT")

    def _prune(self, keep: set[str | None]) -> None:
        for name in self.version_names()[:-KEEP_VERSIONS]:
            if name not in keep:
                shutil.rmtree(self.versions_dir / name, ignore_errors=True)
        self._remove_unlisted_segments()

    def _remove_unlisted_segments(self) -> None:
        listed: set[str] = set()
        for version in self.version_names():
            try:
                listed |= {s["name"] for s in read_manifest(self.versions_dir / version).get("segments", [])}
            except ValueError:
                return  # a version we cannot read may list anything: keep every segment
        for name in _names(self.segments_dir):
            if name not in listed:
                shutil.rmtree(self.segments_dir / name, ignore_errors=True)


def _names(folder: Path) -> list[str]:
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and VERSION_NAME.fullmatch(p.name))
