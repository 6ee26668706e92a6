"""The on-disk index directory: versioned snapshots with an atomic switch.

Layout:
    <index_dir>/CURRENT                 name of the live version (replaced atomically)
    <index_dir>/versions/<n>/manifest.json
    <index_dir>/versions/<n>/documents.jsonl
    <index_dir>/versions/<n>/clauses.jsonl
    <index_dir>/versions/<n>/clause_offsets.npy   byte offset of each clause's line (lazy loading)
    <index_dir>/versions/<n>/clause_keys.json     [[clause id, doc id], ...] in the same order

A write builds a complete new version beside the live one and only then points
CURRENT at it, so a crash or Ctrl-C in the middle of an ingest leaves the previous
index fully usable. Old versions are pruned after the switch.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path

import numpy as np

from ingest.schema import Clause, Document

FORMAT_VERSION = 1
KEEP_VERSIONS = 2


class IndexMissingError(Exception):
    """No index has been built in this directory yet."""

    def __init__(self, index_dir: Path) -> None:
        super().__init__(f"no index in {index_dir}: run `policyqa ingest PATH` first")


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


class IndexStore:
    def __init__(self, index_dir: Path) -> None:
        self.index_dir = Path(index_dir)
        self.versions_dir = self.index_dir / "versions"

    def current_version(self) -> str | None:
        try:
            name = (self.index_dir / "CURRENT").read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        return name if (self.versions_dir / name / "manifest.json").is_file() else None

    def exists(self) -> bool:
        return self.current_version() is not None

    def _current_folder(self) -> Path:
        version = self.current_version()
        if version is None:
            raise IndexMissingError(self.index_dir)
        return self.versions_dir / version

    def load_documents(self) -> list[Document]:
        """The live documents alone, without reading the (much larger) clause store."""
        return _read_jsonl(self._current_folder() / "documents.jsonl", Document)

    def load(self, lazy: bool = False) -> Snapshot:
        """The live version; `lazy` leaves the clauses unparsed until read (what a server wants)."""
        folder = self._current_folder()
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        lazy = lazy and (folder / "clause_offsets.npy").is_file()  # versions written before lazy loading
        return Snapshot(
            documents=_read_jsonl(folder / "documents.jsonl", Document),
            clauses=LazyClauses(folder) if lazy else _read_jsonl(folder / "clauses.jsonl", Clause),
            manifest=manifest,
            folder=folder,
        )

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
        previous = self.current_version()
        number = int(previous) + 1 if previous and previous.isdigit() else 1
        while (self.versions_dir / f"{number:06d}").exists():
            number += 1
        name = f"{number:06d}"
        staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=self.versions_dir))
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
        versions = sorted(p for p in self.versions_dir.iterdir() if p.is_dir())
        for folder in versions[:-KEEP_VERSIONS]:
            if folder.name not in keep:
                shutil.rmtree(folder, ignore_errors=True)
