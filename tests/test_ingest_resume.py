"""A real ingest killed with SIGKILL mid-embedding resumes: the rerun reuses what was encoded and
ends with the same index as an uninterrupted run."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest

from index.clause_index import ClauseIndex
from ingest.pipeline import find_files, ingest_files
from storage.store import IndexStore
from tests.conftest import HANG_S, LAWS, REPO, wait_until
from writes.commit import CHECKPOINT_CLAUSES, update_index

SUBSET_FILES = 40  # about 1,300 clauses: two checkpoints and more


def _ingest_command(subset, index_dir) -> list[str]:
    return [sys.executable, "-m", "policyqa", "ingest", str(subset), "--index-dir", str(index_dir)]


def test_a_killed_ingest_resumes_and_ends_with_the_same_index(tmp_path, encoder):
    if not LAWS.is_dir():
        pytest.skip(f"laws corpus not found at {LAWS}")
    subset = tmp_path / "subset"
    subset.mkdir()
    for path in sorted((LAWS / "education").glob("*.txt"))[:SUBSET_FILES]:
        shutil.copy(path, subset)
    env = {**os.environ, "POLICYQA_MODELS_DIR": str(REPO / "data" / "models")}

    index_dir = tmp_path / "resumed"
    proc = subprocess.Popen(_ingest_command(subset, index_dir), env=env, cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_until(lambda: proc.poll() is not None or list((index_dir / "pending").rglob("*.npz")), "a first checkpoint")
    assert proc.poll() is None, "ingest ended before its first checkpoint"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    checkpoints = len(list((index_dir / "pending").rglob("*.npz")))
    assert not IndexStore(index_dir).exists()  # nothing committed: the kill came mid-embedding

    rerun = subprocess.run(_ingest_command(subset, index_dir), env=env, cwd=tmp_path, capture_output=True,
                           text=True, timeout=2 * HANG_S)
    assert rerun.returncode == 0, rerun.stderr
    resumed = ClauseIndex.open(index_dir, encoder)
    manifest = resumed.manifest
    assert manifest["embedded_now"] <= len(resumed.clauses) - checkpoints * CHECKPOINT_CLAUSES
    assert not (index_dir / "pending").exists()

    # The same files ingested without interruption, by the model itself (the suite's shared vectors were made in
    # other batches, which int8 activations feel).
    result = ingest_files(list(find_files([subset])))
    update_index(tmp_path / "straight", encoder.uncached, result.documents, result.clauses)
    straight = ClauseIndex.open(tmp_path / "straight", encoder)
    assert [c.id for c in resumed.clauses] == [c.id for c in straight.clauses]
    assert sorted(resumed.documents) == sorted(straight.documents)
    # Vectors agree up to float noise (a clause may share its batch with other clauses in one run).
    a = np.concatenate([s.vectors() for s in resumed.segments])
    b = np.concatenate([s.vectors() for s in straight.segments])
    assert np.allclose(a, b, atol=1e-4)
    for query in ("学校安全工作职责", "教师资格认定", "学生伤害事故处理"):
        assert [h.clause.id for h in resumed.search(query, k=5)] == [h.clause.id for h in straight.search(query, k=5)]
