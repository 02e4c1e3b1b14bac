#!/usr/bin/env python3
"""Writes the Vision package's reference fixtures under Tests/Fixtures/vision/.

Run by hand (CI has no torch); the outputs are committed. `--check-export DIR` instead loads a model
directory written by Sightline (`CLIPVisionModel.savePretrained`) with transformers and checks it
(run by the Vision tests when a Python with torch and transformers is available). Pinned versions (written to the JSON files):
transformers 5.23.0, torch 2.13.0+cpu, safetensors 0.8.0, Pillow 13.0.0. Deterministic (fixed seeds).

Files:
- clip_tiny/config.json, clip_tiny/model.safetensors: a small randomly initialised HF `CLIPVisionModel`
  (hidden 32, 3 layers, 4 heads, patch 4, image 32) written by `save_pretrained` (float32). Every weight is
  re-drawn at a visible scale (layer-norm weights near 1, biases and projections O(0.1..0.5)) so that no
  parameter is a trivial default.
- clip_tiny.json: the case description (config, sizes, the checkpoint key names and shapes that
  `save_pretrained` wrote, the transformers version, and `notes.torch_float32_rel_err`).
- clip_tiny_reference.safetensors: inputs and references, float32:
    native.pixel_values [2, 3, 32, 32], native.hidden_states.<i> [2, 65, 32] for i = 0...3
    (HF `hidden_states`: 0 is the encoder input, after `pre_layrnorm`), native.pooler_output [2, 32];
    interp.pixel_values [2, 3, 40, 24] (grid 10 x 6, `interpolate_pos_encoding=True`),
    interp.hidden_states.<i> [2, 61, 32], interp.pooler_output,
    interp.r_last [2, 61, 32], interp.r_pooled [2, 32], and interp.grad.<name> for every parameter:
    the gradient of sum(last_hidden_state * r_last) + sum(pooler_output * r_pooled).
    References are computed in float64 from the float32 weights and inputs, then rounded to float32.
- pos_interp.safetensors: position-embedding resampling of clip_tiny's table (65 x 32, grid 8 x 8) to
  the grids 10 x 6 and 5 x 7 by the three rules: `hf` (HF `interpolate_pos_encoding` itself: bicubic,
  align_corners=False, no antialias), `cos` (Chain-of-Sight: align_corners=True) and `timm`
  (timm `resample_abs_pos_embed`: antialias=True, align_corners=False), each [1 + h*w, 32] with the class
  row first. Computed in float64.
- images/*.png, images/*.jpg: small committed test images (RGB, grayscale, palette with transparency,
  16-bit grayscale, RGBA, CMYK JPEG, EXIF-rotated JPEG, RGB JPEG).
- preprocess.safetensors + preprocess.json: for each image, `decoded.<name>` [H, W, 3] (uint8: PIL's decode after EXIF transpose and HF's `convert_to_rgb`, which composites transparency on
  white; the 16-bit image is reduced by round(v * 255 / 65535)) and `clip.<name>` [3, 24, 24]: HF
  `CLIPImageProcessorPil` (shortest edge 24, center crop 24) output with do_normalize=False, i.e. in [0, 1]
  before the mean/std step.
"""

import io
import json
import os
import platform

import numpy as np
import PIL
import safetensors
import torch
import transformers
from PIL import Image, ImageOps
from safetensors.torch import save_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "Tests", "Fixtures", "vision")
PINNED = {"transformers": "5.23.0", "torch": "2.13.0+cpu", "safetensors": "0.8.0", "Pillow": "13.0.0"}

torch.use_deterministic_algorithms(True)
torch.set_num_threads(1)


def versions():
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "safetensors": safetensors.__version__,
        "Pillow": PIL.__version__,
        "numpy": np.__version__,
    }


def check_versions():
    got = versions()
    for k, v in PINNED.items():
        if got[k] != v:
            print(f"warning: {k} {got[k]} differs from the pinned {v}; fixtures may change")


def f32(t):
    return t.detach().to(torch.float32).contiguous()


def rel_err(a, ref):
    a = a.detach().double()
    ref = ref.detach().double()
    return float((a - ref).abs().max() / ref.abs().max().clamp_min(1e-30))


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=1, sort_keys=True)
        f.write("\n")


# ---------------------------------------------------------------------------------------------------
# CLIP vision tower


def make_model():
    from transformers import CLIPVisionConfig, CLIPVisionModel

    config = CLIPVisionConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4, image_size=32,
        patch_size=4, num_channels=3, hidden_act="quick_gelu", layer_norm_eps=1e-5)
    torch.manual_seed(0)
    model = CLIPVisionModel(config).eval()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name and name.endswith("weight"):
                p.copy_(1 + 0.2 * torch.randn(p.shape, generator=g))
            elif name.endswith("bias"):
                p.copy_(0.2 * torch.randn(p.shape, generator=g))
            elif "position_embedding" in name or "class_embedding" in name:
                p.copy_(0.5 * torch.randn(p.shape, generator=g))
            else:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=g) / fan_in ** 0.5)
    return model


def run(model, pixels, interpolate):
    out = model(pixel_values=pixels, output_hidden_states=True, interpolate_pos_encoding=interpolate)
    return out


def clip_cases():
    from transformers import CLIPVisionModel

    model = make_model()
    directory = os.path.join(OUT, "clip_tiny")
    os.makedirs(directory, exist_ok=True)
    model.save_pretrained(directory, safe_serialization=True)
    # Reload exactly what was written, so the references use the committed float32 weights.
    model = CLIPVisionModel.from_pretrained(directory).eval()
    from safetensors import safe_open

    with safe_open(os.path.join(directory, "model.safetensors"), "pt") as f:
        saved = {k: list(f.get_slice(k).get_shape()) for k in f.keys()}

    g = torch.Generator().manual_seed(2)
    tensors = {}
    notes = {}
    m64 = CLIPVisionModel.from_pretrained(directory).eval().double()
    for tag, (h, w), interpolate in (("native", (32, 32), False), ("interp", (40, 24), True)):
        pixels = torch.randn(2, 3, h, w, generator=g)
        tensors[f"{tag}.pixel_values"] = pixels
        out32 = run(model, pixels, interpolate)
        out64 = run(m64, pixels.double(), interpolate)
        for i, hs in enumerate(out64.hidden_states):
            tensors[f"{tag}.hidden_states.{i}"] = f32(hs)
            notes[f"{tag}.hidden_states.{i}"] = rel_err(out32.hidden_states[i], hs)
        tensors[f"{tag}.pooler_output"] = f32(out64.pooler_output)
        notes[f"{tag}.pooler_output"] = rel_err(out32.pooler_output, out64.pooler_output)
        # hidden_states[-1] is the last encoder output (before post_layernorm).
        assert torch.equal(out64.hidden_states[-1], out64.last_hidden_state)
        if tag == "interp":
            r_last = torch.randn(out64.last_hidden_state.shape, generator=g)
            r_pooled = torch.randn(out64.pooler_output.shape, generator=g)
            tensors["interp.r_last"] = r_last
            tensors["interp.r_pooled"] = r_pooled
            m64.zero_grad()
            out64 = run(m64, pixels.double(), interpolate)
            loss = (out64.last_hidden_state * r_last.double()).sum() + (out64.pooler_output * r_pooled.double()).sum()
            loss.backward()
            model.zero_grad()
            out32 = run(model, pixels, interpolate)
            loss32 = (out32.last_hidden_state * r_last).sum() + (out32.pooler_output * r_pooled).sum()
            loss32.backward()
            p32 = dict(model.named_parameters())
            for name, p in m64.named_parameters():
                tensors[f"interp.grad.{name}"] = f32(p.grad)
                notes[f"interp.grad.{name}"] = rel_err(p32[name].grad, p.grad)
    save_file({k: f32(v) for k, v in tensors.items()}, os.path.join(OUT, "clip_tiny_reference.safetensors"),
              metadata={"format": "pt"})

    c = model.config
    write_json(os.path.join(OUT, "clip_tiny.json"), {
        "name": "clip_tiny", "op": "CLIPVisionModel",
        "params": {
            "config": {k: getattr(c, k) for k in (
                "image_size", "patch_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                "intermediate_size", "hidden_act", "layer_norm_eps", "num_channels")},
            "native_size": [32, 32], "interp_size": [40, 24], "batch": 2,
            "hidden_states": "index 0 is the encoder input (after pre_layrnorm); index i the output of layer i",
            "loss": "sum(last_hidden_state * r_last) + sum(pooler_output * r_pooled)",
            "saved_keys": saved,
            "saved_key_note": "transformers 5 writes CLIPVisionModel keys without the vision_model. prefix "
                              "(transformers 4 wrote vision_model.<key>); both load in transformers 5",
            "versions": versions(),
        },
        "ints": {}, "tensors": {},
        "notes": {"torch_float32_rel_err": notes},
    })
    return model


def pos_interp_cases(model):
    import torch.nn.functional as F

    emb = model.embeddings
    table = emb.position_embedding.weight.detach().double()
    dim = table.shape[1]
    g = int(round((table.shape[0] - 1) ** 0.5))
    tensors = {}
    for (gh, gw) in ((10, 6), (5, 7)):
        # HF's own method, fed a dummy embeddings tensor of the right token count.
        e64 = emb.double()
        dummy = torch.zeros(1, 1 + gh * gw, dim, dtype=torch.float64)
        hf = e64.interpolate_pos_encoding(dummy, gh * emb.patch_size, gw * emb.patch_size)[0]
        emb.float()
        tensors[f"hf.{gh}x{gw}"] = hf
        grid = table[1:].reshape(1, g, g, dim).permute(0, 3, 1, 2)
        for tag, kwargs in (("cos", dict(align_corners=True)), ("timm", dict(align_corners=False, antialias=True))):
            out = F.interpolate(grid, size=(gh, gw), mode="bicubic", **kwargs)
            out = out.permute(0, 2, 3, 1).reshape(gh * gw, dim)
            tensors[f"{tag}.{gh}x{gw}"] = torch.cat([table[:1], out], 0)
        # The plain F.interpolate form agrees with HF's method (sanity of the dummy-tensor call).
        plain = F.interpolate(grid, size=(gh, gw), mode="bicubic", align_corners=False)
        assert torch.allclose(torch.cat([table[:1], plain.permute(0, 2, 3, 1).reshape(-1, dim)]), hf)
    tensors["table"] = table
    save_file({k: f32(v) for k, v in tensors.items()}, os.path.join(OUT, "pos_interp.safetensors"),
              metadata={"format": "pt"})


# ---------------------------------------------------------------------------------------------------
# Images and preprocessing


def pattern(h, w, seed):
    """A smooth colour pattern with a little noise (deterministic)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 127.5 + 127.5 * np.sin(x / w * 6.3 + seed)
    gr = 127.5 + 127.5 * np.cos(y / h * 4.1 - seed)
    b = 255.0 * ((x + y) % 17) / 16
    img = np.stack([r, gr, b], -1) + rng.normal(0, 12, (h, w, 3))
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def make_images():
    d = os.path.join(OUT, "images")
    os.makedirs(d, exist_ok=True)
    made = {}

    def save(name, img, **kw):
        path = os.path.join(d, name)
        img.save(path, **kw)
        made[name] = path

    rgb = pattern(23, 37, 1)
    save("rgb.png", Image.fromarray(rgb, "RGB"))
    save("gray.png", Image.fromarray(pattern(29, 21, 2)[..., 0], "L"))
    pal = Image.fromarray(pattern(19, 26, 3), "RGB").quantize(colors=16, method=Image.Quantize.MEDIANCUT)
    pal.info["transparency"] = 3
    save("palette.png", pal, transparency=3)
    g16 = (pattern(24, 30, 4)[..., 1].astype(np.uint16) * 257 + np.arange(30, dtype=np.uint16)[None, :] * 3)
    save("gray16.png", Image.fromarray(g16))
    rgba = np.concatenate([pattern(27, 22, 5), np.linspace(0, 255, 27 * 22).reshape(27, 22, 1).astype(np.uint8)], -1)
    save("rgba.png", Image.fromarray(rgba, "RGBA"))
    save("rgb.jpg", Image.fromarray(pattern(40, 33, 6), "RGB"), quality=92)
    cmyk = Image.fromarray(pattern(21, 34, 7), "RGB").convert("CMYK")
    save("cmyk.jpg", cmyk, quality=95)
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    save("exif6.jpg", Image.fromarray(pattern(18, 31, 8), "RGB"), quality=92, exif=exif.tobytes())
    return made


def reference_decode(name, path):
    img = Image.open(path)
    if img.mode == "I;16":
        a = np.asarray(img).astype(np.float64)
        v = np.rint(a * 255 / 65535).astype(np.uint8)
        return np.repeat(v[..., None], 3, -1)
    img = ImageOps.exif_transpose(img)
    from transformers.image_transforms import convert_to_rgb

    return np.asarray(convert_to_rgb(img, return_numpy=True)).astype(np.uint8)


def preprocess_cases():
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    made = make_images()
    proc = CLIPImageProcessorPil(size={"shortest_edge": 24}, crop_size={"height": 24, "width": 24},
                                 do_normalize=False)
    tensors = {}
    info = {}
    for name, path in sorted(made.items()):
        dec = reference_decode(name, path)
        tensors[f"decoded.{name}"] = torch.from_numpy(dec.copy())
        out = proc(images=Image.fromarray(dec, "RGB"), return_tensors="pt")["pixel_values"][0]
        tensors[f"clip.{name}"] = out
        info[name] = {"decoded_shape": list(dec.shape), "mode": Image.open(path).mode}
    save_file({k: v if v.dtype == torch.uint8 else f32(v) for k, v in tensors.items()},
              os.path.join(OUT, "preprocess.safetensors"),
              metadata={"format": "pt"})
    write_json(os.path.join(OUT, "preprocess.json"), {
        "name": "preprocess", "op": "CLIPImageProcessorPil",
        "params": {"images": info, "shortest_edge": 24, "crop": [24, 24], "resample": "bicubic",
                   "do_normalize": False, "versions": versions(),
                   "mean": list(proc.image_mean), "std": list(proc.image_std)},
        "ints": {}, "tensors": {}, "notes": {}})


def check_export(directory):
    """Loads a directory written by Sightline's `CLIPVisionModel.savePretrained` with HF transformers and
    compares its outputs with the committed references. Exit status 0 when it loads with no missing or
    unexpected keys and every hidden state is within 1e-4 relative."""
    from safetensors.torch import load_file
    from transformers import CLIPVisionModel

    model, info = CLIPVisionModel.from_pretrained(directory, output_loading_info=True)
    problems = {k: sorted(v) for k, v in info.items() if v}
    if problems:
        print("loading problems:", problems)
        return 1
    ref = load_file(os.path.join(OUT, "clip_tiny_reference.safetensors"))
    with torch.no_grad():
        out = model.eval()(pixel_values=ref["native.pixel_values"], output_hidden_states=True)
    worst = 0.0
    for i, hs in enumerate(out.hidden_states):
        worst = max(worst, rel_err(hs, ref[f"native.hidden_states.{i}"]))
    worst = max(worst, rel_err(out.pooler_output, ref["native.pooler_output"]))
    print(f"transformers {transformers.__version__} loaded {directory}: no missing or unexpected keys, "
          f"max relative error {worst:.3g}")
    return 0 if worst <= 1e-4 else 1


def check_weights_file(path):
    """Loads a Sightline HDF5 weights file (written from the imported clip_tiny) into HF's
    `CLIPVisionModel` the documented way (h5py -> state_dict -> load_state_dict(strict=True)), checks
    that its names and shapes are exactly the keys `save_pretrained` wrote (clip_tiny/model.safetensors),
    and compares outputs with the references. Exit status 0 on success."""
    import h5py
    from safetensors import safe_open
    from transformers import CLIPVisionConfig, CLIPVisionModel

    directory = os.path.join(OUT, "clip_tiny")
    with safe_open(os.path.join(directory, "model.safetensors"), "pt") as f:
        hf = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    with h5py.File(path, "r") as f:
        assert f.attrs["format"] == "sightline-weights", f.attrs["format"]
        state = {k: torch.from_numpy(f[k][()]) for k in f.keys()}
    ours = {k: tuple(v.shape) for k, v in state.items()}
    # transformers 5 writes CLIPVisionModel keys without the `vision_model.` prefix; ours carry it
    # (what transformers 4 writes; both load it).
    canon = {(k if k.startswith("vision_model.") else "vision_model." + k): v for k, v in hf.items()}
    if ours != canon:
        print("names/shapes differ:", sorted(set(ours.items()) ^ set(canon.items()))[:10])
        return 1
    model = CLIPVisionModel(CLIPVisionConfig.from_pretrained(directory)).eval()
    target = model.state_dict()
    if not all(k in target for k in state):
        state = {k[len("vision_model."):]: v for k, v in state.items()}
    model.load_state_dict(state, strict=True)  # raises on any missing or unexpected key
    from safetensors.torch import load_file
    ref = load_file(os.path.join(OUT, "clip_tiny_reference.safetensors"))
    with torch.no_grad():
        out = model(pixel_values=ref["native.pixel_values"], output_hidden_states=True)
    worst = max(rel_err(hs, ref[f"native.hidden_states.{i}"]) for i, hs in enumerate(out.hidden_states))
    print(f"{path}: {len(state)} tensors, names and shapes as save_pretrained, strict load, max relative error {worst:.3g}")
    return 0 if worst <= 1e-4 else 1


def main():
    import sys

    if len(sys.argv) == 3 and sys.argv[1] == "--check-export":
        sys.exit(check_export(sys.argv[2]))
    if len(sys.argv) == 3 and sys.argv[1] == "--check-weights-file":
        sys.exit(check_weights_file(sys.argv[2]))
    check_versions()
    os.makedirs(OUT, exist_ok=True)
    model = clip_cases()
    pos_interp_cases(model)
    preprocess_cases()
    print("wrote", OUT)


if __name__ == "__main__":
    main()
