#!/usr/bin/env python3
"""Writes the reference fixtures of the Language package (Tests/Fixtures/language).

Run by hand (see scripts/README.md) with transformers, peft and tokenizers installed next to torch:

    /tmp/torchenv/bin/pip install transformers peft tokenizers safetensors
    /tmp/torchenv/bin/python scripts/make_language_fixtures.py

What it writes (all small; the Swift tests read only these files):

- llama_tiny/: a randomly initialised LlamaForCausalLM (GQA: 4 query heads, 2 KV heads; Llama-3
  rope_scaling) saved with `save_pretrained` (config.json, model.safetensors). llama_tied/: a tied-
  embedding variant.
- llama_*.json: cases in the layout of Tests/Fixtures/tensor (see scripts/make_fixtures.py): inputs in
  `ints`, float64 references rounded to float32 in `tensors`, parameters in `params`.
- *_grads.safetensors: float64 gradients (rounded to float32) of the loss w.r.t. every parameter,
  keyed by HF/PEFT parameter names.
- llama_tiny_lora/: a PEFT LoRA adapter of llama_tiny (adapter_config.json, adapter_model.safetensors)
  with nonzero A and B; lora_*.json / lora_grads.safetensors: its logits and gradients.
- peft_names.json: the names, shapes and adapter_config.json fields real PEFT writes.
- tokenizer_bytelevel.json, tokenizer_gpt2.json, tokenizer_bytefallback.json: small tokenizers trained
  here (Llama-3 style split regex + byte-level; GPT-2 style byte-level; Llama-2 style sentencepiece
  BPE with byte fallback); tokenizer_cases.json: texts and the ids HF `tokenizers` gives them.

The tokenizers' training is not bit-reproducible from run to run (tie order inside `tokenizers`'
trainer), and PEFT writes `target_modules` in set order: the tokenizer files and tokenizer_cases.json
are always regenerated together, so they stay consistent with each other.

References are computed in float64 (the model is cast with `.double()` after the float32 weights are
drawn), so they carry no float32 accumulation noise.
"""

import json
import os
import platform
import shutil
import sys

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "Tests", "Fixtures", "language")

torch.use_deterministic_algorithms(True)
torch.set_num_threads(1)


def rounded(v):
    v = float(np.float32(v))
    return float("%.9g" % v)


def tensor_json(t):
    t = t.detach().to(torch.float64).contiguous()
    return {"shape": list(t.shape), "data": [rounded(v) for v in t.reshape(-1).tolist()]}


def ints_json(t):
    t = torch.as_tensor(t).to(torch.int64).contiguous()
    return {"shape": list(t.shape), "data": [int(v) for v in t.reshape(-1).tolist()]}


def write_case(name, op, params, ints, tensors):
    case = {
        "name": name,
        "op": op,
        "params": params,
        "ints": {k: ints_json(v) for k, v in ints.items()},
        "tensors": {k: tensor_json(v) for k, v in tensors.items()},
    }
    with open(os.path.join(OUT, name + ".json"), "w") as f:
        json.dump(case, f, separators=(",", ":"))


def save_f32(tensors, path):
    from safetensors.torch import save_file

    save_file({k: v.detach().to(torch.float32).contiguous() for k, v in tensors.items()}, path)


# ----------------------------------------------------------------------------- models

def tiny_config(**over):
    from transformers import LlamaConfig

    kw = dict(
        vocab_size=96, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=128, rms_norm_eps=1e-5, initializer_range=0.15,
        tie_word_embeddings=False, bos_token_id=1, eos_token_id=2,
        rope_parameters={"rope_type": "llama3", "rope_theta": 10000.0, "factor": 8.0, "low_freq_factor": 1.0,
                         "high_freq_factor": 4.0, "original_max_position_embeddings": 64},
    )
    kw.update(over)
    return LlamaConfig(**kw)


def make_model(cfg, seed):
    from transformers import LlamaForCausalLM

    torch.manual_seed(seed)
    m = LlamaForCausalLM(cfg).to(torch.float32)
    with torch.no_grad():  # norms away from 1 so that their weights matter
        for n, p in m.named_parameters():
            if "norm" in n:
                p.copy_(1 + 0.2 * torch.randn_like(p))
    m.eval()
    return m


def grads_of(model, loss):
    model.zero_grad()
    loss.backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def llama_fixtures():
    from transformers import LlamaForCausalLM

    cfg = tiny_config()
    m32 = make_model(cfg, 0)
    d = os.path.join(OUT, "llama_tiny")
    shutil.rmtree(d, ignore_errors=True)
    m32.save_pretrained(d, safe_serialization=True)
    for extra in os.listdir(d):
        if extra not in ("config.json", "model.safetensors"):
            os.remove(os.path.join(d, extra))
    m = LlamaForCausalLM.from_pretrained(d, torch_dtype=torch.float32).double().eval()
    g = torch.Generator().manual_seed(1)

    # Plain causal batch: logits, loss (HF mean over shifted labels) and every parameter's gradient.
    ids = torch.randint(3, cfg.vocab_size, (2, 12), generator=g)
    labels = ids.clone()
    labels[0, :3] = -100
    labels[1, 7] = -100
    out = m(input_ids=ids, labels=labels)
    with torch.no_grad():
        out32 = m32(input_ids=ids)
    grads = grads_of(m, out.loss)
    save_f32(grads, os.path.join(OUT, "llama_tiny_grads.safetensors"))
    rel = ((out32.logits.double() - out.logits).abs().max() / out.logits.abs().max()).item()
    write_case("llama_tiny_causal", "LlamaForCausalLM", {"torch_float32_logits_rel_err": rel},
               {"input_ids": ids, "labels": labels}, {"logits": out.logits, "loss": out.loss})

    # Packed: three documents in one row vs. run separately.
    lens = [5, 7, 4]
    docs = [torch.randint(3, cfg.vocab_size, (1, n), generator=g) for n in lens]
    total_count = sum(n - 1 for n in lens)
    loss_sum = 0
    logits, token_losses = [], []
    for doc in docs:
        o = m(input_ids=doc)
        lg = o.logits[0]
        logits.append(lg)
        ce = torch.nn.functional.cross_entropy(lg[:-1], doc[0, 1:], reduction="none")
        token_losses.append(ce)
        loss_sum = loss_sum + ce.sum()
    loss = loss_sum / total_count
    grads = grads_of(m, loss)
    save_f32(grads, os.path.join(OUT, "llama_tiny_packed_grads.safetensors"))
    packed = torch.cat([x[0] for x in docs])[None]
    doc_ids = torch.cat([torch.full((n,), i) for i, n in enumerate(lens)])[None]
    write_case("llama_tiny_packed", "LlamaForCausalLM", {"lengths": lens},
               {"input_ids": packed, "document_ids": doc_ids},
               {"logits": torch.cat(logits), "token_losses": torch.cat(token_losses), "loss": loss})

    # Tied embeddings, plain RoPE, no GQA.
    cfg_t = tiny_config(vocab_size=64, num_hidden_layers=1, num_key_value_heads=4, tie_word_embeddings=True,
                        rope_parameters={"rope_type": "default", "rope_theta": 500000.0})
    mt32 = make_model(cfg_t, 2)
    dt = os.path.join(OUT, "llama_tied")
    shutil.rmtree(dt, ignore_errors=True)
    mt32.save_pretrained(dt, safe_serialization=True)
    for extra in os.listdir(dt):
        if extra not in ("config.json", "model.safetensors"):
            os.remove(os.path.join(dt, extra))
    mt = LlamaForCausalLM.from_pretrained(dt, torch_dtype=torch.float32).double().eval()
    ids_t = torch.randint(0, cfg_t.vocab_size, (1, 9), generator=g)
    with torch.no_grad():
        write_case("llama_tied", "LlamaForCausalLM", {}, {"input_ids": ids_t}, {"logits": mt(input_ids=ids_t).logits})

    from safetensors import safe_open

    names = {}
    for sub in ("llama_tiny", "llama_tied"):
        with safe_open(os.path.join(OUT, sub, "model.safetensors"), "pt") as f:
            names[sub] = {k: list(f.get_slice(k).get_shape()) for k in f.keys()}
    return m32, names


# ----------------------------------------------------------------------------- PEFT

def peft_fixtures(m32, names):
    from peft import LoraConfig, PeftModel, get_peft_model
    from safetensors.torch import load_file

    base = m32
    pc = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, task_type="CAUSAL_LM",
                    target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj"])
    pm = get_peft_model(base, pc)
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():  # nonzero adapters so that they matter
        for n, p in pm.named_parameters():
            if "lora_" in n:
                p.copy_(0.2 * torch.randn(p.shape, generator=g))
    d = os.path.join(OUT, "llama_tiny_lora")
    shutil.rmtree(d, ignore_errors=True)
    pm.save_pretrained(d)
    for extra in os.listdir(d):
        if extra not in ("adapter_config.json", "adapter_model.safetensors"):
            os.remove(os.path.join(d, extra))
    pm = pm.double()
    ids = torch.randint(3, 96, (2, 10), generator=g)
    labels = ids.clone()
    out = pm(input_ids=ids, labels=labels)
    pm.zero_grad()
    out.loss.backward()
    grads = {n.replace(".default", ""): p.grad.clone() for n, p in pm.named_parameters() if p.grad is not None}
    save_f32(grads, os.path.join(OUT, "lora_grads.safetensors"))
    with torch.no_grad():
        merged = pm.merge_and_unload()
        merged_logits = merged(input_ids=ids).logits
    write_case("lora_tiny", "PeftModel", {"r": 4, "lora_alpha": 8},
               {"input_ids": ids, "labels": labels},
               {"logits": out.logits, "loss": out.loss, "merged_logits": merged_logits})

    # Names PEFT writes, including a fully trained module (modules_to_save).
    from transformers import LlamaForCausalLM
    base2 = LlamaForCausalLM.from_pretrained(os.path.join(OUT, "llama_tiny"))
    pc2 = LoraConfig(r=2, lora_alpha=4, lora_dropout=0.1, target_modules=["q_proj", "v_proj"],
                     modules_to_save=["lm_head"], task_type="CAUSAL_LM")
    tmp = "/tmp/sightline_peft_names"
    shutil.rmtree(tmp, ignore_errors=True)
    get_peft_model(base2, pc2).save_pretrained(tmp)
    sd = load_file(os.path.join(tmp, "adapter_model.safetensors"))
    with open(os.path.join(tmp, "adapter_config.json")) as f:
        adapter_config = json.load(f)
    names["peft_modules_to_save"] = {k: list(v.shape) for k, v in sd.items()}
    names["peft_adapter_config"] = adapter_config
    with open(os.path.join(OUT, "peft_names.json"), "w") as f:
        json.dump(names, f, indent=1, sort_keys=True)


# ----------------------------------------------------------------------------- tokenizers

TEXTS = [
    "Hello, world! The quick brown fox jumps over the lazy dog.",
    "  leading spaces,\ttabs\t\tand   runs   of    spaces  ",
    "Numbers: 1234567 and 3.14159, 2024-06-01, 1,000,000 units; 42nd.",
    "Line one\nLine two\n\n\nLine five\r\nwindows line",
    "Emoji: 😀🎉👍🏽 family 👨‍👩‍👧 flags 🇫🇷 ok",
    "中文测试：你好，世界！日本語のテキスト。한국어 문장입니다.",
    "Ünïcödé àccents, naïve café, Straße, ΕΛΛΗΝΙΚΆ, русский текст.",
    "don't won't I'm you're we've they'll she'd IT'S",
    "<s>special</s> tokens <unk> in text <|begin_of_text|>",
    "A chat between a curious user and an artificial intelligence assistant. USER: <image>\nWhat is shown? ASSISTANT: A red cube.",
    "code: def f(x):\n    return x**2  # square\n",
    "",
    " ",
    "a",
    "e\u0301 combining \u0301x, zero\u200dwidth, \r\nX  \r\n  Y\v\x0bZ \u00a0nbsp \u3000ideo",
    "tab\t\tend\t 'S 'LL ''s 12345678 x\u2028y",
]

CORPUS = [
    "The quick brown fox jumps over the lazy dog. " * 3,
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions.",
    "USER: What is in the image? ASSISTANT: A small red cube next to a blue sphere.",
    "Numbers like 12, 345, 6789 and 3.14 appear in text. Dates: 2024-06-01.",
    "def main():\n    print('hello world')\n    return 0\n",
    "中文文本的例子，你好世界。",
    "Naïve café in Straße, the weather is nice today.",
    "Hello hello HELLO, world world world! Training a tokenizer on a tiny corpus.",
    "the theory of the thing is that there are three thousand things there",
] * 4

LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")


def bytelevel_tokenizer(llama3):
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE(ignore_merges=llama3))
    if llama3:
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(LLAMA3_SPLIT), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ])
        specials = ["<|begin_of_text|>", "<|end_of_text|>"]
    else:
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        specials = ["<|endoftext|>"]
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=420, special_tokens=specials, min_frequency=1,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(CORPUS, trainer)
    if llama3:
        bos = tok.token_to_id("<|begin_of_text|>")
        tok.post_processor = processors.TemplateProcessing(
            single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A <|begin_of_text|> $B",
            special_tokens=[("<|begin_of_text|>", bos)])
    else:
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    return tok


def bytefallback_tokenizer():
    from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, processors, trainers

    # Train merges on the normalised text (spaces as U+2581), then lay the vocabulary out as Llama 2
    # does: <unk>, <s>, </s>, the 256 byte tokens <0x00>..<0xFF>, then the learned pieces.
    t0 = Tokenizer(models.BPE(unk_token="<unk>"))
    t0.normalizer = normalizers.Sequence([normalizers.Prepend("\u2581"), normalizers.Replace(" ", "\u2581")])
    trainer = trainers.BpeTrainer(vocab_size=380, special_tokens=["<unk>", "<s>", "</s>"], min_frequency=2,
                                  limit_alphabet=60, max_token_length=8, show_progress=False)
    t0.train_from_iterator(CORPUS, trainer)
    state = json.loads(t0.to_str())
    learned = sorted(state["model"]["vocab"].items(), key=lambda kv: kv[1])
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for b in range(256):
        vocab["<0x%02X>" % b] = len(vocab)
    for piece, _ in learned:
        if piece not in vocab:
            vocab[piece] = len(vocab)
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in state["model"]["merges"]]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("\u2581"), normalizers.Replace(" ", "\u2581")])
    tok.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse(),
                                     decoders.Strip(" ", 1, 0)])
    tok.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in ["<unk>", "<s>", "</s>"]])
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)])
    return tok


def tokenizer_fixtures():
    import tokenizers

    cases = {"texts": TEXTS, "tokenizers": {}}
    for name, tok in [("bytelevel", bytelevel_tokenizer(True)), ("gpt2", bytelevel_tokenizer(False)),
                      ("bytefallback", bytefallback_tokenizer())]:
        path = os.path.join(OUT, "tokenizer_%s.json" % name)
        tok.save(path)
        tok = tokenizers.Tokenizer.from_file(path)
        entry = {"ids": [], "ids_special": [], "decoded": [], "tokens": []}
        for text in TEXTS:
            enc = tok.encode(text, add_special_tokens=False)
            entry["ids"].append(enc.ids)
            entry["tokens"].append(enc.tokens)
            entry["ids_special"].append(tok.encode(text, add_special_tokens=True).ids)
            entry["decoded"].append(tok.decode(enc.ids, skip_special_tokens=False))
        cases["tokenizers"][name] = entry
    with open(os.path.join(OUT, "tokenizer_cases.json"), "w") as f:
        json.dump(cases, f, ensure_ascii=False, indent=0)


def main():
    import peft
    import safetensors
    import tokenizers
    import transformers

    os.makedirs(OUT, exist_ok=True)
    m32, names = llama_fixtures()
    peft_fixtures(m32, names)
    tokenizer_fixtures()
    with open(os.path.join(OUT, "VERSIONS.md"), "w") as f:
        f.write("# Versions used to generate the language fixtures\n\n")
        f.write("Written by `scripts/make_language_fixtures.py` with:\n\n")
        f.write("- Python %s (%s %s)\n" % (platform.python_version(), platform.system(), platform.machine()))
        for mod in (torch, np, transformers, peft, tokenizers, safetensors):
            f.write("- %s %s\n" % (mod.__name__, mod.__version__))
        f.write("\nModel references are computed in float64 and stored rounded to float32.\n")
    total = 0
    for dirpath, _, files in os.walk(OUT):
        total += sum(os.path.getsize(os.path.join(dirpath, x)) for x in files)
    print("language fixtures: %.1f KB in %s" % (total / 1024, OUT))


if __name__ == "__main__":
    sys.exit(main())
