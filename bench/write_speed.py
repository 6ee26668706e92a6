"""Write cost through a real server: add 1 document, add 20, delete 1; idle and under the load benchmark.

    python bench/write_speed.py [--index-dir data/bench-laws] [--synthetic 1000000] [--json writes.json]

The index (`--index-dir`, built from all of laws/ with `policyqa ingest` if missing, ~10 min) is
copied into a temporary folder and served by `policyqa serve` on a free loopback port. Each write
goes through `POST /api/documents` / `DELETE /api/documents/{id}` and waits for its answer (embedding
included): that time is what the table reports. New documents are real law files of laws/other of
3,000-5,000 characters with one line added on top, so that none is a duplicate of an indexed one.

While each write runs, one probe client searches one query after another; its p95 is compared
with the same probe's p95 with no write running ("idle"). The "under load" rows repeat the
writes while bench/load.py's 50 closed-loop users search. The server's RSS is read after the
writes (15 of them, 105 documents added). `--synthetic N` repeats everything on an N-clause index replicated from the
first one (bench/synthetic.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from load import QueryMix, query_pool, server, user
from synthetic import build_synthetic

from embedding.encoder import load_encoder
from index.clause_index import ClauseIndex
from policyqa.settings import Settings

REPO = Path(__file__).resolve().parent.parent
LAWS = REPO.parent / "shared" / "corpus" / "laws"
PROBE_QUERIES = ["班额标准", "农村寄宿生补助", "教师资格认定", "校车安全", "学前教育入园", "学生资助政策", "控辍保学",
                 "义务教育均衡发展", "随迁子女入学", "课后服务"]


def new_documents(count: int, seed: int) -> list[tuple[str, bytes]]:
    files = sorted(p for p in (LAWS / "other").glob("*.txt")
                   if 3_000 <= len(p.read_text(encoding="utf-8", errors="ignore")) <= 5_000)
    random.Random(seed).shuffle(files)
    return [(f"bench-{seed}-{i}.txt", f"（写入测试 {seed}-{i}）\n".encode() + p.read_bytes())
            for i, p in enumerate(files[:count])]


class Probe:
    """One client searching back to back; latencies are kept with their start times."""

    def __init__(self, url: str) -> None:
        self.url, self.samples, self._stop = url, [], False

    async def run(self, session: aiohttp.ClientSession) -> None:
        i = 0
        while not self._stop:
            query = f"{PROBE_QUERIES[i % len(PROBE_QUERIES)]}{'的规定' * (i // len(PROBE_QUERIES) % 3)}"
            start = time.perf_counter()
            async with session.get(f"{self.url}/api/search", params={"q": query, "k": "10"}) as response:
                await response.read()
            self.samples.append((start, (time.perf_counter() - start) * 1000))
            i += 1

    def p95(self, since: float, until: float) -> float | None:
        times = [ms for t, ms in self.samples if since <= t <= until]
        return round(statistics.quantiles(times, n=20)[18], 1) if len(times) >= 20 else None

    def stop(self) -> None:
        self._stop = True


async def timed_write(session, method: str, url: str, **kwargs) -> tuple[float, dict]:
    start = time.perf_counter()
    async with session.request(method, url, **kwargs) as response:
        body = await response.json()
        if response.status != 200:
            raise SystemExit(f"{method} {url}: HTTP {response.status} {body}")
    return time.perf_counter() - start, body


async def writes(url: str, session, seed: int) -> dict:
    """Add 1, add 20, delete 1; each write's seconds."""
    def form(docs):
        data = aiohttp.FormData()
        for name, content in docs:
            data.add_field("files", content, filename=name, content_type="text/plain")
        return data

    one, added = await timed_write(session, "POST", f"{url}/api/documents?wait=true", data=form(new_documents(1, seed)))
    twenty, _ = await timed_write(session, "POST", f"{url}/api/documents?wait=true", data=form(new_documents(20, seed + 1)))
    delete, _ = await timed_write(session, "DELETE", f"{url}/api/documents/{added['documents'][0]['doc_id']}")
    return {"add_1_s": round(one, 2), "add_20_s": round(twenty, 2), "delete_1_s": round(delete, 2)}


async def measure(url: str, pid: int, users: int, load_seconds: float) -> dict:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as session:
        probe = Probe(url)
        probing = asyncio.ensure_future(probe.run(session))
        await asyncio.sleep(20)
        idle_from = time.perf_counter()
        await asyncio.sleep(20)
        idle_p95 = probe.p95(idle_from, time.perf_counter())
        rows = {"idle": {}}
        for seed in (1, 3, 5):  # three rounds of writes: the medians are reported
            start = time.perf_counter()
            result = await writes(url, session, seed)
            result["probe_p95_during_ms"] = probe.p95(start, time.perf_counter())
            for key, value in result.items():
                rows["idle"].setdefault(key, []).append(value)
            await asyncio.sleep(5)  # let the merge job (if any) finish outside the measured writes
        probe.stop()
        await probing
        rows["idle"]["probe_p95_idle_ms"] = idle_p95
        if users:
            mix = QueryMix(query_pool(REPO / "eval" / "sets" / "policy.jsonl"), 0)
            until = time.perf_counter() + load_seconds
            load = asyncio.ensure_future(asyncio.gather(*(user(session, url, mix, None, until) for _ in range(users))))
            await asyncio.sleep(10)
            rows["under load"] = {}
            for seed in (7, 9):
                result = await writes(url, session, seed)
                for key, value in result.items():
                    rows["under load"].setdefault(key, []).append(value)
            await load
        rss = int(next(line.split()[1] for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                       if line.startswith("VmRSS")))
        rows["rss_mb_after_writes"] = round(rss / 1024)
    return rows


def ensure_laws_index(index_dir: Path) -> None:
    if (index_dir / "CURRENT").is_file():
        return
    print(f"building {index_dir} from {LAWS} (about 10 min)", flush=True)
    subprocess.run([sys.executable, "-m", "policyqa", "ingest", str(LAWS), "--index-dir", str(index_dir)],
                   cwd=REPO, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index-dir", type=Path, default=REPO / "data" / "bench-laws")
    parser.add_argument("--synthetic", type=int, nargs="*", default=[])
    parser.add_argument("--users", type=int, default=50, help="load benchmark users for the 'under load' rows (0: none)")
    parser.add_argument("--load-seconds", type=float, default=240)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    ensure_laws_index(args.index_dir)
    results = {}
    with tempfile.TemporaryDirectory(prefix="policyqa-writes-") as tmp:
        indexes = {"laws": args.index_dir}
        if args.synthetic:
            source = ClauseIndex.open(args.index_dir, load_encoder(Settings(models_dir=REPO / "data" / "models")))
            for size in args.synthetic:
                folder = Path(tmp) / f"synthetic-{size}"
                seconds = build_synthetic(source, size, folder)
                print(f"synthetic {size:,}-clause index built in {seconds:.0f} s", flush=True)
                indexes[f"synthetic {size:,}"] = folder
        for label, folder in indexes.items():
            clauses = json.loads((folder / "versions" / (folder / "CURRENT").read_text().strip()
                                  / "manifest.json").read_text())["clauses"]
            log = Path(tmp) / f"serve-{label.replace(' ', '-')}.log"
            with server(folder, REPO, {}, log) as (url, pid):
                rows = asyncio.run(measure(url, pid, args.users, args.load_seconds))
            results[label] = {"clauses": clauses, **rows}
            print(label, json.dumps(results[label], ensure_ascii=False), flush=True)
    print_table(results)
    if args.json:
        args.json.write_text(json.dumps(results, ensure_ascii=False, indent=1), encoding="utf-8")


def print_table(results: dict) -> None:
    print(f"\n{'index':22} {'phase':11} {'add 1 s':>8} {'add 20 s':>9} {'delete 1 s':>10} {'probe p95 idle/during ms':>26}")
    for label, rows in results.items():
        for phase in ("idle", "under load"):
            row = rows.get(phase)
            if not row:
                continue
            med = {k: statistics.median(v) for k, v in row.items() if isinstance(v, list) and all(x is not None for x in v)}
            probe = f"{row.get('probe_p95_idle_ms', '-')} / {med.get('probe_p95_during_ms', '-')}" if phase == "idle" else "-"
            print(f"{label + ' (' + format(rows['clauses'], ',') + ')':22} {phase:11} {med['add_1_s']:8.2f} "
                  f"{med['add_20_s']:9.2f} {med['delete_1_s']:10.2f} {probe:>26}")
        print(f"{'':22} server RSS after the writes: {rows['rss_mb_after_writes']} MB")


if __name__ == "__main__":
    main()
