#!/usr/bin/env python3
"""Trains the synthetic world's small byte-level BPE tokenizer and writes
Tests/Fixtures/datasets/synthetic/tokenizer.json.

The corpus is the world's own text (captions, interleaved and text-only documents, question-answer
turns of the first 3000 documents of each kind, seed 0), written by the Swift test
`syntheticCorpusForTheTokenizer` when SIGHTLINE_SYNTHETIC_CORPUS names a file. This script runs that
test unless --corpus points at an existing corpus file.

Requires the `tokenizers` package (HF tokenizers; the committed file was made with 0.23.3).
Set SIGHTLINE_SCRATCH to the SwiftPM scratch path to build the test in (default .build).

Usage: python scripts/make_synthetic_tokenizer.py [--corpus FILE] [--vocab-size 512]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "Tests", "Fixtures", "datasets", "synthetic", "tokenizer.json")
# Special tokens first, so their ids are fixed: padding 0, image placeholder 1, begin 2, end 3.
SPECIALS = ["<pad>", "<image>", "<s>", "</s>"]


def write_corpus(path):
    env = dict(os.environ, SIGHTLINE_SYNTHETIC_CORPUS=path)
    cmd = [
        "swift", "test", "-c", "release", "--scratch-path", os.environ.get("SIGHTLINE_SCRATCH", ".build"),
        "--filter", "DatasetsTests.syntheticCorpusForTheTokenizer",
    ]
    subprocess.run(cmd, cwd=ROOT, env=env, check=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus")
    ap.add_argument("--vocab-size", type=int, default=512)
    args = ap.parse_args()
    corpus = args.corpus
    if corpus is None or not os.path.exists(corpus):
        corpus = corpus or os.path.join(tempfile.mkdtemp(), "synthetic-corpus.txt")
        write_corpus(corpus)
    with open(corpus, encoding="utf-8") as f:
        lines = [l.rstrip("\n") for l in f if l.strip()]
    if not lines:
        sys.exit("empty corpus")

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=args.vocab_size, min_frequency=2, special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(lines, trainer=trainer)
    for i, s in enumerate(SPECIALS):
        assert tok.token_to_id(s) == i, (s, tok.token_to_id(s))
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    tok.save(OUT, pretty=True)
    # A few round-trip checks, and the numbers the Swift test compares against.
    for l in lines[:50]:
        assert tok.decode(tok.encode(l).ids) == l
    # Reference encodings (HF tokenizers) of a few corpus lines, for the Swift tokenizer to match.
    picks = [lines[i] for i in range(0, len(lines), max(1, len(lines) // 24))][:24]
    with open(os.path.join(os.path.dirname(OUT), "encodings.json"), "w") as f:
        json.dump([{"text": l, "ids": tok.encode(l).ids} for l in picks], f, indent=0)
    words = sum(len(l.split()) for l in lines)
    toks = sum(len(tok.encode(l).ids) for l in lines)
    print(f"wrote {OUT}: vocab {tok.get_vocab_size()}, {len(lines)} lines, "
          f"{toks / words:.3f} tokens per word (tokenizers {__import__('tokenizers').__version__})")


if __name__ == "__main__":
    main()
