#!/usr/bin/env python3
"""Corruption loop over every reader Sightline has.

Builds valid base files of each kind (safetensors, Sightline HDF5 weights and checkpoints, foreign HDF5
written by h5py, PyTorch zip and legacy pickle, HF model directories, JSONL manifests, LLaVA JSON,
WebDataset tar, PNG, JPEG), damages each many times (bit flips, byte flips in the headers, truncation,
changed digits, inserted garbage, duplicated blocks), and reads every damaged copy through the real
readers in a child process (`weights _probe` for tensor files, `trainer _probe-data` for data files)
under an address-space limit and a timeout. It counts:

  crashes     the child died from a signal (other than our timeout kill)
  hangs       the child did not finish within the timeout
  over-limit  the child failed to allocate under the address-space limit (a crash whose output
              mentions memory, or an out-of-memory exit)
  unnamed     the child reported an error whose text does not name the damaged file
  hdf5        crashes that happened while libhdf5 parsed a foreign HDF5 file (no checksum to stop it)

Usage (after `swift build -c release`):
  python3 scripts/corruption_loop.py [--bin .build/release] [--cases 200] [--seed 1]
      [--limit-gib 8] [--timeout 20] [--kinds safetensors,hdf5,...]

Needs numpy and h5py (for the foreign HDF5 and the bases); torch is used for the PyTorch bases when
installed (otherwise those bases are written by hand).
"""

import argparse
import io
import json
import os
import random
import resource
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import zlib

import numpy as np


def limit_memory(gib):
    def apply():
        limit = int(gib * (1 << 30))
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    return apply


# ---------------------------------------------------------------- base files

def write_safetensors(path, tensors, metadata=None):
    header = {}
    offset = 0
    blobs = []
    for name, a in tensors.items():
        a = np.ascontiguousarray(a, dtype="<f4")
        b = a.tobytes()
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [offset, offset + len(b)]}
        offset += len(b)
        blobs.append(b)
    if metadata:
        header["__metadata__"] = metadata
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def sample_tensors(rng, scale=1):
    return {
        "model.embed_tokens.weight": rng.standard_normal((16 * scale, 8)).astype("f4"),
        "model.layers.0.self_attn.q_proj.weight": rng.standard_normal((8, 8)).astype("f4"),
        "model.norm.weight": np.ones(8, dtype="f4"),
    }


def png_bytes(w, h, rng):
    raw = b"".join(b"\x00" + rng.integers(0, 255, w * 3, dtype=np.uint8).tobytes() for _ in range(h))

    def chunk(t, body):
        return struct.pack(">I", len(body)) + t + body + struct.pack(">I", zlib.crc32(t + body) & 0xFFFFFFFF)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"tEXt", b"Comment\x00hello") + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def jpeg_bytes(rng):
    try:
        from PIL import Image
        img = Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8))
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=80)
        return buf.getvalue()
    except ImportError:
        return None


def tar_bytes(members):
    import tarfile
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as t:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def build_bases(d, weights_bin, rng):
    """Returns [(kind, probe, path)]: probe is 'tensor' or a data kind for _probe-data."""
    bases = []
    st = os.path.join(d, "base.safetensors")
    write_safetensors(st, sample_tensors(rng), {"format": "pt"})
    bases.append(("safetensors", "tensor", st))

    # Sightline HDF5 weights file and training checkpoint (checksummed), via the weights tool.
    h5 = os.path.join(d, "base.h5")
    subprocess.run([weights_bin, "convert", st, h5], check=True, capture_output=True)
    bases.append(("hdf5-sightline", "tensor", h5))
    ckdir = os.path.join(d, "ck")
    subprocess.run([weights_bin, "_crash-helper", ckdir, "--saves", "1", "--size", "256"], check=True,
                   capture_output=True)
    ck = os.path.join(ckdir, sorted(n for n in os.listdir(ckdir) if n.startswith("checkpoint-"))[0])
    bases.append(("hdf5-checkpoint", "tensor", ck))

    # Foreign HDF5 (no checksum): these reach libhdf5 unverified, in the child.
    import h5py
    fh = os.path.join(d, "foreign.h5")
    with h5py.File(fh, "w") as f:
        for k, v in sample_tensors(rng).items():
            f[k] = v
        f.create_dataset("chunked", data=rng.standard_normal((32, 8)).astype("f4"), chunks=(8, 8),
                         compression="gzip")
    bases.append(("hdf5-foreign", "tensor", fh))

    # PyTorch zip and legacy pickle.
    try:
        import torch
        sd = {k: torch.from_numpy(v) for k, v in sample_tensors(rng).items()}
        pz = os.path.join(d, "base.bin")
        torch.save(sd, pz)
        bases.append(("pytorch-zip", "tensor", pz))
        pl = os.path.join(d, "legacy.bin")
        torch.save(sd, pl, _use_new_zipfile_serialization=False)
        bases.append(("pytorch-legacy", "tensor", pl))
    except ImportError:
        pass

    # HF directory: sharded safetensors with an index (the damaged file is the index).
    hf = os.path.join(d, "hf")
    os.makedirs(hf)
    t = sample_tensors(rng)
    names = list(t)
    write_safetensors(os.path.join(hf, "model-00001-of-00002.safetensors"), {k: t[k] for k in names[:2]})
    write_safetensors(os.path.join(hf, "model-00002-of-00002.safetensors"), {k: t[k] for k in names[2:]})
    wm = {k: ("model-00001-of-00002.safetensors" if i < 2 else "model-00002-of-00002.safetensors")
          for i, k in enumerate(names)}
    with open(os.path.join(hf, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": 0}, "weight_map": wm}, f)
    bases.append(("hf-index", "tensor", os.path.join(hf, "model.safetensors.index.json")))

    # Data: images next to the manifests.
    png = png_bytes(8, 6, rng)
    with open(os.path.join(d, "img.png"), "wb") as f:
        f.write(png)
    bases.append(("png", "png", os.path.join(d, "img.png")))
    jpg = jpeg_bytes(rng)
    if jpg:
        with open(os.path.join(d, "img.jpg"), "wb") as f:
            f.write(jpg)
        bases.append(("jpeg", "jpeg", os.path.join(d, "img.jpg")))
    cap = os.path.join(d, "captions.jsonl")
    with open(cap, "w") as f:
        for i in range(6):
            f.write(json.dumps({"image": "img.png", "caption": f"a picture {i}"}) + "\n")
    bases.append(("jsonl", "captions", cap))
    inter = os.path.join(d, "interleaved.jsonl")
    with open(inter, "w") as f:
        for i in range(4):
            f.write(json.dumps({"texts": ["before", None, "after"], "images": [None, "img.png", None]}) + "\n")
    bases.append(("jsonl-interleaved", "interleaved", inter))
    llava = os.path.join(d, "llava.json")
    with open(llava, "w") as f:
        json.dump([{"image": "img.png", "conversations": [
            {"from": "human", "value": "<image>\nWhat is it?"}, {"from": "gpt", "value": f"Thing {i}."}]}
            for i in range(4)], f)
    bases.append(("llava-json", "llava", llava))
    tar = os.path.join(d, "shard.tar")
    with open(tar, "wb") as f:
        f.write(tar_bytes([("a.png", png), ("a.txt", b"caption a"), ("b.png", png), ("b.txt", b"caption b")]))
    bases.append(("tar", "tar", tar))
    return bases


# ---------------------------------------------------------------- damage

def corrupt(data, rng):
    b = bytearray(data)
    n = len(b)
    hot = min(n, 2048)
    how = rng.randrange(8)
    if n == 0:
        return bytes(b), "empty"
    if how == 0:
        for _ in range(rng.randint(1, 8)):
            i = rng.randrange(n)
            b[i] ^= 1 << rng.randrange(8)
        return bytes(b), "bit flips"
    if how == 1:
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(hot)
            b[i] = rng.randrange(256)
        return bytes(b), "header bytes"
    if how == 2:
        k = rng.randrange(n)
        return bytes(b[:k]), f"truncate to {k}"
    if how == 3:
        digits = [i for i in range(hot) if 48 <= b[i] <= 57]
        if digits:
            for _ in range(rng.randint(1, 3)):
                i = rng.choice(digits)
                b[i] = rng.choice(b"0123456789")
            return bytes(b), "digits"
        return bytes(b), "unchanged"
    if how == 4:
        # A huge length where a length might be: 4 or 8 bytes of 0x7f/0xff.
        i = rng.randrange(max(1, hot - 8))
        for j in range(rng.choice([4, 8])):
            if i + j < n:
                b[i + j] = rng.choice([0x7F, 0xFF])
        return bytes(b), "huge length"
    if how == 5:
        i = rng.randrange(n)
        return bytes(b[:i] + os.urandom(rng.randint(1, 64)) + b[i:]), "insert garbage"
    if how == 6:
        i = rng.randrange(n)
        k = rng.randint(1, min(512, n - i))
        return bytes(b[:i] + b[i:i + k] * 2 + b[i + k:]), "duplicate block"
    i = rng.randrange(hot)
    b[i:i + 1] = b""
    return bytes(b), "delete byte"


# ---------------------------------------------------------------- run

def run_case(args, probe, path):
    if probe == "tensor":
        cmd = [args.weights, "_probe", "--path", path]
    else:
        cmd = [args.trainer, "_probe-data", "--kind", probe, path]
    try:
        p = subprocess.run(cmd, capture_output=True, timeout=args.timeout, preexec_fn=limit_memory(args.limit_gib))
    except subprocess.TimeoutExpired:
        return "hang", ""
    out = p.stdout.decode("utf-8", "replace") + p.stderr.decode("utf-8", "replace")
    if p.returncode < 0:
        mem = any(w in out.lower() for w in ("alloc", "memory", "mmap"))
        return ("over-limit" if mem else "crash"), out
    if p.returncode != 0:
        if any(w in out.lower() for w in ("cannot allocate", "out of memory")):
            return "over-limit", out
        return "crash", out
    first = out.splitlines()[0] if out else ""
    if first.startswith("ERR"):
        return ("error" if os.path.basename(path) in first else "unnamed"), first
    for line in out.splitlines():
        if line.startswith("PROBLEM") and os.path.basename(path) not in line and "img" not in line:
            return "unnamed", line
    return "ok", first


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=".build/release")
    ap.add_argument("--cases", type=int, default=200, help="damaged copies per base file")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--limit-gib", type=float, default=8)
    ap.add_argument("--timeout", type=float, default=20)
    ap.add_argument("--kinds", default="", help="comma-separated base kinds (default: all)")
    ap.add_argument("--keep", action="store_true", help="keep the working directory")
    args = ap.parse_args()
    args.weights = os.path.join(args.bin, "weights")
    args.trainer = os.path.join(args.bin, "trainer")
    rng = random.Random(args.seed)
    nprng = np.random.default_rng(args.seed)
    work = tempfile.mkdtemp(prefix="sightline-corruption-")
    bases = build_bases(work, args.weights, nprng)
    if args.kinds:
        want = set(args.kinds.split(","))
        bases = [b for b in bases if b[0] in want]
    totals = {}
    examples = {}
    print(f"{'reader':<20}{'cases':>7}{'ok':>6}{'error':>7}{'crash':>7}{'hang':>6}{'over':>6}{'unnamed':>9}")
    for kind, probe, base in bases:
        data = open(base, "rb").read()
        counts = dict.fromkeys(["ok", "error", "crash", "hang", "over-limit", "unnamed"], 0)
        ext = os.path.splitext(base)[1]
        for i in range(args.cases):
            bad, how = corrupt(data, rng)
            target = os.path.join(os.path.dirname(base), f"fuzz-{kind}-{i}{ext}")
            if kind == "hf-index":
                target = base  # the index is read by name; restored below
            with open(target, "wb") as f:
                f.write(bad)
            result, text = run_case(args, probe, target)
            counts[result] += 1
            if result not in ("ok", "error"):
                examples.setdefault((kind, result), []).append(f"{how}: {text[:300]}")
                if result == "crash" and kind == "hdf5-foreign":
                    totals["hdf5-crash"] = totals.get("hdf5-crash", 0) + 1
                keep = os.path.join(work, "kept")
                os.makedirs(keep, exist_ok=True)
                shutil.copy(target, os.path.join(keep, f"{kind}-{result}-{i}{ext}"))
            if kind == "hf-index":
                with open(base, "wb") as f:
                    f.write(data)
            else:
                os.unlink(target)
        for k, v in counts.items():
            totals[k] = totals.get(k, 0) + v
        print(f"{kind:<20}{args.cases:>7}{counts['ok']:>6}{counts['error']:>7}{counts['crash']:>7}"
              f"{counts['hang']:>6}{counts['over-limit']:>6}{counts['unnamed']:>9}")
    n = args.cases * len(bases)
    print(f"{'total':<20}{n:>7}{totals.get('ok', 0):>6}{totals.get('error', 0):>7}{totals.get('crash', 0):>7}"
          f"{totals.get('hang', 0):>6}{totals.get('over-limit', 0):>6}{totals.get('unnamed', 0):>9}")
    print(f"libhdf5 crashes on foreign (unchecksummed) files, counted in the child: {totals.get('hdf5-crash', 0)}")
    for (kind, result), ex in sorted(examples.items()):
        print(f"\n{kind} {result} ({len(ex)}):")
        for e in ex[:3]:
            print("  " + e.replace("\n", " "))
    if args.keep or any(totals.get(k, 0) for k in ("crash", "hang", "over-limit", "unnamed")):
        print(f"\nwork directory kept: {work}")
    else:
        shutil.rmtree(work)
    bad = sum(totals.get(k, 0) for k in ("crash", "hang", "over-limit", "unnamed")) - totals.get("hdf5-crash", 0)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
