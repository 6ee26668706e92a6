"""A server process serves what another process commits to its index folder, and never a damaged version."""

from __future__ import annotations

import shutil

from backends.local import LocalBackend
from tests.conftest import SEEDS, wait_until
from writes.overrides import Overrides
from writes.service import LiveIndex


def live_index(folder, encoder, uploads) -> LiveIndex:
    return LiveIndex(LocalBackend(folder), encoder, upload_dir=uploads, overrides=Overrides(folder / "overrides.json"),
                     background_merges=False)


def test_a_version_committed_elsewhere_is_served_and_a_damaged_one_is_not(tmp_path, demo_index_dir, encoder, caplog):
    folder = tmp_path / "index"
    shutil.copytree(demo_index_dir, folder)
    server = live_index(folder, encoder, tmp_path / "up")
    assert "004_34cdbe798261bc22" in server.index.documents
    stop = server.watch_versions(interval_seconds=0.05)
    try:
        # Another process's write (here: another LiveIndex over the same folder, as `policyqa ingest` would be).
        version = live_index(folder, encoder, tmp_path / "up").remove(["004_34cdbe798261bc22"]).version
        wait_until(lambda: server.version == version, "the server to open the version committed elsewhere", every=0.05)
        assert "004_34cdbe798261bc22" not in server.index.documents

        (folder / "CURRENT").write_text("999999")  # names no version: damaged
        wait_until(lambda: "could not open the index's version 999999" in caplog.text, "the damaged version to be tried")
        assert server.version == version and server.index.search("班额标准", k=1)  # still the last good view
        tries = [r for r in caplog.records if "version 999999" in r.getMessage()]
        assert len(tries) == 1  # tried once, not again at every check
        (folder / "CURRENT").write_text(version)
        added = live_index(folder, encoder, tmp_path / "up").add_files([SEEDS["004"]]).version
        wait_until(lambda: server.version == added, "the server to open the next good version", every=0.05)
        assert "004_34cdbe798261bc22" in server.index.documents
    finally:
        stop.set()
