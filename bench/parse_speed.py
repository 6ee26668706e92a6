"""Parse speed and clause-length distribution over the laws corpus (and the demo seeds).

    python bench/parse_speed.py [--corpus ../shared/corpus/laws] [--json OUT] [--worst-cases]

Runs in one process (one core): reads every file first, then times parsing alone,
so disk speed does not count. Prints MB/s, chars/s, clauses, and the clause-length
percentiles that README reports. `--worst-cases` also times the inputs that were once slow
(a text dump with no line breaks, one section cut into thousands of parts) at two sizes, so
that a return of quadratic work shows as a time ratio near 4 instead of 2.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from ingest.clauses import MAX_CLAUSE_CHARS, build_clauses
from ingest.errors import IngestError
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


def _one_line_dump(law: Path, chars: int) -> str:
    """A real law with its line breaks removed, repeated to `chars`: the shape of a text dump."""
    text = law.read_text(encoding="utf-8").replace("\n", "")
    return (text * (chars // len(text) + 1))[:chars]


def _seconds(work) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def _refused(text: str) -> None:
    try:
        parse_text(text, "dump.txt", "dump")
    except IngestError:
        return
    raise AssertionError("the dump was not refused")


def worst_cases(law: Path) -> list[dict]:
    """Each case at n and 2n: linear work doubles, quadratic work quadruples."""
    cases = {  # (what, work on n chars, n): the dump is refused past 5,000 clauses, i.e. above about 1.5M chars
        "text dump refused for too many clauses": (lambda n: _refused(_one_line_dump(law, n)), 2_000_000),
        "one section cut into clauses": (lambda n: build_clauses("dump", "dump", [_one_line_dump(law, n)]), 1_000_000),
    }
    rows = []
    for name, (work, n) in cases.items():
        small, large = _seconds(lambda: work(n)), _seconds(lambda: work(2 * n))
        rows.append({"case": name, "chars": [n, 2 * n], "seconds": [round(small, 2), round(large, 2)],
                     "ratio": round(large / small, 2)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, action="append")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--worst-cases", action="store_true", help="also time the once-slow inputs at two sizes")
    args = parser.parse_args()
    corpora = args.corpus or [REPO / "data" / "demo", REPO.parent / "shared" / "corpus" / "laws"]
    results = [run(c) for c in corpora if c.exists()]
    for r in results:
        print(
            f"{r['corpus']}: {r['files']} files, {r['documents']} documents, {r['chars']:,} chars "
            f"in {r['seconds']} s = {r['mb_per_s']} MB/s ({r['chars_per_s']:,} chars/s)"
        )
        print(f"  clause lengths: {r['lengths']}")
    if args.worst_cases:
        law = sorted((REPO.parent / "shared" / "corpus" / "laws" / "education").glob("*.txt"))[3]
        for row in worst_cases(law):
            print(f"{row['case']}: {row['seconds'][0]} s at {row['chars'][0]:,} chars, {row['seconds'][1]} s at "
                  f"{row['chars'][1]:,} (ratio {row['ratio']}; linear 2, quadratic 4)")
            results.append(row)
    if args.json:
        args.json.write_text(json.dumps(results, ensure_ascii=False, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
