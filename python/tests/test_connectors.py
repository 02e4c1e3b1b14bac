import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import sightline_torch as st
from sightline_torch.connectors import window_partition


def cos_config(**over):
    c = {"type": "chain_of_sight", "visionDim": 12, "dim": 8, "llmDim": 10, "headDim": 4, "mlpRatio": 2,
         "grid": {"height": 8, "width": 8},
         "scales": [{"windowSize": 8, "queries": 4}, {"windowSize": 4, "queries": 8}, {"windowSize": 2, "queries": 16}],
         "featureLevels": [3, 5]}
    c.update(over)
    return c


def randomize(module, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            z = torch.randn(p.shape, generator=g)
            if p.dim() == 1 and name.endswith("weight"):
                p.copy_(1 + 0.1 * z)  # norms near 1
            elif name.endswith("bias"):
                p.copy_(0.1 * z)
            elif p.dim() >= 2 and not name.startswith("cls_token") and name not in ("query", "pos_emb"):
                p.copy_(z / math.sqrt(p[0].numel()))  # 1 / sqrt(fan-in)
            else:
                p.copy_(0.5 * z)
    return module


def test_chain_of_sight_v1_has_the_released_names_and_parameter_count():
    # The released v1 projector: 62 tensors, 54,663,168 parameters.
    config = {"type": "chain_of_sight", "visionDim": 1024, "llmDim": 4096, "grid": {"height": 16, "width": 16},
              "scales": [{"windowSize": 16, "queries": 16}, {"windowSize": 4, "queries": 64}]}
    with torch.device("meta"):
        m = st.build_connector(config)
    sd = m.state_dict()
    assert len(sd) == 62 and sum(t.numel() for t in sd.values()) == 54_663_168
    names = list(sd)
    assert names[:2] == ["cls_token_w16_q16", "cls_token_w4_q64"]
    assert names[2:10] == [f"attn_0_w16_l15_q16.{n}" for n in [
        "to_q.weight", "to_kv.weight", "proj.weight", "proj.bias", "query_norm.weight", "query_norm.bias",
        "cont_norm.weight", "cont_norm.bias"]]
    assert "ln_0_w4_l22_q64.bias" in names and names[-4:] == [
        "ln_out.weight", "ln_out.bias", "out_proj.weight", "out_proj.bias"]
    assert m.feature_levels == [16, 23] and m.token_count() == 80


def test_chain_of_sight_window_locality_and_token_order():
    m = randomize(st.build_connector(cos_config()), 3).eval()
    x = [torch.randn(1, 64, 12), torch.randn(1, 64, 12)]
    base = m(x)
    y = [t.clone() for t in x]
    for t in y:
        t[0, 1 * 8 + 6] += torch.randn(12)  # not a constant shift, which LayerNorm would remove; patch (1, 6): window 1 of the 4x4 scale, window 3 of the 2x2 scale
    diff = (m(y) - base).abs().amax(dim=-1)[0]
    changed = set(torch.nonzero(diff > 1e-4).flatten().tolist())
    assert diff.max() > 1e-2
    # tokens: global 0..3, 4x4 scale 4..11 (2 per window), 2x2 scale 12..27 (1 per window)
    assert changed == {0, 1, 2, 3, 4 + 2 * 1, 4 + 2 * 1 + 1, 12 + 3}


def test_window_partition_is_row_major_and_batch_major():
    x = torch.arange(2 * 16, dtype=torch.float32).reshape(2, 16, 1)
    w = window_partition(x, (4, 4), 2)
    assert w.shape == (8, 4, 1)
    assert w[1, :, 0].tolist() == [2, 3, 6, 7] and w[4, :, 0].tolist() == [16, 17, 20, 21]


def test_chain_of_sight_attention_equals_scaled_dot_product_attention():
    m = randomize(st.build_connector(cos_config(scales=[{"windowSize": 8, "queries": 4}], featureLevels=[1])), 5)
    attn = m.attn_0_w8_l0_q4
    q, ctx = torch.randn(2, 4, 8), torch.randn(2, 64, 12)
    k, v = attn.to_kv(attn.cont_norm(ctx)).chunk(2, dim=-1)
    qq = attn.to_q(attn.query_norm(q))
    split = lambda t: t.reshape(2, t.shape[1], 2, 4).transpose(1, 2)  # noqa: E731
    ref = F.scaled_dot_product_attention(split(qq), split(k), split(v)).transpose(1, 2).reshape(2, 4, 8)
    assert torch.allclose(attn(q, ctx), attn.proj(ref), atol=1e-5)


def test_projection_mlp2x_gelu_is_llava_sequential():
    m = randomize(st.build_connector({"type": "projection", "visionDim": 6, "llmDim": 5, "depth": 2}), 2)
    seq = nn.Sequential(nn.Linear(6, 5), nn.GELU(), nn.Linear(5, 5))
    seq.load_state_dict(m.state_dict(), strict=True)
    x = torch.randn(3, 7, 6)
    assert torch.allclose(m(x), seq(x))
    lin = st.build_connector({"type": "projection", "visionDim": 6, "llmDim": 5, "depth": 1})
    assert list(lin.state_dict()) == ["weight", "bias"]


def test_average_pooling_uses_pytorch_bins():
    m = st.build_connector({"type": "average_pooling", "visionDim": 1, "llmDim": 1,
                            "outputGrid": {"height": 2, "width": 2}})
    with torch.no_grad():
        m.proj.weight.fill_(1)
        m.proj.bias.zero_()
    x = torch.arange(9, dtype=torch.float32).reshape(1, 9, 1)  # 3x3 grid 0..8
    # 3 -> 2: bins [0, 2) and [1, 3) overlap in the middle row / column.
    assert m(x, grid=(3, 3)).flatten().tolist() == [2.0, 3.0, 5.0, 6.0]


def test_attention_pooling_names_and_mha_equivalence():
    cfg = {"type": "attention_pooling", "visionDim": 8, "llmDim": 6, "queries": 3, "heads": 2, "mlpRatio": 2}
    m = randomize(st.build_connector(cfg), 4)
    assert list(m.state_dict())[:3] == ["query", "ln_q.weight", "ln_q.bias"]
    assert "attn.out_proj.bias" in m.state_dict() and m.token_count() == 3
    mha = nn.MultiheadAttention(8, 2, batch_first=True)
    a = m.attn
    with torch.no_grad():
        mha.in_proj_weight.copy_(torch.cat([a.q_proj.weight, a.k_proj.weight, a.v_proj.weight]))
        mha.in_proj_bias.copy_(torch.cat([a.q_proj.bias, a.k_proj.bias, a.v_proj.bias]))
        mha.out_proj.weight.copy_(a.out_proj.weight)
        mha.out_proj.bias.copy_(a.out_proj.bias)
    q, ctx = torch.randn(2, 3, 8), torch.randn(2, 10, 8)
    assert torch.allclose(a(q, ctx), mha(q, ctx, ctx, need_weights=False)[0], atol=1e-5)


def test_c_abstractor_structure():
    cfg = {"type": "c_abstractor", "visionDim": 8, "hiddenSize": 12, "llmDim": 6, "depth": 2, "mlpDepth": 2,
           "numQueries": 4, "inputGrid": {"height": 5, "width": 5}}
    m = st.build_connector(cfg)
    sd = m.state_dict()
    assert list(sd)[0] == "pos_emb" and sd["pos_emb"].shape == (1, 25, 8)
    assert "net.0.b1.downsample.conv.weight" in sd and "net.0.b2.downsample.conv.weight" not in sd
    assert sd["net.0.b1.se.fc1.weight"].shape == (2, 12, 1, 1)  # round(0.25 * 8)
    assert sd["net.2.b1.se.fc1.weight"].shape == (3, 12, 1, 1)  # round(0.25 * 12)
    assert sd["net.0.b1.conv2.conv.weight"].shape == (12, 1, 3, 3)  # depthwise
    assert list(sd)[-4:] == ["readout.0.weight", "readout.0.bias", "readout.2.weight", "readout.2.bias"]
    assert m(torch.randn(2, 25, 8)).shape == (2, 4, 6)
    with pytest.raises(ValueError, match="position embedding"):
        m(torch.randn(2, 36, 8), grid=(6, 6))


def test_bad_configurations_are_named():
    with pytest.raises(ValueError, match="qformer"):
        st.build_connector({"type": "qformer"})
    with pytest.raises(ValueError, match="window 3 does not tile"):
        st.build_connector(cos_config(scales=[{"windowSize": 3, "queries": 4}]))
    with pytest.raises(ValueError, match="6 queries cannot be shared by 4 windows"):
        st.build_connector(cos_config(scales=[{"windowSize": 4, "queries": 6}]))
    with pytest.raises(ValueError, match="not a perfect square"):
        st.build_connector({"type": "c_abstractor", "visionDim": 4, "llmDim": 4, "numQueries": 5,
                            "inputGrid": {"height": 4, "width": 4}})
    m = st.build_connector(cos_config())
    with pytest.raises(ValueError, match="expects 2 feature level"):
        m([torch.randn(1, 64, 12)])
    with pytest.raises(ValueError, match=r"must be \[B, H\*W, 12\]"):
        m([torch.randn(1, 64, 11)] * 2)
    assert sorted(st.connector_types()) == sorted(
        ["projection", "average_pooling", "attention_pooling", "c_abstractor", "chain_of_sight"])
    assert math.isclose(m.ln_out.eps, 1e-5)
