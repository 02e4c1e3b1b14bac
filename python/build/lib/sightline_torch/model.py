"""A whole Sightline multimodal model in PyTorch: HF ``CLIPVisionModel`` -> a Sightline connector ->
HF ``LlamaForCausalLM`` (needs ``transformers``).

Key scheme (HF Llava checkpoint-file names, the scheme Sightline's ``MultimodalModel`` exports)::

    vision_tower.vision_model.<HF CLIP vision key>      e.g. vision_tower.vision_model.embeddings.patch_embedding.weight
    multi_modal_projector.<connector key>               e.g. multi_modal_projector.cls_token_w16_q16
    language_model.model.<HF Llama key>                 e.g. language_model.model.layers.0.self_attn.q_proj.weight
    language_model.lm_head.weight

Configuration (the file's root ``config`` attribute, JSON)::

    {"model_type": "sightline_multimodal", "vision_config": {HF CLIPVisionConfig fields},
     "text_config": {HF LlamaConfig fields}, "connector": {Sightline ConnectorConfiguration, with "type"},
     "image_token_id": 32000}

This is what ``weights export`` (Sightline's ``WholeModelConfig``) writes. ``vision``,
``language``/``text``, ``projector`` and ``imageTokenId``/``image_token_index`` are accepted as other
spellings; ``from_config`` is the one place that reads them.

Forward contract::

    logits = model(pixel_values, input_ids, attention_mask=None, position_ids=None)

- ``pixel_values``: ``[N, 3, H, W]``, every image of the batch in reading order (row 0's images left
  to right, then row 1's, ...), already preprocessed (CLIP mean/std).
- ``input_ids``: ``[B, S]`` token ids; each image is a run of ``T = connector.token_count(grid)``
  consecutive ``image_token_id`` placeholders, in the same order as ``pixel_values``.
- The tower runs with ``output_hidden_states=True``; the connector reads ``hidden_states[L]`` for each
  of its ``feature_levels`` L (0 = the embeddings after ``pre_layrnorm``, negative from the end),
  patch tokens only (the class token dropped), on the grid ``(H / patch, W / patch)``.
- The connector's ``[N, T, hidden]`` tokens replace the placeholders' embeddings (row-major: image n's
  token t goes to the (n*T + t)-th placeholder of the flattened batch); the decoder runs causally on
  the result with ``attention_mask`` / ``position_ids`` passed through.
- Returns: ``[B, S, vocab]`` logits.
"""

import torch
import torch.nn as nn

from .connectors import build_connector
from .weights import config as read_config
from .weights import load_weights

__all__ = ["SightlineMultimodalModel"]


def _pick(d, *names, default=None):
    for n in names:
        if n in d:
            return d[n]
    return default


class _VisionTower(nn.Module):
    """Holds ``vision_model`` so that the keys read ``vision_tower.vision_model.*`` whatever prefix
    the installed transformers gives ``CLIPVisionModel``'s own state dict."""

    def __init__(self, config):
        super().__init__()
        from transformers import CLIPVisionModel

        self.vision_model = CLIPVisionModel(config)

    def forward(self, pixel_values):
        return self.vision_model(pixel_values=pixel_values, output_hidden_states=True).hidden_states


class SightlineMultimodalModel(nn.Module):
    """CLIP vision tower + Sightline connector + Llama decoder, keyed as HF Llava checkpoint files.

    Args:
        vision_config: a ``transformers.CLIPVisionConfig`` or a dict of its fields.
        connector_config: a Sightline ``ConnectorConfiguration`` (dict or JSON text).
        text_config: a ``transformers.LlamaConfig`` or a dict of its fields.
        image_token_id: the placeholder token id.
    """

    def __init__(self, vision_config, connector_config, text_config, image_token_id):
        super().__init__()
        from transformers import CLIPVisionConfig, LlamaConfig, LlamaForCausalLM

        if isinstance(vision_config, dict):
            vision_config = CLIPVisionConfig(**vision_config)
        if isinstance(text_config, dict):
            text_config = LlamaConfig(**text_config)
        self.image_token_id = int(image_token_id)
        self.patch_size = vision_config.patch_size
        self.vision_tower = _VisionTower(vision_config)
        self.multi_modal_projector = build_connector(connector_config)
        self.language_model = LlamaForCausalLM(text_config)
        if self.multi_modal_projector.vision_dim != vision_config.hidden_size:
            raise ValueError(
                f"connector visionDim {self.multi_modal_projector.vision_dim} != vision hidden_size "
                f"{vision_config.hidden_size}")
        if self.multi_modal_projector.llm_dim != text_config.hidden_size:
            raise ValueError(
                f"connector llmDim {self.multi_modal_projector.llm_dim} != text hidden_size {text_config.hidden_size}")

    @classmethod
    def from_config(cls, config):
        """Builds the model from a whole-model configuration dict (see the module docstring)."""
        vision = _pick(config, "vision_config", "vision")
        text = _pick(config, "text_config", "language", "text")
        connector = _pick(config, "connector", "projector", "multi_modal_projector")
        token = _pick(config, "image_token_id", "imageTokenId", "image_token_index")
        missing = [n for n, v in [("vision_config", vision), ("text_config", text), ("connector", connector),
                                  ("image_token_id", token)] if v is None]
        if missing:
            raise ValueError(f"whole-model config lacks {', '.join(missing)}; has {sorted(config)}")
        return cls(vision, connector, text, token)

    @classmethod
    def from_file(cls, path, dtype=torch.float32):
        """Builds the model from a weights file's ``config`` attribute and loads the file into it with
        ``strict=True``; returns it in eval mode."""
        model = cls.from_config(read_config(path)).to(dtype)
        model.load_state_dict(load_weights(path), strict=True)
        return model.eval()

    def image_features(self, pixel_values):
        """``[N, 3, H, W]`` -> the connector's tokens ``[N, T, hidden]``."""
        hidden = self.vision_tower(pixel_values)
        grid = (pixel_values.shape[-2] // self.patch_size, pixel_values.shape[-1] // self.patch_size)
        levels = [hidden[level][:, 1:, :] for level in self.multi_modal_projector.feature_levels]
        return self.multi_modal_projector(levels, grid=grid)

    def merge(self, input_ids, image_tokens):
        """Token embeddings ``[B, S, hidden]`` with the placeholders replaced by ``image_tokens``."""
        placeholders = input_ids == self.image_token_id
        embed = self.language_model.get_input_embeddings()
        embeds = embed(input_ids.masked_fill(placeholders, 0))
        flat = image_tokens.reshape(-1, image_tokens.shape[-1]).to(embeds.dtype)
        count = int(placeholders.sum())
        if count != flat.shape[0]:
            raise ValueError(
                f"input_ids hold {count} image placeholders (id {self.image_token_id}) but the images give "
                f"{image_tokens.shape[0]} x {image_tokens.shape[1]} = {flat.shape[0]} tokens")
        return embeds.masked_scatter(placeholders.unsqueeze(-1), flat)

    def forward(self, pixel_values, input_ids, attention_mask=None, position_ids=None):
        """See the module docstring. Returns ``[B, S, vocab]`` logits."""
        embeds = self.merge(input_ids, self.image_features(pixel_values)) if pixel_values is not None \
            else self.language_model.get_input_embeddings()(input_ids)
        out = self.language_model(inputs_embeds=embeds, attention_mask=attention_mask, position_ids=position_ids)
        return out.logits
