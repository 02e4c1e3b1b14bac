import json

import h5py
import numpy as np
import pytest
import torch

import sightline_torch as st


def test_round_trip_keeps_names_order_values_and_config(tmp_path):
    g = torch.Generator().manual_seed(0)
    state = {"b.weight": torch.randn(3, 4, generator=g), "a.bias": torch.randn(4, generator=g),
             "scalar": torch.tensor(2.5), "empty": torch.zeros(0, 3)}
    path = tmp_path / "w.h5"
    st.save_weights(state, path, config={"type": "projection", "visionDim": 4})
    back = st.load_weights(path)
    assert list(back) == list(state)
    for k in state:
        assert back[k].dtype == torch.float32 and back[k].shape == state[k].shape
        assert torch.equal(back[k], state[k])
    assert st.config(path) == {"type": "projection", "visionDim": 4}
    attrs = st.attributes(path)
    assert attrs["format"] == "sightline-weights" and int(attrs["format_version"]) == 1


def test_bfloat16_is_stored_as_uint16_bit_patterns_and_read_back_exactly(tmp_path):
    x = torch.tensor([1.0, -2.5, 3.140625, 1e-3, 65504.0, -0.0], dtype=torch.float32)
    path = tmp_path / "bf16.h5"
    st.save_weights({"x": x}, path, dtype=torch.bfloat16)
    with h5py.File(path, "r") as f:
        assert f["x"].dtype == np.uint16 and f["x"].attrs["dtype"] == "bfloat16"
        bits = f["x"][()]
    expected = x.to(torch.bfloat16)
    assert np.array_equal(bits, expected.view(torch.int16).numpy().view(np.uint16))
    back = st.load_weights(path)["x"]
    assert back.dtype == torch.bfloat16 and torch.equal(back.view(torch.int16), expected.view(torch.int16))
    assert st.load_weights(path, dtype=torch.float32)["x"].dtype == torch.float32


def test_float16_uses_hdf5_half(tmp_path):
    x = torch.tensor([[0.1, 2.0], [-3.0, 1e-4]])
    path = tmp_path / "f16.h5"
    st.save_weights({"x": x}, path, dtype=torch.float16)
    with h5py.File(path, "r") as f:
        assert f["x"].dtype == np.float16
    back = st.load_weights(path)["x"]
    assert back.dtype == torch.float16 and torch.equal(back, x.half())


def test_foreign_float64_becomes_float32_and_missing_config_is_empty(tmp_path):
    path = tmp_path / "plain.h5"
    with h5py.File(path, "w") as f:
        f["w"] = np.arange(6, dtype=np.float64).reshape(2, 3)
    back = st.load_weights(path)
    assert back["w"].dtype == torch.float32 and back["w"][1, 2] == 5
    assert st.config(path) == {}


def test_other_formats_newer_versions_and_bad_bfloat16_are_refused_with_the_file_name(tmp_path):
    ckpt = tmp_path / "ckpt.h5"
    with h5py.File(ckpt, "w") as f:
        f.attrs["format"] = "sightline-checkpoint"
    with pytest.raises(st.WeightsFormatError, match="ckpt.h5.*sightline-checkpoint"):
        st.load_weights(ckpt)
    newer = tmp_path / "newer.h5"
    with h5py.File(newer, "w") as f:
        f.attrs["format"] = "sightline-weights"
        f.attrs["format_version"] = np.int64(2)
    with pytest.raises(st.WeightsFormatError, match="newer.h5.*format_version 2"):
        st.load_weights(newer)
    bad = tmp_path / "bad.h5"
    with h5py.File(bad, "w") as f:
        f["x"] = np.zeros(3, dtype=np.float32)
        f["x"].attrs["dtype"] = "bfloat16"
    with pytest.raises(st.WeightsFormatError, match="bad.h5.*'x'.*bfloat16"):
        st.load_weights(bad)
    broken = tmp_path / "cfg.h5"
    with h5py.File(broken, "w") as f:
        f.attrs["config"] = "{not json"
    with pytest.raises(st.WeightsFormatError, match="cfg.h5"):
        st.config(broken)


def test_load_connector_builds_from_config_and_loads_strictly(tmp_path):
    config = {"type": "projection", "visionDim": 6, "llmDim": 5, "depth": 2, "featureLevel": -2}
    torch.manual_seed(1)
    source = st.build_connector(config)
    path = tmp_path / "c.h5"
    st.save_weights(source.state_dict(), path, config=json.dumps(config))
    loaded = st.load_connector(path)
    x = torch.randn(2, 9, 6)
    assert torch.equal(loaded(x), source(x))
    # A file with an extra tensor fails the strict load and names it.
    st.save_weights({**source.state_dict(), "extra": torch.zeros(1)}, path, config=config)
    with pytest.raises(RuntimeError, match="extra"):
        st.load_connector(path)
