import pytest
import torch

import sightline_torch as st

transformers = pytest.importorskip("transformers")

VISION = {"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 3, "num_attention_heads": 2,
          "image_size": 32, "patch_size": 8, "num_channels": 3}
TEXT = {"vocab_size": 40, "hidden_size": 24, "intermediate_size": 48, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 64,
        "tie_word_embeddings": False}
CONNECTOR = {"type": "chain_of_sight", "visionDim": 16, "dim": 16, "llmDim": 24, "headDim": 8, "mlpRatio": 2,
             "grid": {"height": 4, "width": 4},
             "scales": [{"windowSize": 4, "queries": 2}, {"windowSize": 2, "queries": 4}],
             "featureLevels": [2, -1]}
CONFIG = {"vision_config": VISION, "text_config": TEXT, "connector": CONNECTOR, "image_token_id": 39}


def model():
    torch.manual_seed(0)
    return st.SightlineMultimodalModel.from_config(CONFIG).eval()


def ids_with_images():
    # Row 0: text, image 0 (6 tokens), text, image 1; row 1: image 2 then text.
    img = [39] * 6
    row0 = [1, 5, 7] + img + [9, 11] + img + [3]
    row1 = img + [2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24]
    return torch.tensor([row0, row1])


def test_keys_follow_the_llava_checkpoint_scheme_and_parts_load_into_hf_models():
    m = model()
    keys = list(m.state_dict())
    prefixes = ("vision_tower.vision_model.", "multi_modal_projector.", "language_model.model.",
                "language_model.lm_head.weight")
    assert all(k.startswith(prefixes) for k in keys)
    assert "vision_tower.vision_model.embeddings.patch_embedding.weight" in keys
    assert "vision_tower.vision_model.pre_layrnorm.weight" in keys
    assert "multi_modal_projector.cls_token_w4_q2" in keys and "multi_modal_projector.attn_0_w2_l1_q4.to_kv.weight" in keys
    assert "language_model.model.layers.1.self_attn.k_proj.weight" in keys and "language_model.lm_head.weight" in keys
    sd = m.state_dict()
    part = lambda p: {k[len(p):]: v for k, v in sd.items() if k.startswith(p)}  # noqa: E731
    llama = transformers.LlamaForCausalLM(transformers.LlamaConfig(**TEXT))
    llama.load_state_dict(part("language_model."), strict=True)
    connector = st.build_connector(CONNECTOR)
    connector.load_state_dict(part("multi_modal_projector."), strict=True)


def test_file_round_trip_loads_strictly_and_gives_the_same_logits(tmp_path):
    m = model()
    path = tmp_path / "model.h5"
    st.save_weights(m.state_dict(), path, config=CONFIG)
    back = st.SightlineMultimodalModel.from_file(path)
    pixels = torch.randn(3, 3, 32, 32)
    ids = ids_with_images()
    with torch.no_grad():
        assert torch.equal(back(pixels, ids), m(pixels, ids))
    st.save_weights({**m.state_dict(), "extra.weight": torch.zeros(1)}, path, config=CONFIG)
    with pytest.raises(RuntimeError, match="extra.weight"):
        st.SightlineMultimodalModel.from_file(path)


def test_forward_places_image_tokens_in_order_and_reads_the_configured_levels():
    m = model()
    pixels = torch.randn(3, 3, 32, 32)
    ids = ids_with_images()
    with torch.no_grad():
        logits = m(pixels, ids)
        hidden = m.vision_tower.vision_model(pixel_values=pixels, output_hidden_states=True).hidden_states
        assert len(hidden) == 4
        tokens = m.multi_modal_projector([hidden[2][:, 1:], hidden[3][:, 1:]])  # levels 2 and -1
        embeds = m.language_model.get_input_embeddings()(ids.clamp(max=38)).clone()
        positions = [(0, 3), (0, 11), (1, 0)]
        for n, (row, start) in enumerate(positions):
            embeds[row, start:start + 6] = tokens[n]
        expected = m.language_model(inputs_embeds=embeds).logits
    assert logits.shape == (2, 18, 40)
    assert torch.allclose(logits, expected, atol=1e-6)


def test_a_wrong_placeholder_count_is_an_error():
    m = model()
    ids = ids_with_images()[:, :10]
    with pytest.raises(ValueError, match="placeholders"):
        m(torch.randn(3, 3, 32, 32), ids)
