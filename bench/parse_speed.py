"""Parse speed and clause-length distribution over the laws corpus (and the demo seeds).

    python bench/parse_speed.py [--corpus ../shared/corpus/laws] [--json OUT]

Runs in one process (one core): reads every file first, then times parsing alone,
so disk speed does not count. Prints MB/s, chars/s, clauses, and the clause-length
percentiles that README reports.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from ingest.clauses import MAX_CLAUSE_CHARS
from ingest.pipeline import find_files, make_doc_id, parse_text
from ingest.readers import read_text

REPO = Path(__file__).resolve().parent.parent


def length_stats(lengths: list[int]) -> dict:
    q = statistics.quantiles(lengths, n=100)
    return {
        "clauses": len(lengths),
        "mean": round(statistics.fmean(lengths), 1),
        "p10": int(q[9]),
        "p50": int(q[49]),
        "p90": int(q[89]),
        "p99": int(q[98]),
        "max": max(lengths),
        "at_cap": sum(n == MAX_CLAUSE_CHARS for n in lengths),
        "under_20": sum(n < 20 for n in lengths),
    }


def run(corpus: Path) -> dict:
    texts = [(p, read_text(p)) for p in find_files([corpus])]
    chars = sum(len(t) for _, t in texts)
    utf8_bytes = sum(len(t.encode("utf-8")) for _, t in texts)
    start = time.perf_counter()
    parsed = [parse_text(text, str(path), make_doc_id(path.stem)) for path, text in texts]
    seconds = time.perf_counter() - start
    lengths = [len(c.text) for p in parsed for c in p.clauses]
    return {
        "corpus": str(corpus),
        "files": len(texts),
        "documents": sum(len(p.documents) for p in parsed),
        "chars": chars,
        "seconds": round(seconds, 2),
        "mb_per_s": round(utf8_bytes / 1e6 / seconds, 2),
        "chars_per_s": int(chars / seconds),
        "lengths": length_stats(lengths),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, action="append")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    corpora = args.corpus or [REPO / "data" / "demo", REPO.parent / "shared" / "corpus" / "laws"]
    results = [run(c) for c in corpora if c.exists()]
    for r in results:
        print(
            f"{r['corpus']}: {r['files']} files, {r['documents']} documents, {r['chars']:,} chars "
            f"in {r['seconds']} s = {r['mb_per_s']} MB/s ({r['chars_per_s']:,} chars/s)"
        )
        print(f"  clause lengths: {r['lengths']}")
    if args.json:
        args.json.write_text(json.dumps(results, ensure_ascii=False, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
