"""Load: N concurrent users searching for D seconds, idle and while uploads are being written.

    python bench/load.py [--users 50] [--duration 60] [--index-dir data/eval-index] [--json load.json]
    python bench/load.py --url http://127.0.0.1:8000          # a running server (loopback only)
    python bench/load.py --variant before@/tmp/base --variant now   # servers from two source trees, in turns

Each user is a closed loop with no think time (as in issue #11): send a search, read the answer,
send the next. Queries are those of eval/sets/policy.jsonl, each in 25 phrasings (`请问…`,
`…有什么要求`), uniformly drawn, so the server's 1,024-query cache answers only a share of them
(reported); modes, k and a few year filters vary. The write phase runs the same load while one
client uploads real law files (laws/other, not in the index) through POST /api/documents one
after another, and reports how long each write took.

Without --url the script copies the index's live version into a temporary folder, starts
`policyqa serve` on a free loopback port over the copy (writes never touch --index-dir), and stops
it at the end. The client is one aiohttp process; its own CPU use is reported beside the server's.
Per variant it also reports the server's CPU per search, the share of the machine's limit that
throughput reaches (cores / CPU per search), each server process's memory (PSS, after the idle
phase), and after each write how long until every server process answered with its version.
Compare 1 and N processes with `--variant "1 worker:POLICYQA_WORKERS=1" --variant "2 workers:POLICYQA_WORKERS=2"`.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import os
import random
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import numpy as np

from embedding.encoder import QUERY_CACHE_SIZE
from ingest.normalize import normalize_for_matching

REPO = Path(__file__).resolve().parent.parent
PREFIXES = ["", "请问", "关于", "我想了解", "想问一下"]
SUFFIXES = ["", "?", "的规定", "有什么要求", "是怎么规定的"]
MODES = [("hybrid", 0.7), ("dense", 0.15), ("lexical", 0.15)]
KS = [(10, 0.6), (5, 0.2), (20, 0.2)]
YEAR_FILTER_SHARE = 0.05
WARMUP_S = 10.0  # default of --warmup
REQUEST_TIMEOUT_S = 30.0
MAX_REQUESTS = 200_000  # per phase, whatever the duration
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def query_pool(path: Path) -> list[str]:
    bases = [json.loads(line)["query"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [f"{p}{q.rstrip('?？')}{s}" if s else f"{p}{q}" for q in bases for p in PREFIXES for s in SUFFIXES]


def _pick(rng: random.Random, weighted):
    return rng.choices([v for v, _ in weighted], weights=[w for _, w in weighted])[0]


class QueryMix:
    """Random searches, and the share the server's query cache answers (the same LRU, simulated here)."""

    def __init__(self, pool: list[str], seed: int) -> None:
        self.pool = pool
        self.rng = random.Random(seed)
        self.cache: OrderedDict[str, None] = OrderedDict()
        self.encoded = 0
        self.hits = 0

    def next(self) -> dict:
        q = self.rng.choice(self.pool)
        params = {"q": q, "mode": _pick(self.rng, MODES), "k": _pick(self.rng, KS)}
        if self.rng.random() < YEAR_FILTER_SHARE:
            params["year"] = self.rng.randint(2012, 2024)
        if params["mode"] != "lexical":
            self._touch(normalize_for_matching(q))
        return params

    def _touch(self, key: str) -> None:
        self.encoded += 1
        if key in self.cache:
            self.hits += 1
            self.cache.move_to_end(key)
        else:
            self.cache[key] = None
            if len(self.cache) > QUERY_CACHE_SIZE:
                self.cache.popitem(last=False)

    def reset_counts(self) -> None:
        self.encoded = self.hits = 0


@dataclass
class Phase:
    name: str
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    starts: list[float] = field(default_factory=list)
    answered_by: list[int] = field(default_factory=list)  # the server process of each latency
    errors: dict[str, int] = field(default_factory=dict)
    writes: list[dict] = field(default_factory=list)
    client_cpu: float = 0.0
    server_cpu: float | None = 0.0  # None: a server this script did not start
    machine_cpu: float = 0.0
    cache_hit_share: float | None = None
    memory_pss_mb: dict[int, float] | None = None  # server process -> PSS, at the end of the phase

    def summary(self) -> dict:
        lat = np.array(self.latencies) * 1000
        pct = (lambda p: round(float(np.percentile(lat, p)), 1)) if len(lat) else (lambda p: None)
        out = {
            "phase": self.name, "seconds": round(self.seconds, 1), "requests": len(lat),
            "errors": sum(self.errors.values()), "error_kinds": self.errors,
            "req_per_s": round(len(lat) / self.seconds, 1) if self.seconds else 0.0,
            "p50_ms": pct(50), "p95_ms": pct(95), "p99_ms": pct(99),
            "client_cpu_cores": round(self.client_cpu / self.seconds, 2) if self.seconds else None,
            "server_cpu_cores": round(self.server_cpu / self.seconds, 2) if self.server_cpu is not None else None,
            "other_cpu_cores": round((self.machine_cpu - (self.server_cpu or 0) - self.client_cpu) / self.seconds, 2),
            "query_cache_hit_share": self.cache_hit_share,
            "server_cpu_ms_per_search": round(1000 * self.server_cpu / len(lat), 2) if self.server_cpu and len(lat) else None,
            "memory_pss_mb": self.memory_pss_mb,
            "per_process": self._per_process(lat),
        }
        if out["server_cpu_ms_per_search"]:  # the machine's limit: every core busy with searches
            out["share_of_limit"] = round(out["req_per_s"] * out["server_cpu_ms_per_search"] / 1000 / os.cpu_count(), 2)
        if self.writes:
            during = self._during_writes()
            out["writes"] = self.writes
            out["write_seconds"] = [w["seconds"] for w in self.writes]
            out["requests_during_a_write"] = len(during)
            out["p95_ms_during_a_write"] = round(float(np.percentile(during, 95)), 1) if len(during) else None
            lags = [w["seen_everywhere_s"] for w in self.writes if w.get("seen_everywhere_s") is not None]
            out["version_seen_everywhere_s_max"] = max(lags) if lags else None
        return out

    def _per_process(self, lat: np.ndarray) -> dict[int, dict]:
        """Requests, p50 and p95 of each server process that answered: how evenly the workers share the load."""
        by = np.array(self.answered_by)
        return {int(pid): {"requests": int((by == pid).sum()), "p50_ms": round(float(np.percentile(lat[by == pid], 50)), 1),
                           "p95_ms": round(float(np.percentile(lat[by == pid], 95)), 1)}
                for pid in sorted(set(self.answered_by))}

    def _during_writes(self) -> np.ndarray:
        """Latencies (ms) of the searches that started while an upload was being written."""
        spans = [(w["start"], w["start"] + w["seconds"]) for w in self.writes]
        return np.array([lat * 1000 for lat, t in zip(self.latencies, self.starts, strict=True)
                         if any(a <= t <= b for a, b in spans)])


def machine_busy_seconds() -> float:
    """CPU seconds all processes used (every core), from /proc/stat: what is left is other jobs' noise."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / CLOCK_TICKS  # all but idle and iowait


def server_processes(pid: int) -> list[int]:
    """The server's process and all its descendants (its workers), from /proc."""
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, ValueError):
            continue
        found.append(p)
    return found


def server_cpu_seconds(pid: int | None) -> float:
    """User + system CPU of the server's processes."""
    total = 0.0
    for p in server_processes(pid) if pid is not None else []:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return total


def server_pss_mb(pid: int) -> dict[int, float]:
    """Proportional set size of each server process (pages shared by N processes count 1/N in each): their sum
    is what the server costs the machine's memory."""
    pss = {}
    for p in server_processes(pid):
        try:
            line = next(x for x in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines() if x.startswith("Pss:"))
        except (OSError, StopIteration):
            continue
        pss[p] = round(int(line.split()[1]) / 1024, 1)
    return pss


async def seen_everywhere(url: str, version: str, processes: int, start: float) -> float:
    """Seconds from `start` until `processes` server processes have answered /healthz with `version` or a later
    one (each on a new connection: the kernel hands new connections to any worker)."""
    serving: set[int] = set()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as probe:
        while len(serving) < processes:
            async with probe.get(f"{url}/healthz") as response:
                body = await response.json()
                if body.get("version") and body["version"] >= version:
                    serving.add(int(response.headers["x-policyqa-process"]))
    return round(time.perf_counter() - start, 3)


async def user(session: aiohttp.ClientSession, url: str, mix: QueryMix, phase: Phase | None, until: float) -> None:
    while time.perf_counter() < until and (phase is None or len(phase.latencies) < MAX_REQUESTS):
        params = mix.next()
        start = time.perf_counter()
        error = None
        try:
            async with session.get(f"{url}/api/search", params=params) as response:
                body = await response.read()
                process = int(response.headers.get("x-policyqa-process", 0))
                if response.status != 200:
                    error = f"HTTP {response.status}"
                elif not body.startswith(b'{"query"'):
                    error = "unexpected body"
        except (aiohttp.ClientError, TimeoutError) as exc:
            error = type(exc).__name__
        if phase is not None:
            if error:
                phase.errors[error] = phase.errors.get(error, 0) + 1
            else:
                phase.latencies.append(time.perf_counter() - start)
                phase.starts.append(start)
                phase.answered_by.append(process)


async def uploader(url: str, files: list[Path], phase: Phase, until: float,
                   uploaded: list[str], processes: int) -> None:
    """One write after another until the window closes: each a real law file, waited for, and its version
    looked for in every one of `processes` server processes."""
    for path in files:
        if time.perf_counter() >= until:
            return
        form = aiohttp.FormData()
        form.add_field("files", path.read_bytes(), filename=f"bench-{path.parent.name}-{path.name}")
        start = time.perf_counter()
        # A connection of its own per upload (as a browser's after a pause): a pooled one idle past the
        # server's keep-alive may be closed just as the upload is sent on it.
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as uploads, \
                uploads.post(f"{url}/api/documents", data=form, params={"wait": "true"},
                             timeout=aiohttp.ClientTimeout(total=600)) as response:
            body = await response.json()
        seconds = time.perf_counter() - start
        if response.status != 200:
            raise SystemExit(f"upload of {path} answered {response.status}: {body}")
        uploaded += [d["doc_id"] for d in body["documents"]]
        lag = await seen_everywhere(url, body["version"], processes, time.perf_counter()) \
            if processes and body["version"] else None  # None: nothing new (a duplicate)
        phase.writes.append({"file": path.name, "clauses": body["clauses_added"], "start": start,
                             "seconds": round(seconds, 2), "seen_everywhere_s": lag})


async def run_phase(url: str, users: int, seconds: float, mix: QueryMix, pid: int | None, name: str,
                    upload_files: list[Path] | None = None, uploaded: list[str] | None = None,
                    warmup: float = WARMUP_S) -> Phase:
    phase = Phase(name)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    connector = aiohttp.TCPConnector(limit=users + 1)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        # One search alone first: a server as it was before its start-up warm-up (api/app.py) loaded jieba's
        # dictionary once per thread when the first searches arrived together, which is start-up, not load.
        async with session.get(f"{url}/api/search", params={"q": "义务教育"}) as response:
            await response.read()
        await asyncio.gather(*(user(session, url, mix, None, time.perf_counter() + warmup) for _ in range(users)))
        mix.reset_counts()
        cpu0, server0, machine0 = _client_cpu(), server_cpu_seconds(pid), machine_busy_seconds()
        wall0 = time.perf_counter()
        until = wall0 + seconds
        writes = None
        if upload_files:  # the processes answering: all the server's but the arbiter and the writer, when it has workers
            processes = max(1, len(server_processes(pid)) - 2) if pid else 0
            writes = asyncio.ensure_future(uploader(url, upload_files, phase, until, uploaded, processes))
        await asyncio.gather(*(user(session, url, mix, phase, until) for _ in range(users)))
        phase.seconds = time.perf_counter() - wall0
        phase.client_cpu = _client_cpu() - cpu0
        phase.server_cpu = server_cpu_seconds(pid) - server0 if pid else None
        phase.machine_cpu = machine_busy_seconds() - machine0
        phase.memory_pss_mb = server_pss_mb(pid) if pid else None
        if writes:  # the write under way when the searches stopped still counts: its time is what it took
            await writes
    phase.cache_hit_share = round(mix.hits / mix.encoded, 3) if mix.encoded else None
    return phase


def _client_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def loopback_url(url: str) -> str:
    host = urlsplit(url).hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise SystemExit(f"refusing {url}: the load benchmark only targets loopback servers "
                         "(127.0.0.0/8, ::1, localhost)")
    return url.rstrip("/")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def copy_live_version(index_dir: Path, target: Path) -> None:
    """The live version and its segments only (not older versions nor checkpoints): what a server opens."""
    current = (index_dir / "CURRENT").read_text(encoding="utf-8").strip()
    target.mkdir(parents=True)
    shutil.copytree(index_dir / "versions" / current, target / "versions" / current)
    manifest = json.loads((index_dir / "versions" / current / "manifest.json").read_text(encoding="utf-8"))
    for segment in manifest["segments"]:
        shutil.copytree(index_dir / "segments" / segment["name"], target / "segments" / segment["name"])
    shutil.copy2(index_dir / "CURRENT", target / "CURRENT")


@contextmanager
def server(index_dir: Path, source: Path, env: dict[str, str], log: Path):
    """`policyqa serve` from `source` over a copy of the index; yields (url, pid)."""
    with tempfile.TemporaryDirectory(prefix="policyqa-load-") as tmp:
        copy = Path(tmp) / "index"
        copy_live_version(index_dir, copy)
        port = free_port()
        full_env = {**os.environ, "POLICYQA_INDEX_DIR": str(copy), "POLICYQA_UPLOAD_DIR": str(Path(tmp) / "uploads"),
                    "POLICYQA_MODELS_DIR": str(REPO / "data" / "models"), "POLICYQA_HOST": "127.0.0.1",
                    "POLICYQA_PORT": str(port), "PYTHONPATH": str(source), **env}
        with log.open("w") as out:
            proc = subprocess.Popen([sys.executable, "-m", "policyqa", "serve"], cwd=source, env=full_env,
                                    stdout=out, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_ready(url, proc, log)
            yield url, proc.pid
        finally:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _wait_ready(url: str, proc: subprocess.Popen, log: Path, seconds: float = 300) -> None:
    import urllib.request

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server stopped while starting:\n{log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=2) as response:
                if json.loads(response.read()).get("index") == "ready":
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"the server did not answer within {seconds:.0f} s")


def ensure_index(index_dir: Path) -> None:
    if (index_dir / "CURRENT").is_file():
        return
    corpus = [REPO / "data" / "demo", REPO.parent / "shared" / "corpus" / "laws" / "education"]
    print(f"building {index_dir} from {', '.join(map(str, corpus))} (about 90 s)", flush=True)
    subprocess.run([sys.executable, "-m", "policyqa", "ingest", *map(str, corpus), "--index-dir", str(index_dir)],
                   cwd=REPO, check=True)


async def measure(url: str, pid: int | None, args, pool: list[str], files: list[Path]) -> list[dict]:
    mix = QueryMix(pool, args.seed)
    phases = [await run_phase(url, args.users, args.duration, mix, pid, "idle", warmup=args.warmup)]
    if not args.no_writes:
        uploaded: list[str] = []
        phases.append(await run_phase(url, args.users, args.duration, mix, pid, "during writes", files, uploaded,
                                      warmup=args.warmup))
        if args.url:  # leave a server we did not start as we found it
            async with aiohttp.ClientSession() as session:
                for doc_id in uploaded:
                    async with session.delete(f"{url}/api/documents/{doc_id}") as response:
                        await response.read()
    return [p.summary() for p in phases]


def print_table(results: list[dict]) -> None:
    head = f"{'variant':14} {'phase':14} {'req/s':>7} {'p50':>7} {'p95':>7} {'p99':>7} {'errors':>6} " \
           f"{'hits':>5} {'client':>6} {'server':>6} {'others':>6} {'ms/search':>9} {'limit':>5} {'PSS MB':>7}"
    print(head + "\n" + "-" * len(head))
    for r in results:
        for p in r["phases"]:
            ms = [f"{p[f'p{n}_ms']:7.1f}" if p[f"p{n}_ms"] is not None else f"{'-':>7}" for n in (50, 95, 99)]
            print(f"{r['variant']:14} {p['phase']:14} {p['req_per_s']:7.1f} {' '.join(ms)} {p['errors']:6d} "
                  f"{p['query_cache_hit_share'] or 0:5.2f} {p['client_cpu_cores']:6.2f} "
                  f"{'-' if p['server_cpu_cores'] is None else format(p['server_cpu_cores'], '6.2f'):>6} "
                  f"{p['other_cpu_cores']:6.2f} {p['server_cpu_ms_per_search'] or 0:9.2f} "
                  f"{p.get('share_of_limit') or 0:5.2f} {sum((p['memory_pss_mb'] or {}).values()):7.0f}")
            if p["memory_pss_mb"]:
                print(f"{'':14} PSS per process (MB): {p['memory_pss_mb']}")
            if len(p["per_process"]) > 1:
                print(f"{'':14} requests, p50 / p95 ms per process: " + "; ".join(
                    f"{pid}: {v['requests']}, {v['p50_ms']} / {v['p95_ms']}" for pid, v in p["per_process"].items()))
            if p["error_kinds"]:
                print(f"{'':14} errors: {p['error_kinds']}")
        idle, *writing = r["phases"]
        if writing:
            w = writing[0]
            during = w.get("p95_ms_during_a_write")
            print(f"{'':14} p95 during writes / idle: {w['p95_ms'] / idle['p95_ms']:.2f}x"
                  + (f" (searches started while a write ran: {w['requests_during_a_write']}, p95 {during} ms,"
                     f" {during / idle['p95_ms']:.2f}x)" if during else "")
                  + f"; {len(w['write_seconds'])} writes, seconds each: {w['write_seconds']}"
                  + f"; version served by every process at most {w['version_seen_everywhere_s_max']} s after its write")
    print("latencies in ms; hits = share of embedded queries the server's query cache answers; client/server/others "
          f"= CPU cores used by this script, the server, and every other process (the machine has {os.cpu_count()}); "
          "ms/search = server CPU per search; limit = req/s as a share of cores / CPU per search; PSS = the server's "
          "processes' memory together")


def parse_variant(spec: str) -> tuple[str, Path, dict[str, str]]:
    """LABEL[@SOURCE_DIR][:KEY=VALUE,...]"""
    label, _, env_part = spec.partition(":")
    label, _, source = label.partition("@")
    env = dict(item.split("=", 1) for item in env_part.split(",") if item)
    return label, Path(source).resolve() if source else REPO, env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds per phase")
    parser.add_argument("--index-dir", type=Path, default=REPO / "data" / "eval-index")
    parser.add_argument("--url", help="a running server on loopback instead of starting one "
                        "(its uploads are removed after)")
    parser.add_argument("--variant", action="append", default=[],
                        help="LABEL[@SOURCE_DIR][:KEY=VALUE,...]: a server from that source tree with that "
                        "environment; repeat to compare (they take turns, --rounds times)")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--warmup", type=float, default=WARMUP_S, help="seconds of load before each phase, not counted")
    parser.add_argument("--no-writes", action="store_true", help="only the idle phase")
    parser.add_argument("--queries", type=Path, default=REPO / "eval" / "sets" / "policy.jsonl")
    parser.add_argument("--uploads", type=Path, default=REPO.parent / "shared" / "corpus" / "laws" / "other")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="save the results here")
    args = parser.parse_args()

    pool = query_pool(args.queries)
    # Typical documents (4-32 KB: laws/other's p10-p90), not the 200 KB codes that would make one write the whole phase.
    files = sorted(p for p in args.uploads.iterdir() if p.suffix == ".txt" and 4_000 <= p.stat().st_size <= 32_000)
    random.Random(args.seed).shuffle(files)
    print(f"{len(pool)} distinct queries; {args.users} users, {args.duration:.0f} s per phase"
          f" (+{args.warmup:.0f} s warm-up); uploads from {args.uploads}", flush=True)
    results = []
    if args.url:
        url = loopback_url(args.url)
        results.append({"variant": "url", "phases": asyncio.run(measure(url, None, args, pool, files))})
    else:
        ensure_index(args.index_dir)
        variants = [parse_variant(v) for v in args.variant or ["now"]]
        for round_ in range(args.rounds):
            for label, source, env in variants:
                log = Path(tempfile.gettempdir()) / f"policyqa-load-{label}.log"
                with server(args.index_dir, source, env, log) as (url, pid):
                    phases = asyncio.run(measure(url, pid, args, pool, files))
                results.append({"variant": label, "round": round_ + 1, "source": str(source), "env": env,
                                "phases": phases})
                print_table(results[-1:])
    print()
    print_table(results)
    if args.json:
        args.json.write_text(json.dumps({"date": time.strftime("%Y-%m-%d"), "cpus": os.cpu_count(),
                                         "users": args.users, "duration": args.duration, "results": results},
                                        ensure_ascii=False, indent=1), encoding="utf-8")
        print(f"saved {args.json}")


if __name__ == "__main__":
    main()
