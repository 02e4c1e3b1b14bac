"""Reading Sightline HDF5 weights files into PyTorch.

A weights file (see ``docs/checkpoint-format.md``) is one HDF5 file with one dataset per tensor at
the root, named as PyTorch's ``state_dict`` names it, and the root attributes ``format``
(``"sightline-weights"``), ``format_version``, ``config`` (JSON text) and ``sightline_version``.

Datasets are float32, HDF5's IEEE half (float16), or bfloat16 stored as uint16 bit patterns with the
dataset attribute ``dtype = "bfloat16"``.
"""

import json

import h5py
import numpy as np
import torch

__all__ = ["load_weights", "config", "attributes", "save_weights", "WeightsFormatError"]

FORMAT = "sightline-weights"
FORMAT_VERSION = 1


class WeightsFormatError(ValueError):
    """A file that is not a Sightline weights file we can read; the message names the file."""


def _text(value):
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.ndarray) and value.shape == ():
        return _text(value[()])
    return value


def _check(f, path):
    fmt = _text(f.attrs.get("format"))
    if fmt is not None and fmt != FORMAT:
        raise WeightsFormatError(f"{path}: format is {fmt!r}, expected {FORMAT!r}")
    version = f.attrs.get("format_version")
    if version is not None and int(version) > FORMAT_VERSION:
        raise WeightsFormatError(
            f"{path}: format_version {int(version)} is newer than this reader ({FORMAT_VERSION})")


def _tensor(name, ds, path):
    data = np.array(ds[()], copy=True, order="C")  # keeps 0-d arrays 0-d
    kind = _text(ds.attrs.get("dtype"))
    if kind == "bfloat16":
        if data.dtype != np.uint16:
            raise WeightsFormatError(
                f"{path}: tensor {name!r} is marked bfloat16 but stored as {data.dtype}, not uint16")
        # The uint16 bit patterns are the bfloat16 values: reinterpret, never convert.
        return torch.from_numpy(data.view(np.int16)).view(torch.bfloat16)
    if kind is not None:
        raise WeightsFormatError(f"{path}: tensor {name!r} has an unknown dtype attribute {kind!r}")
    if data.dtype == np.float64:
        data = data.astype(np.float32)
    return torch.from_numpy(data)


def load_weights(path, dtype=None):
    """Reads every tensor of a Sightline weights file.

    Args:
        path: the ``.h5`` file.
        dtype: convert every floating tensor to this ``torch.dtype``; ``None`` (default) keeps the
            stored type (float32, float16 or bfloat16; float64 from other writers becomes float32).

    Returns:
        a ``dict`` name -> ``torch.Tensor`` in file (module) order, ready for
        ``module.load_state_dict(state, strict=True)``.

    Raises:
        WeightsFormatError: another format, a newer format version, or a malformed bfloat16 dataset.
    """
    state = {}
    with h5py.File(path, "r") as f:
        _check(f, path)
        # h5py lists names in creation order when the file tracks it (ours does).
        for name, ds in f.items():
            if not isinstance(ds, h5py.Dataset):
                continue
            t = _tensor(name, ds, path)
            if dtype is not None and t.is_floating_point():
                t = t.to(dtype)
            state[name] = t
    return state


def attributes(path):
    """The root attributes of a weights file as strings or numbers (``format``, ``config``, ...)."""
    with h5py.File(path, "r") as f:
        return {k: _text(v) for k, v in f.attrs.items()}


def config(path):
    """The model configuration stored in the root ``config`` attribute, parsed from JSON (``{}`` when
    the file has none)."""
    text = attributes(path).get("config") or "{}"
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise WeightsFormatError(f"{path}: the config attribute is not JSON: {e}") from None


def save_weights(state_dict, path, config=None, dtype=None):
    """Writes ``state_dict`` as a Sightline weights file that Sightline's loaders read.

    Args:
        state_dict: name -> tensor (names must not contain ``/``).
        path: the ``.h5`` file to create.
        config: a JSON-serialisable configuration (or JSON text) for the root ``config`` attribute.
        dtype: ``torch.float32``, ``torch.float16`` or ``torch.bfloat16``; ``None`` keeps each
            tensor's own floating type among those three (others become float32).
    """
    text = config if isinstance(config, str) else json.dumps(config if config is not None else {})
    with h5py.File(path, "w", track_order=True) as f:
        f.attrs["format"] = FORMAT
        f.attrs["format_version"] = np.int64(FORMAT_VERSION)
        f.attrs["config"] = text
        f.attrs["sightline_version"] = "sightline_torch"
        for name, t in state_dict.items():
            if "/" in name:
                raise ValueError(f"tensor name {name!r} contains '/'")
            t = t.detach().cpu()
            if t.is_floating_point():
                target = dtype or (t.dtype if t.dtype in (torch.float16, torch.bfloat16) else torch.float32)
                t = t.to(target).contiguous()
                if target == torch.bfloat16:
                    ds = f.create_dataset(name, data=t.view(torch.int16).numpy().view(np.uint16))
                    ds.attrs["dtype"] = "bfloat16"
                    continue
            f.create_dataset(name, data=t.contiguous().numpy())
