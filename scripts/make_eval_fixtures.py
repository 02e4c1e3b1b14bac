"""Writes Tests/Fixtures/evaluation/captions.json: caption sets scored by the COCO caption evaluation's
own BLEU and CIDEr-D scorers (the `pycocoevalcap` package from PyPI, pure Python for these two).

The COCO evaluation first runs a Java tokenizer; this script does not. Every caption is pre-tokenized
with the rule of Evaluation's `CaptionTokenizer` (lower-case, every character that is not an ASCII
letter or digit becomes a space, split on whitespace) and the scorers get the words joined by single
spaces, which they split on whitespace. The fixture stores the raw captions, so the Swift test checks
tokenization and scoring together.

Two sets: `handwritten` (natural captions with punctuation, 1 to 5 references, an empty candidate, a
perfect one) and `random` (seeded: 40 images, words from a small vocabulary, candidates of varied
length so that the brevity penalty applies). Run by hand: `python3 scripts/make_eval_fixtures.py`;
it also updates the evaluation line of Tests/Fixtures/VERSIONS.md.
"""
import importlib.metadata
import json
import os
import platform
import random
import re

try:
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
except ImportError:
    raise SystemExit("make_eval_fixtures.py needs the COCO caption scorers: pip install pycocoevalcap==1.2")

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "Tests", "Fixtures", "evaluation")


def words(caption):
    return re.sub(r"[^a-z0-9]", " ", caption.lower()).split()


HANDWRITTEN = [
    ("img1", "A red square in the top left corner.",
     ["a red square at the top left", "the top-left cell holds a red square", "red square, top left."]),
    ("img2", "two blue circles next to a green triangle",
     ["Two blue circles beside a green triangle.", "a green triangle and two blue circles",
      "two circles (blue) and one triangle (green)", "blue circles, two of them, near a green triangle",
      "there are two blue circles and a green triangle"]),
    ("img3", "a small yellow cross", ["a small yellow cross in the lower middle right"]),
    ("img4", "an orange square above a purple circle",
     ["an orange square above a purple circle", "a purple circle below an orange square"]),
    ("img5", "...", ["a white triangle at the bottom", "one white triangle, bottom row"]),
    ("img6", "a large white cross and a large white cross and a cross",
     ["a large white cross", "one big white cross in the center"]),
    ("img7", "three shapes: a red circle, a blue square and a green cross",
     ["a red circle, a blue square and a green cross", "three shapes of different colours",
      "red circle; blue square; green cross"]),
    ("img8", "a dog's ball on the grass", ["a ball on the grass", "the dog's ball lies on green grass"]),
    ("img9", "a purple triangle left of an orange circle",
     ["a purple triangle to the left of an orange circle", "an orange circle right of a purple triangle",
      "purple triangle, orange circle"]),
    ("img10", "nothing", ["an empty dark grey image", "no shapes at all"]),
]


def random_set(seed=1234, images=40):
    g = random.Random(seed)
    vocab = ["a", "the", "red", "blue", "green", "yellow", "small", "large", "square", "circle", "triangle",
             "cross", "left", "right", "top", "bottom", "of", "and", "above", "below", "two", "three"]
    out = []
    for i in range(images):
        refs = [" ".join(g.choice(vocab) for _ in range(g.randint(4, 12))) for _ in range(g.randint(1, 5))]
        base = g.choice(refs).split()
        # A candidate: a noisy, often shorter copy of one reference.
        cand = [w if g.random() < 0.7 else g.choice(vocab) for w in base]
        cand = cand[: max(1, len(cand) - g.randint(0, 4))]
        out.append(("r%d" % i, " ".join(cand), refs))
    return out


def score(items):
    gts = {i: [" ".join(words(r)) for r in refs] for i, _, refs in items}
    res = {i: [" ".join(words(c))] for i, c, _ in items}
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    cider, per_image = Cider().compute_score(gts, res)
    return {
        "examples": [{"id": i, "candidate": c, "references": refs, "candidate_words": words(c),
                      "reference_words": [words(r) for r in refs]} for i, c, refs in items],
        "bleu": [float(b) for b in bleu],
        "cider_d": float(cider),
        "cider_d_per_image": [float(x) for x in per_image],
    }


def main():
    os.makedirs(OUT, exist_ok=True)
    version = importlib.metadata.version("pycocoevalcap")
    fixture = {
        "generator": "scripts/make_eval_fixtures.py",
        "reference": "pycocoevalcap %s (Bleu(4) with option 'closest', Cider with sigma 6)" % version,
        "sets": {"handwritten": score(HANDWRITTEN), "random": score(random_set())},
    }
    with open(os.path.join(OUT, "captions.json"), "w") as f:
        json.dump(fixture, f, indent=1, sort_keys=True)
        f.write("\n")
    for name, s in fixture["sets"].items():
        print(name, "BLEU", ["%.6f" % b for b in s["bleu"]], "CIDEr-D %.6f" % s["cider_d"])

    versions = os.path.join(ROOT, "Tests", "Fixtures", "VERSIONS.md")
    line = ("- `Tests/Fixtures/evaluation/captions.json`: `scripts/make_eval_fixtures.py` with Python %s, "
            "pycocoevalcap %s, numpy %s\n" % (platform.python_version(), version, importlib.metadata.version("numpy")))
    text = open(versions).read()
    kept = [l for l in text.splitlines(keepends=True) if "Tests/Fixtures/evaluation/" not in l]
    text = "".join(kept)
    if not text.endswith("\n"):
        text += "\n"
    if "## Evaluation" not in text:
        text += "\n## Evaluation\n\n"
    text += line
    with open(versions, "w") as f:
        f.write(text)


if __name__ == "__main__":
    main()
