"""PyTorch side of Sightline: read exported HDF5 weights files and run Sightline's connectors (and,
with transformers installed, whole multimodal models) in PyTorch.

    import sightline_torch as st
    connector = st.load_connector("connector.h5")      # built from the file's config, strict load
    tokens = connector([features])                     # [B, H*W, C] -> [B, T, llm_dim]
"""

from .connectors import (
    AttentionPoolingConnector,
    AveragePoolingConnector,
    CAbstractor,
    ChainOfSight,
    ProjectionConnector,
    build_connector,
    connector_types,
)
from .weights import WeightsFormatError, attributes, config, load_weights, save_weights

__version__ = "0.1.0"


def load_connector(path, dtype=None):
    """Builds the connector described by a weights file's ``config`` attribute (a Sightline
    ``ConnectorConfiguration``) and loads the file into it with ``strict=True``.

    Args:
        dtype: the module's parameter type; ``None`` keeps the stored type of the file's tensors
            (a bfloat16 file gives a bfloat16 module).
    """
    module = build_connector(config(path))
    state = load_weights(path)
    if dtype is None and state:
        dtype = next(iter(state.values())).dtype
    if dtype is not None:
        module = module.to(dtype)
    module.load_state_dict(state, strict=True)
    return module.eval()


__all__ = [
    "AttentionPoolingConnector",
    "AveragePoolingConnector",
    "CAbstractor",
    "ChainOfSight",
    "ProjectionConnector",
    "WeightsFormatError",
    "attributes",
    "build_connector",
    "config",
    "connector_types",
    "load_connector",
    "load_weights",
    "save_weights",
]


def __getattr__(name):
    # The whole-model class needs transformers; import it only when asked for.
    if name == "SightlineMultimodalModel":
        from .model import SightlineMultimodalModel

        return SightlineMultimodalModel
    raise AttributeError(name)
