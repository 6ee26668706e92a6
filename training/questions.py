"""Training questions for the reranker: their format, where they may come from, and the checks every line passes.

A line is an eval-set query (`eval.dataset.LabelledQuery`) plus the clause that answers it:
{"id", "query", "kind", "gold": [phrases], "source": "laws/education/080_教师法.txt", "clause": "080_教师法#第三十五条",
 "follows"?}. Unanswerable questions have `"gold": []`, kind `no_answer`, and name in `source` the document they
are a near miss of (or none). `source` is relative to the shared corpus folder.

`python -m training.questions check data/train/*.jsonl` runs every check; `python -m training.questions clauses FILE`
prints a document's clause ids and texts, the addresses a writer copies.
"""

from __future__ import annotations

import json
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from eval.dataset import SETS_DIR, LabelledQuery, load_queries
from ingest.errors import IngestError
from ingest.normalize import compact
from ingest.pipeline import parse_file
from ingest.schema import Clause

CORPUS = Path(__file__).resolve().parent.parent.parent / "shared" / "corpus"
MAX_PER_DOCUMENT = 15
COMMON_PHRASE_CLAUSES = 15  # a gold phrase found in more clauses than this pins nothing down
LONG_PHRASE = 30  # compact characters; longer phrases break when a document is re-cleaned
# Words any question may share with its clause without giving its answer away.
FUNCTION_WORDS = frozenset("什么 哪些 多少 可以 应当 是否 怎么 如何 需要 规定 要求 进行 有关 相关 部门 单位 人员 情况 问题 "
                           "没有 不得 不能 必须 能否 还是 以上 以下 哪个 哪里 负责".split())


class TrainingQuestion(LabelledQuery):
    clause: str | None = None  # the id of the clause that answers; None for an unanswerable question


@dataclass
class CheckReport:
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    kinds: Counter = field(default_factory=Counter)
    documents: Counter = field(default_factory=Counter)


def listed_documents(corpus: Path = CORPUS) -> set[str]:
    """The documents TRAIN_DOCS.txt lists (paths relative to the corpus)."""
    return {line.strip() for line in (corpus / "TRAIN_DOCS.txt").read_text(encoding="utf-8").splitlines()
            if line.strip() and not line.startswith("#")}


def allowed_sources(corpus: Path = CORPUS) -> set[str]:
    """TRAIN_DOCS.txt and messy/, less every document an eval set asks about (those stay unseen)."""
    listed = listed_documents(corpus)
    messy = {f"messy/{p.name}" for p in (corpus / "messy").iterdir() if p.name != "SOURCES.md"}
    return {s for s in listed | messy if Path(s).stem not in evaluated_documents()}


@cache
def evaluated_documents() -> frozenset[str]:
    """File stems (= doc ids) of every document an eval set names, in any split."""
    stems = set()
    for path in SETS_DIR.glob("*.jsonl"):
        for query in load_queries(path):
            stems.update(Path(s).stem for s in (query.source, query.gold_doc) if s)
    return frozenset(stems)


@cache
def clauses_of(source: str, corpus: Path = CORPUS) -> dict[str, Clause]:
    """The clauses ingest makes of a corpus file; none for a page with no document text."""
    try:
        return {c.id: c for c in parse_file(corpus / source).clauses}
    except IngestError:
        return {}


def check(questions: list[TrainingQuestion], corpus: Path = CORPUS) -> CheckReport:
    report = CheckReport()
    allowed = allowed_sources(corpus)
    eval_queries = {compact(q.query) for path in SETS_DIR.glob("*.jsonl") for q in load_queries(path)}
    seen_ids: set[str] = set()
    seen_queries: dict[str, str] = {}
    phrases: dict[str, list[str]] = defaultdict(list)
    for q in questions:
        where = f"{q.id}"
        if q.id in seen_ids:
            report.errors.append(f"{where}: duplicate id")
        if q.follows and q.follows not in seen_ids:
            report.errors.append(f"{where}: follows {q.follows}, which is not an earlier question")
        seen_ids.add(q.id)
        report.kinds[q.kind] += 1
        key = compact(q.query)
        if key in eval_queries:
            report.errors.append(f"{where}: the same question is in an eval set")
        if key in seen_queries and not q.follows:
            report.warnings.append(f"{where}: the same question as {seen_queries[key]}")
        seen_queries.setdefault(key, q.id)
        if q.source and q.source not in allowed:
            report.errors.append(f"{where}: {q.source} is not a training document (TRAIN_DOCS.txt or messy/, "
                                 "less the documents eval sets ask about)")
            continue
        if not q.gold:
            if q.kind != "no_answer" or q.clause:
                report.errors.append(f"{where}: no gold phrase, so kind must be no_answer and clause empty")
            continue
        if q.kind == "no_answer":
            report.errors.append(f"{where}: kind no_answer with gold phrases")
        report.documents[q.source] += 1
        clause = clauses_of(q.source, corpus).get(q.clause or "") if q.source else None
        if clause is None:
            report.errors.append(f"{where}: no clause {q.clause!r} in {q.source}")
            continue
        text = compact(clause.text)
        for phrase in q.gold:
            if not 2 <= len(compact(phrase)) <= 60:
                report.errors.append(f"{where}: gold phrase {phrase!r} should be 2-60 characters")
            elif compact(phrase) not in text:
                report.errors.append(f"{where}: gold phrase {phrase!r} is not in clause {q.clause}")
            elif len(compact(phrase)) > LONG_PHRASE:
                report.warnings.append(f"{where}: gold phrase {phrase!r} is long; copy the part that answers")
            phrases[compact(phrase)].append(q.id)
        if q.kind == "paraphrase" and len(shared := shared_content_words(q.query, clause.text)) >= 2:
            report.warnings.append(f"{where}: a paraphrase that shares {'、'.join(shared)} with its clause")
    for source, count in report.documents.items():
        if count > MAX_PER_DOCUMENT:
            report.warnings.append(f"{source}: {count} questions (at most ~{MAX_PER_DOCUMENT} a document)")
    report.warnings += _common_phrases(phrases, corpus)
    return report


def shared_content_words(query: str, clause_text: str) -> list[str]:
    """Words of two or more characters the question takes from its clause (a paraphrase should take none)."""
    import jieba

    text = compact(clause_text)
    words = dict.fromkeys(w for w in jieba.lcut(compact(query)) if len(w) >= 2 and w not in FUNCTION_WORDS)
    return [w for w in words if w in text]


def _common_phrases(phrases: dict[str, list[str]], corpus: Path) -> list[str]:
    """Gold phrases that occur many times in the training documents' clauses: they would call many clauses right."""
    texts = "\n".join(compact(c.text) for source in sorted(allowed_sources(corpus))
                      for c in clauses_of(source, corpus).values())
    flagged = []
    for phrase, ids in phrases.items():
        if (matches := texts.count(phrase)) > COMMON_PHRASE_CLAUSES:
            flagged.append(f"{', '.join(ids[:3])}: gold phrase {phrase!r} occurs {matches} times in the training clauses")
    return flagged


def load(paths: list[Path]) -> list[TrainingQuestion]:
    return [TrainingQuestion.model_validate_json(line) for path in paths
            for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def main(argv: list[str]) -> int:
    if len(argv) >= 2 and argv[0] == "clauses":
        for source in argv[1:]:
            for clause in clauses_of(str(Path(source).resolve().relative_to(CORPUS.resolve()))).values():
                print(json.dumps({"clause": clause.id, "heading_path": clause.heading_path, "text": clause.text},
                                 ensure_ascii=False))
        return 0
    if len(argv) >= 2 and argv[0] == "check":
        report = check(load([Path(p) for p in argv[1:]]))
        for line in report.errors:
            print("ERROR", line)
        for line in report.warnings:
            print("WARN ", line)
        print(f"{sum(report.kinds.values())} questions, {len(report.documents)} documents; by kind: "
              + ", ".join(f"{k} {n}" for k, n in report.kinds.most_common()))
        print(f"{len(report.errors)} errors, {len(report.warnings)} warnings")
        return 1 if report.errors else 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
