"""The on-disk index directory: versioned snapshots with an atomic switch.

Layout:
    <index_dir>/CURRENT                 name of the live version (replaced atomically)
    <index_dir>/versions/<n>/manifest.json
    <index_dir>/versions/<n>/documents.jsonl
    <index_dir>/versions/<n>/clauses.jsonl
    <index_dir>/versions/<n>/clause_offsets.npy   byte offset of each clause's line (lazy loading)
    <index_dir>/versions/<n>/clause_keys.json     [[clause id, doc id], ...] in the same order
    <index_dir>/.write.lock             held by the one process writing (flock)

A write builds a complete new version beside the live one and only then points
CURRENT at it, so a crash or Ctrl-C in the middle of an ingest leaves the previous
index fully usable. The manifest lists every file of its version with its size, so a
version missing a file is recognised as incomplete. Old versions are pruned after a
successful switch, and only then.

A folder that holds versions but whose CURRENT is missing, empty or names a broken
version is *damaged*, never "no index": every reader and writer refuses it with
`IndexDamagedError` until `policyqa index repair` points CURRENT at the newest
complete version. Nothing in such a folder is deleted or overwritten automatically.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path

import numpy as np

from ingest.schema import Clause, Document

FORMAT_VERSION = 1
KEEP_VERSIONS = 2
VERSION_NAME = re.compile(r"\d{6}")
STAGING_PREFIX = "."  # versions/.<n>-xxxx while a commit writes them


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


@dataclass
class Snapshot:
    documents: list[Document]
    clauses: Sequence[Clause]
    manifest: dict
    folder: Path  # the version directory, for the files an index keeps beside the records


def _write_jsonl(path: Path, records) -> list[int]:
    """Writes one JSON line per record; returns the byte offset where each line starts."""
    offsets = []
    with path.open("wb") as f:
        for record in records:
            offsets.append(f.tell())
            f.write(record.model_dump_json().encode("utf-8"))
            f.write(b"\n")
        f.flush()
        os.fsync(f.fileno())
    return offsets


class LazyClauses(Sequence[Clause]):
    """The clause store, parsed one clause at a time as it is read.

    Opening an index must not parse every clause (a million take ~10 s through pydantic); a
    search reads a few dozen. Ids and document ids are loaded at once: the index maps need them.
    """

    def __init__(self, folder: Path) -> None:
        self._path = folder / "clauses.jsonl"
        # Line i spans ends[i] - starts[i] bytes; os.pread reads it without a shared file position,
        # so the server's threads can read clauses at the same time.
        self._starts = np.load(folder / "clause_offsets.npy")
        self._ends = np.append(self._starts[1:], self._path.stat().st_size)
        keys = json.loads((folder / "clause_keys.json").read_text(encoding="utf-8"))
        self.ids = [k[0] for k in keys]
        self.doc_ids = [k[1] for k in keys]
        self._file = self._path.open("rb")
        self._parse = lru_cache(maxsize=50_000)(self._read)

    def _read(self, row: int) -> Clause:
        start = int(self._starts[row])
        line = os.pread(self._file.fileno(), int(self._ends[row]) - start, start)
        return Clause.model_validate_json(line)

    def __len__(self) -> int:
        return len(self._starts)

    def __getitem__(self, row):
        if isinstance(row, slice):
            return [self._parse(i) for i in range(*row.indices(len(self)))]
        if row < 0:
            row += len(self)
        if not 0 <= row < len(self):
            raise IndexError(row)
        return self._parse(row)

    def __iter__(self) -> Iterator[Clause]:
        with self._path.open("rb") as f:
            for line in f:
                yield Clause.model_validate_json(line)


def _read_jsonl(path: Path, model):
    with path.open(encoding="utf-8") as f:
        return [model.model_validate_json(line) for line in f if line.strip()]


def _file_sizes(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_size for p in sorted(folder.rglob("*")) if p.is_file()}


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
    """Why a version folder is not a complete version, or None when it is."""
    try:
        manifest = read_manifest(folder)
    except ValueError as exc:
        return str(exc)
    # Versions written before the manifest listed its files: check the two record files at least.
    expected = manifest.get("files") or {"documents.jsonl": None, "clauses.jsonl": None}
    for name, size in expected.items():
        path = folder / name
        if not path.is_file():
            return f"{_short(path)} is missing"
        if size is not None and path.stat().st_size != size:
            return f"{_short(path)} has {path.stat().st_size:,} bytes, the manifest says {size:,}"
    return None


class IndexStore:
    def __init__(self, index_dir: Path) -> None:
        self.index_dir = Path(index_dir)
        self.versions_dir = self.index_dir / "versions"

    def version_names(self) -> list[str]:
        """Every version folder, oldest first (complete or not)."""
        if not self.versions_dir.is_dir():
            return []
        return sorted(p.name for p in self.versions_dir.iterdir() if p.is_dir() and VERSION_NAME.fullmatch(p.name))

    def newest_complete_version(self) -> str | None:
        return next((v for v in reversed(self.version_names()) if version_problem(self.versions_dir / v) is None), None)

    def current_version(self) -> str | None:
        """The live version; None when no index was ever committed here.

        Raises `IndexDamagedError` when versions exist but CURRENT does not name a complete one.
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
        with self.writing():
            self._point_current_at(version)
        return version

    @contextmanager
    def writing(self):
        """Hold the folder's write lock: one writer at a time, across processes.

        Under the lock no commit is under way, so the staging folders of a killed one can go.
        """
        self.index_dir.mkdir(parents=True, exist_ok=True)
        with (self.index_dir / ".write.lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                if self.versions_dir.is_dir():
                    for stale in self.versions_dir.glob(f"{STAGING_PREFIX}*"):
                        shutil.rmtree(stale, ignore_errors=True)
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _current_folder(self) -> Path:
        version = self.current_version()
        if version is None:
            raise IndexMissingError(self.index_dir)
        return self.versions_dir / version

    def load_documents(self) -> list[Document]:
        """The live documents alone, without reading the (much larger) clause store."""
        folder = self._current_folder()
        with self.reading(folder):
            return _read_jsonl(folder / "documents.jsonl", Document)

    def load(self, lazy: bool = False) -> Snapshot:
        """The live version; `lazy` leaves the clauses unparsed until read (what a server wants)."""
        folder = self._current_folder()
        lazy = lazy and (folder / "clause_offsets.npy").is_file()  # versions written before lazy loading
        with self.reading(folder):
            return Snapshot(
                documents=_read_jsonl(folder / "documents.jsonl", Document),
                clauses=LazyClauses(folder) if lazy else _read_jsonl(folder / "clauses.jsonl", Clause),
                manifest=read_manifest(folder),
                folder=folder,
            )

    @contextmanager
    def reading(self, folder: Path):
        """Turn a file of a version that cannot be read into an `IndexDamagedError` naming the version."""
        try:
            yield
        except IndexDamagedError:
            raise
        except (OSError, ValueError, RuntimeError, KeyError) as exc:  # faiss raises RuntimeError
            raise self._damaged(f"version {folder.name} cannot be read: {str(exc).splitlines()[0][:200]}") from None

    def commit(
        self,
        documents: list[Document],
        clauses: list[Clause],
        write_extra: Callable[[Path], dict] | None = None,
    ) -> str:
        """Write a complete new version, then switch CURRENT to it atomically.

        `write_extra(folder)` writes further files (vectors, indexes) into the new version and
        returns what the manifest should say about them.
        """
        self.versions_dir.mkdir(parents=True, exist_ok=True)
        previous = self.current_version()  # raises on a damaged folder: never build over it
        number = int(previous) + 1 if previous and previous.isdigit() else 1
        while (self.versions_dir / f"{number:06d}").exists():
            number += 1
        name = f"{number:06d}"
        staging = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{name}-", dir=self.versions_dir))
        try:
            _write_jsonl(staging / "documents.jsonl", documents)
            np.save(staging / "clause_offsets.npy", np.array(_write_jsonl(staging / "clauses.jsonl", clauses), dtype=np.int64))
            keys = [[c.id, c.doc_id] for c in clauses]
            (staging / "clause_keys.json").write_text(json.dumps(keys, ensure_ascii=False), encoding="utf-8")
            extra = write_extra(staging) if write_extra else {}
            manifest = {
                "format_version": FORMAT_VERSION,
                "version": name,
                "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "documents": len(documents),
                "clauses": len(clauses),
                **extra,
                "files": _file_sizes(staging),
            }
            (staging / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=2), encoding="utf-8")
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
