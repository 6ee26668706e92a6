"""Raw encode throughput of the encoder variants (torch, onnx, onnx-int8), in one run on the same clauses.

    python bench/encoder_speed.py [--corpus ../shared/corpus/laws/education] [--clauses 600] [--rounds 2]

The clauses are the embedding inputs ingest would encode (title + heading path + clause), a
length-stratified sample of the corpus. Variants take turns round by round, so a noisy neighbour
on the shared machine hits them alike; the best round of each counts. Also reports how close each
variant's vectors are to torch fp32's (cosine).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from embedding.encoder import ENCODER_VARIANTS, load_encoder
from index.clause_text import clause_input
from ingest.pipeline import find_files, ingest_files
from policyqa.settings import Settings

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=REPO.parent / "shared" / "corpus" / "laws" / "education")
    parser.add_argument("--clauses", type=int, default=600)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    clauses = ingest_files(list(find_files([args.corpus]))).clauses
    inputs = sorted((clause_input(c, True) for c in clauses), key=len)
    sample = inputs[:: max(1, len(inputs) // args.clauses)][: args.clauses]
    chars = sum(map(len, sample))
    print(f"{len(sample)} clauses from {args.corpus}, {chars:,} chars (mean {chars / len(sample):.0f})")

    encoders = {}
    for variant in ENCODER_VARIANTS:
        start = time.perf_counter()
        encoders[variant] = load_encoder(Settings(models_dir=REPO / "data" / "models", encoder=variant))
        print(f"{variant:10} loaded (and exported if needed) in {time.perf_counter() - start:.1f} s")
    best = dict.fromkeys(encoders, 0.0)
    vectors = {}
    for _ in range(args.rounds):
        for variant, encoder in encoders.items():
            start = time.perf_counter()
            vectors[variant] = encoder.encode_passages(sample)
            best[variant] = max(best[variant], chars / (time.perf_counter() - start))
    print(f"{'variant':10} {'chars/s':>9} {'vs torch':>8} {'cosine to torch min / mean':>28}")
    for variant in encoders:
        cosine = np.sum(vectors[variant] * vectors["torch"], axis=1)
        print(f"{variant:10} {best[variant]:9,.0f} {best[variant] / best['torch']:7.2f}x "
              f"{cosine.min():16.5f} / {cosine.mean():.5f}")


if __name__ == "__main__":
    main()
