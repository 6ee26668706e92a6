"""A server's encoder under concurrent searches, and writes that yield the CPU to searches (see bench/load.py)."""

from __future__ import annotations

import os
import shutil
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from api.documents import start_writer
from backends.local import LocalBackend
from embedding.encoder import load_encoder
from policyqa.settings import Settings
from tests.conftest import HANG_S, REPO, wait_until
from writes.job_store import JobStore
from writes.overrides import Overrides
from writes.service import WRITE_NICENESS, LiveIndex

QUERIES = ["班额标准", "农村寄宿生补助多少钱", "教师培训", "校车安全管理", "学前教育入园率", "义务教育均衡发展",
           "控辍保学", "生均公用经费", "随迁子女入学", "高中阶段教育普及", "教师资格认定", "学生资助"]


@pytest.fixture(scope="module")
def server_encoder():
    return load_encoder(Settings(models_dir=REPO / "data" / "models"), concurrent=True)


def test_concurrent_queries_share_one_model_call_and_each_gets_its_own_vector(server_encoder, encoder, monkeypatch):
    model = server_encoder._model
    encode, calls = model.encode, []
    first_call_held = threading.Event()
    release = threading.Event()

    def counting_encode(texts, **kwargs):
        calls.append(list(texts))
        if len(calls) == 1:  # hold the first batch until every other search is waiting
            first_call_held.set()
            assert release.wait(HANG_S)
        return encode(texts, **kwargs)

    monkeypatch.setattr(model, "encode", counting_encode)
    with ThreadPoolExecutor(len(QUERIES)) as pool:
        # The first search alone, held inside its model call; then the others arrive while it is held.
        futures = [pool.submit(server_encoder.encode_queries, [QUERIES[0]])]
        assert first_call_held.wait(HANG_S)
        futures += [pool.submit(server_encoder.encode_queries, [q]) for q in QUERIES[1:]]
        wait_until(lambda: server_encoder.batcher.waiting() == len(QUERIES) - 1, "the other searches to reach the batcher",
                   every=0.01)
        release.set()
        vectors = np.stack([f.result(HANG_S)[0] for f in futures])

    assert [len(c) for c in calls] == [1, len(QUERIES) - 1]
    alone = encoder.encode_queries(QUERIES)
    similarity = vectors @ alone.T
    # Each search got its own query's vector (int8 activations are scaled per batch: close, not equal).
    assert (similarity.argmax(axis=1) == np.arange(len(QUERIES))).all()
    assert np.diag(similarity).min() > 0.99


def test_a_failed_model_call_fails_the_searches_waiting_for_it_and_the_next_one_works(server_encoder, monkeypatch):
    model = server_encoder._model
    encode = model.encode

    def failing_once(texts, **kwargs):
        monkeypatch.setattr(model, "encode", encode)
        raise RuntimeError("model crashed")

    monkeypatch.setattr(model, "encode", failing_once)
    with pytest.raises(RuntimeError, match="model crashed"):
        server_encoder.encode_queries(["中小学课后服务"])
    assert server_encoder.encode_queries(["中小学课后服务"]).shape == (1, server_encoder.dim)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a thread's own CPU priority is a Linux feature")
def test_writes_run_at_the_lowest_cpu_priority_and_searches_do_not(tmp_path, demo_index_dir, encoder, monkeypatch):
    shutil.copytree(demo_index_dir, tmp_path / "index")
    live = LiveIndex(LocalBackend(tmp_path / "index"), encoder, upload_dir=tmp_path / "uploads",
                     overrides=Overrides(tmp_path / "overrides.json"), jobs=JobStore(tmp_path / "jobs", max_queued=4))
    priorities = []
    remove = live.remove

    def remove_noting_priority(doc_ids, missing_ok=False):
        priorities.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        return remove(doc_ids, missing_ok)

    monkeypatch.setattr(live, "remove", remove_noting_priority)
    writer = start_writer(live)
    try:
        job = live.submit_removal(["004_34cdbe798261bc22"])
        job = wait_until(lambda: (j := live.jobs.get(job.id)).is_finished and j, "the removal to finish")
    finally:
        writer.stop()
    assert job.state == "done" and job.result["deleted"] == ["004_34cdbe798261bc22"]
    assert priorities == [WRITE_NICENESS]
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) < WRITE_NICENESS
    assert "004_34cdbe798261bc22" not in live.index.documents
