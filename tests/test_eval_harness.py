"""The eval harness: phrase-level metrics by hand, the CLI on the demo set, and the --url path."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from eval.dataset import LabelledQuery
from eval.metrics import scores
from eval.runner import Outcome, Retrieved, phrases_in
from tests.conftest import REPO


def _outcome(gold: list[str], texts: list[str]) -> Outcome:
    query = LabelledQuery(id="q", query="班额", kind="keyword", gold=gold)
    hits = [Retrieved(item_id=str(i), text=t, doc_id="d") for i, t in enumerate(texts)]
    return Outcome(query=query, mode="hybrid", hits=hits, seconds=0.01, hit_phrases=[phrases_in([t], gold) for t in texts])


def test_metrics_count_each_gold_phrase_once_by_the_phrase_rule():
    # Gold at rank 2 (full-width punctuation and traditional script still match); a re-issue at rank 3.
    outcome = _outcome(["小学班额不超过45人"], ["教师培训", "小學班額不超過４５人。", "小学班额不超过45人"])
    values = scores([outcome])
    assert values["recall@1"] == 0 and values["recall@5"] == 1
    assert values["mrr@10"] == pytest.approx(0.5)


def test_two_phrases_half_found_is_half_recall():
    outcome = _outcome(["小学班额不超过45人", "初中班额不超过50人"], ["小学班额不超过45人", "无关"])
    assert scores([outcome])["recall@10"] == pytest.approx(0.5)


def test_eval_command_on_the_demo_set_writes_a_report(demo_index_dir, tmp_path):
    out = tmp_path / "report.json"
    env = {**os.environ, "POLICYQA_MODELS_DIR": str(REPO / "data" / "models"), "COLUMNS": "160"}
    result = subprocess.run(
        [sys.executable, "-m", "policyqa", "eval", "--set", str(REPO / "eval" / "sets" / "demo.jsonl"),
         "--index-dir", str(demo_index_dir), "--json", str(out), "--baseline"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, result.stderr
    assert "hybrid by kind" in result.stdout and "paired t-test" in result.stdout
    report = json.loads(out.read_text(encoding="utf-8"))
    modes = {m["mode"]: m for m in report["modes"]}
    assert set(modes) == {"hybrid", "dense", "lexical"} and len(report["baseline"]) == 3
    assert modes["hybrid"]["overall"]["recall@5"] >= 0.9
    # Clause chunks beat fixed-size chunks on the same documents and labels.
    baseline = {m["mode"]: m for m in report["baseline"]}
    assert modes["hybrid"]["overall"]["mrr@10"] > baseline["hybrid"]["overall"]["mrr@10"]
    failure = modes["lexical"]["failures"][0]
    assert failure["query"] and failure["gold"] and len(failure["top"]) == 3
    # The chat's answer threshold turns away the questions the corpus cannot answer.
    assert report["no_answer"]["no_answer_queries"] == 3
    assert report["no_answer"]["correctly_below_threshold"] == 3
    # Measured 5/28 turned away (two paraphrases, 营养餐补助标准, 课后服务怎么开展, 消除D级危房): no worse.
    assert report["no_answer"]["answerable_queries_below_threshold"] <= 5
    assert "answer threshold" in result.stdout


def test_a_typo_in_a_label_stops_the_eval_with_the_query_named(demo_index_dir, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"id": "t1", "query": "班额", "kind": "keyword", "gold": ["小学班额不超过46人"]},
                              ensure_ascii=False) + "\n", encoding="utf-8")
    env = {**os.environ, "POLICYQA_MODELS_DIR": str(REPO / "data" / "models")}
    result = subprocess.run([sys.executable, "-m", "policyqa", "eval", "--set", str(bad), "--index-dir",
                             str(demo_index_dir)], env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 2 and "t1" in result.stderr and "46人" in result.stderr


def test_eval_against_a_running_server(live_server):
    from eval.dataset import load_queries
    from eval.harness import evaluate_set
    from eval.runner import http_answerable, http_searcher

    queries = load_queries(REPO / "eval" / "sets" / "demo.jsonl")
    report = evaluate_set("demo", queries, http_searcher(live_server), ["hybrid"], k=10,
                          answerable=http_answerable(live_server))
    assert report.modes[0].overall["recall@5"] >= 0.9
    assert report.no_answer["correctly_below_threshold"] == report.no_answer["no_answer_queries"] == 3
