#!/usr/bin/env python3
"""Does a demo stage's model use its images? Run by hand after `trainer demo`.

    python3 scripts/demo_grounding_probe.py RUN/chain_of_sight/pretrain RUN/chain_of_sight/data/train-*

Loads the stage folder's parts with the PyTorch stack (HF CLIPVisionModel from vision/, the
connector from connector/ through sightline_torch, HF LlamaForCausalLM from language/) and prints
  1. the caption loss per token of 64 training captions after their own image and after another
     image, overall and for some world words (equal numbers: the decoder ignores the image);
  2. how much of the connector's output varies across images (std over images / std overall);
  3. held-out accuracy of linear probes for the colour and shape of the object in each of the 16
     grid cells, from the connector's cell tokens (Chain-of-Sight) and from the tower's patches of
     that cell.
Needs torch, transformers, safetensors, numpy and Pillow.
"""
import json
import os
import re
import sys

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file
from transformers import CLIPVisionModel, LlamaForCausalLM

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "python"))
import sightline_torch  # noqa: E402

MEAN = np.array([0.48145466, 0.4578275, 0.40821073])
STD = np.array([0.26862954, 0.26130258, 0.27577711])
ROWS = ["top", "upper middle", "lower middle", "bottom"]
COLUMNS = ["left", "center left", "center right", "right"]
COLOURS = ["none", "red", "green", "blue", "yellow", "purple", "orange", "white"]
SHAPES = ["none", "square", "circle", "triangle", "cross"]
GRAMMAR = (
    "a set of pictures . , ? at the and there is are object objects imagine picture "
    "left right of above below this has as many more fewer than one before what colour shape "
    "where how yes no top upper lower middle bottom center USER: ASSISTANT: "
    "square circle triangle cross red green blue yellow purple orange white small medium large "
    "zero one two three four five six"
)
# The world's word-level vocabulary, as the trainer numbers it.
VOCAB = ["<pad>", "<image>", "<s>", "</s>", "<unk>"] + sorted(set(GRAMMAR.split()))
IDS = {w: i for i, w in enumerate(VOCAB)}


def encode(text):
    return [IDS.get(w, 4) for w in re.findall(r"[^\s.,?]+|[.,?]", text)]


def pixels(paths):
    out = []
    for p in paths:
        a = np.asarray(Image.open(p).convert("RGB"), dtype=np.float32) / 255.0
        out.append(((a - MEAN) / STD).transpose(2, 0, 1))
    return torch.tensor(np.stack(out), dtype=torch.float32)


def main(stage, data):
    tower = CLIPVisionModel.from_pretrained(os.path.join(stage, "vision")).eval()
    lm = LlamaForCausalLM.from_pretrained(os.path.join(stage, "language")).eval()
    config = json.load(open(os.path.join(stage, "connector", "connector_config.json")))
    connector = sightline_torch.build_connector(json.dumps(config))
    connector.load_state_dict(load_file(os.path.join(stage, "connector", "model.safetensors")), strict=True)
    connector.eval()
    levels = config.get("featureLevels", [config.get("featureLevel", 1)])
    records = [json.loads(line) for line in open(os.path.join(data, "captions.jsonl"))][:1200]

    def tokens(batch):
        with torch.no_grad():
            out = tower(pixel_values=pixels([os.path.join(data, r["image"]) for r in batch]), output_hidden_states=True)
            feats = [out.hidden_states[level][:, 1:] for level in levels]  # drop the class token
            return connector(feats), feats[-1]

    # 1-2. Caption loss after the own image and after another one.
    first = records[:64]
    image_tokens, _ = tokens(first)
    print("connector output: std over images / std overall = %.3f"
          % (image_tokens.std(0).mean() / image_tokens.std()).item())
    embed = lm.get_input_embeddings()

    def caption_loss(order):
        words, total, count = {}, 0.0, 0
        with torch.no_grad():
            for i, r in enumerate(first):
                ids = torch.tensor([IDS["<s>"]] + encode(r["caption"]) + [IDS["</s>"]])
                e = embed(ids)
                x = torch.cat([e[:1], image_tokens[order[i]], e[1:]], 0)[None]
                logits = lm(inputs_embeds=x).logits[0]
                start = image_tokens.shape[1]
                logp = torch.log_softmax(logits[start:-1], -1)
                target = ids[1:]
                loss = -logp[torch.arange(len(target)), target]
                total += loss.sum().item()
                count += len(target)
                for t, v in zip(target.tolist(), loss.tolist()):
                    words.setdefault(VOCAB[t], []).append(v)
        return total / count, words

    own, own_words = caption_loss(list(range(len(first))))
    other, other_words = caption_loss(list(range(1, len(first))) + [0])
    print("caption loss per token: after its own image %.4f, after another image %.4f" % (own, other))
    for w in ["red", "blue", "green", "circle", "square", "top", "bottom", "left", "right", "small", "large"]:
        if w in own_words:
            print("  %-8s own %.3f  other %.3f" % (w, np.mean(own_words[w]), np.mean(other_words[w])))

    # 3. Linear probes per grid cell.
    if config.get("type") != "chain_of_sight":
        return
    cell_tokens, patch_features, colours, shapes = [], [], [], []
    global_queries = config["scales"][0]["queries"] if config["scales"][0]["windowSize"] == config["grid"]["width"] else 0
    for b in range(0, len(records), 50):
        batch = records[b:b + 50]
        t, f = tokens(batch)
        side = config["grid"]["width"]
        for i, r in enumerate(batch):
            colour, shape = np.zeros((4, 4), int), np.zeros((4, 4), int)
            for m in re.finditer(r"a (small|medium|large) (\w+) (\w+) at the ((?:upper |lower )?\w+) ((?:center )?\w+)", r["caption"]):
                _, c, s, row, col = m.groups()
                colour[ROWS.index(row), COLUMNS.index(col)] = COLOURS.index(c)
                shape[ROWS.index(row), COLUMNS.index(col)] = SHAPES.index(s)
            grid = f[i].reshape(side, side, -1)
            cell = side // 4
            for w in range(16):
                y, x = divmod(w, 4)
                if t.shape[1] >= global_queries + 16:
                    cell_tokens.append(t[i, global_queries + w].numpy())
                patch_features.append(grid[y * cell:(y + 1) * cell, x * cell:(x + 1) * cell].reshape(-1).numpy())
                colours.append(colour[y, x])
                shapes.append(shape[y, x])

    def probe(x, y, name):
        x, y = torch.tensor(np.array(x)), torch.tensor(np.array(y))
        x = (x - x.mean(0)) / (x.std(0) + 1e-6)
        n = int(0.8 * len(x))
        torch.manual_seed(0)
        linear = torch.nn.Linear(x.shape[1], int(y.max()) + 1)
        opt = torch.optim.Adam(linear.parameters(), 1e-2)
        for _ in range(300):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(linear(x[:n]), y[:n]).backward()
            opt.step()
        with torch.no_grad():
            pred = linear(x[n:]).argmax(1)
        occupied = y[n:] != 0
        print("  %-34s occupied cells %.3f (all cells %.3f)"
              % (name, (pred[occupied] == y[n:][occupied]).float().mean().item(), (pred == y[n:]).float().mean().item()))

    print("linear probes, held-out 20%% of %d cells:" % len(colours))
    if cell_tokens:
        probe(cell_tokens, colours, "connector cell token -> colour")
        probe(cell_tokens, shapes, "connector cell token -> shape")
    probe(patch_features, colours, "tower patches of the cell -> colour")
    probe(patch_features, shapes, "tower patches of the cell -> shape")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
