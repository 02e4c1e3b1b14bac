"""PyTorch modules for every Sightline connector (``Packages/Bridges``).

Each module is built from the connector's JSON configuration (Sightline's ``ConnectorConfiguration``:
an object with a ``type`` field next to the connector's own fields), its ``state_dict`` keys are
exactly the names Sightline exports (in the same order), and its forward computes what Sightline's
connector computes.

Input contract (every connector): ``forward(levels, grid=None)`` where ``levels`` is one tensor per
entry of ``feature_levels`` (HF ``hidden_states`` indices of the vision tower), each ``[B, H*W, C]``:
patch tokens only (no class token), row-major over the ``(H, W)`` patch grid. A single tensor is
accepted for a one-level connector. ``grid`` defaults to the connector's configured grid, else the
square grid of the token count. Output: ``[B, T, llm_dim]`` with ``T = token_count(grid)``.

The math follows Sightline exactly: LayerNorm with the configured eps (default 1e-5), exact (erf)
GELU, attention ``softmax(q k^T / sqrt(head_dim)) v`` with heads as contiguous channel slices, PyTorch's
adaptive-average-pooling bins, Chain-of-Sight windows row-major with batch-major flattening.
"""

import json
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = [
    "ProjectionConnector",
    "AveragePoolingConnector",
    "AttentionPoolingConnector",
    "CAbstractor",
    "ChainOfSight",
    "build_connector",
    "connector_types",
]


def _grid(value):
    """``{"height": h, "width": w}`` (Sightline's ``Grid``) or an int or pair -> ``(h, w)``."""
    if isinstance(value, dict):
        return int(value["height"]), int(value["width"])
    if isinstance(value, int):
        return value, value
    h, w = value
    return int(h), int(w)


def _levels(levels, expected, name):
    if torch.is_tensor(levels):
        levels = [levels] * expected
    levels = list(levels)
    if len(levels) != expected:
        raise ValueError(f"{name} expects {expected} feature level(s), got {len(levels)}")
    return levels


def _check_level(x, i, vision_dim, grid, name):
    if x.dim() != 3 or x.shape[2] != vision_dim:
        raise ValueError(f"{name}: feature level {i} must be [B, H*W, {vision_dim}], got {list(x.shape)}")
    if grid is not None and x.shape[1] != grid[0] * grid[1]:
        raise ValueError(
            f"{name}: feature level {i} has {x.shape[1]} tokens but the {grid[0]}x{grid[1]} grid has "
            f"{grid[0] * grid[1]}")


def _square(n, name):
    side = math.isqrt(n)
    if side * side != n:
        raise ValueError(f"{name}: {n} tokens are not a square grid; pass grid=(H, W)")
    return side, side


def _to_map(x, grid):
    """``[B, H*W, C]`` -> ``[B, C, H, W]``."""
    b, _, c = x.shape
    return x.reshape(b, grid[0], grid[1], c).permute(0, 3, 1, 2)


def _to_tokens(x):
    """``[B, C, H, W]`` -> ``[B, H*W, C]``."""
    b, c, h, w = x.shape
    return x.permute(0, 2, 3, 1).reshape(b, h * w, c)


def _gelu(x):
    return F.gelu(x)  # exact (erf), as Sightline's gelu(approximate: false)


def _attention(q, k, v, heads):
    """``q`` ``[N, T, D]``, ``k``/``v`` ``[N, S, D]``; heads are contiguous ``D / heads`` slices;
    ``softmax(q k^T / sqrt(head_dim)) v``; returns ``[N, T, D]`` (heads merged)."""
    n, t, d = q.shape
    s = k.shape[1]
    hd = d // heads
    q = q.reshape(n, t, heads, hd).transpose(1, 2)
    k = k.reshape(n, s, heads, hd).transpose(1, 2)
    v = v.reshape(n, s, heads, hd).transpose(1, 2)
    w = torch.softmax(torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(hd), dim=-1)
    return torch.matmul(w, v).transpose(1, 2).reshape(n, t, d)


class _Connector(nn.Module):
    """Common part: the configuration (``self.config``, the JSON object) and its ``type``."""

    type = None

    def __init__(self, config):
        super().__init__()
        config = dict(config)
        if config.get("type", self.type) != self.type:
            raise ValueError(f"{type(self).__name__} needs type {self.type!r}, got {config.get('type')!r}")
        config["type"] = self.type
        self.config = config

    @property
    def vision_dim(self):
        return int(self.config["visionDim"])

    @property
    def llm_dim(self):
        return int(self.config["llmDim"])

    @property
    def feature_levels(self):
        """HF ``hidden_states`` indices of the levels read, in input order."""
        return [int(self.config.get("featureLevel", -2))]


# MARK: - Projection


class ProjectionConnector(_Connector):
    """LLaVA's ``mm_projector`` over every patch: depth 1 is one Linear (``weight`` ``[llm, vision]``,
    ``bias``); depth n is Linear, then (GELU, Linear) n-1 times, named ``0``, ``2``, ``4``, ... as an
    ``nn.Sequential`` (``mlp2x_gelu`` for depth 2). Tokens = H*W."""

    type = "projection"

    def __init__(self, config):
        super().__init__(config)
        depth = int(self.config.get("depth", 2))
        if depth < 1:
            raise ValueError(f"projection depth must be >= 1, got {depth}")
        self.config["depth"] = depth
        self.depth = depth
        c, d = self.vision_dim, self.llm_dim
        if depth == 1:
            layer = nn.Linear(c, d)
            self.weight = layer.weight
            self.bias = layer.bias
        else:
            for i in range(depth):
                self.add_module(str(2 * i), nn.Linear(c if i == 0 else d, d))

    def token_count(self, grid):
        h, w = _grid(grid)
        return h * w

    def forward(self, levels, grid=None):
        """``[B, H*W, vision_dim]`` -> ``[B, H*W, llm_dim]``."""
        (x,) = _levels(levels, 1, "ProjectionConnector")
        _check_level(x, 0, self.vision_dim, None, "ProjectionConnector")
        if self.depth == 1:
            return F.linear(x, self.weight, self.bias)
        x = getattr(self, "0")(x)
        for i in range(1, self.depth):
            x = getattr(self, str(2 * i))(_gelu(x))
        return x


# MARK: - Average pooling


class AveragePoolingConnector(_Connector):
    """MM1's average pooling: adaptive average pooling of the patch grid to ``outputGrid`` (PyTorch's
    bins), tokens row-major over the pooled grid, then ``proj`` (Linear vision -> llm)."""

    type = "average_pooling"

    def __init__(self, config):
        super().__init__(config)
        self.output_grid = _grid(self.config["outputGrid"])
        self.proj = nn.Linear(self.vision_dim, self.llm_dim)

    def token_count(self, grid=None):
        return self.output_grid[0] * self.output_grid[1]

    def forward(self, levels, grid=None):
        """``[B, H*W, vision_dim]`` -> ``[B, Ho*Wo, llm_dim]``."""
        (x,) = _levels(levels, 1, "AveragePoolingConnector")
        grid = _grid(grid) if grid is not None else _square(x.shape[1], "AveragePoolingConnector")
        _check_level(x, 0, self.vision_dim, grid, "AveragePoolingConnector")
        pooled = F.adaptive_avg_pool2d(_to_map(x, grid), self.output_grid)
        return self.proj(_to_tokens(pooled))


# MARK: - Attention pooling


class _CrossAttention(nn.Module):
    """``q_proj``, ``k_proj``, ``v_proj``, ``out_proj`` (HF CLIP names), all with biases."""

    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)

    def forward(self, x, context):
        y = _attention(self.q_proj(x), self.k_proj(context), self.v_proj(context), self.heads)
        return self.out_proj(y)


class _MLP(nn.Module):
    """``fc1`` -> exact GELU -> ``fc2``."""

    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(_gelu(self.fc1(x)))


class AttentionPoolingConnector(_Connector):
    """MM1's attention pooling as Sightline builds it: learnable ``query`` ``[1, k, C]``;
    ``q = q + attn(ln_q(q), ln_kv(x))``; ``q = q + mlp(ln_mlp(q))``; then ``proj(ln_out(q))``.
    Heads default to C / 64."""

    type = "attention_pooling"

    def __init__(self, config):
        super().__init__(config)
        c = self.vision_dim
        k = int(self.config["queries"])
        heads = self.config.get("heads")
        heads = int(heads) if heads is not None else c // 64
        if heads <= 0 or c % heads:
            raise ValueError(f"attention pooling: visionDim {c} cannot be split into {heads} heads")
        eps = float(self.config.get("layerNormEps", 1e-5))
        ratio = int(self.config.get("mlpRatio", 4))
        self.queries = k
        self.query = nn.Parameter(torch.zeros(1, k, c))
        self.ln_q = nn.LayerNorm(c, eps=eps)
        self.ln_kv = nn.LayerNorm(c, eps=eps)
        self.attn = _CrossAttention(c, heads)
        self.ln_mlp = nn.LayerNorm(c, eps=eps)
        self.mlp = _MLP(c, ratio * c)
        self.ln_out = nn.LayerNorm(c, eps=eps)
        self.proj = nn.Linear(c, self.llm_dim)

    def token_count(self, grid=None):
        return self.queries

    def forward(self, levels, grid=None):
        """``[B, N, vision_dim]`` -> ``[B, queries, llm_dim]``."""
        (x,) = _levels(levels, 1, "AttentionPoolingConnector")
        _check_level(x, 0, self.vision_dim, None, "AttentionPoolingConnector")
        q = self.query.expand(x.shape[0], -1, -1)
        q = q + self.attn(self.ln_q(q), self.ln_kv(x))
        q = q + self.mlp(self.ln_mlp(q))
        return self.proj(self.ln_out(q))


# MARK: - C-Abstractor


class _LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of ``[N, C, H, W]`` (``weight``, ``bias``)."""

    def forward(self, x):
        return F.layer_norm(
            x.permute(0, 2, 3, 1), self.normalized_shape, self.weight, self.bias, self.eps
        ).permute(0, 3, 1, 2)


class _ConvNormAct(nn.Module):
    """``conv`` (no bias, padding k // 2) then ``bn`` (LayerNorm2d), then SiLU if ``act``."""

    def __init__(self, cin, cout, kernel, groups=1, act=True, eps=1e-5):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, padding=kernel // 2, groups=groups, bias=False)
        self.bn = _LayerNorm2d(cout, eps=eps)
        self.act = act

    def forward(self, x):
        y = self.bn(self.conv(x))
        return F.silu(y) if self.act else y


class _SqueezeExcite(nn.Module):
    """Spatial mean, ``fc1`` (1x1 conv), SiLU, ``fc2``, sigmoid gate on the input."""

    def __init__(self, channels, reduced):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, reduced, 1)
        self.fc2 = nn.Conv2d(reduced, channels, 1)

    def forward(self, x):
        s = x.mean(dim=(2, 3), keepdim=True)
        return x * torch.sigmoid(self.fc2(F.silu(self.fc1(s))))


class _Bottleneck(nn.Module):
    """RegNet bottleneck (bottleneck width = output width, depthwise 3x3): ``conv1``, ``conv2``,
    ``se`` (width round(se_ratio * in), half to even, at least 1), ``conv3`` (no activation), shortcut
    (identity, or ``downsample`` 1x1 conv + norm when the widths differ), SiLU after the sum."""

    def __init__(self, cin, cout, se_ratio, eps):
        super().__init__()
        self.conv1 = _ConvNormAct(cin, cout, 1, eps=eps)
        self.conv2 = _ConvNormAct(cout, cout, 3, groups=cout, eps=eps)
        self.se = _SqueezeExcite(cout, max(round(se_ratio * cin), 1))
        self.conv3 = _ConvNormAct(cout, cout, 1, act=False, eps=eps)
        self.downsample = _ConvNormAct(cin, cout, 1, act=False, eps=eps) if cin != cout else None

    def forward(self, x):
        y = self.conv3(self.se(self.conv2(self.conv1(x))))
        shortcut = self.downsample(x) if self.downsample is not None else x
        return F.silu(y + shortcut)


class _Stage(nn.Module):
    """Blocks ``b1``, ``b2``, ... (the first maps in -> out channels)."""

    def __init__(self, depth, cin, cout, se_ratio, eps):
        super().__init__()
        for i in range(depth):
            self.add_module(f"b{i + 1}", _Bottleneck(cin if i == 0 else cout, cout, se_ratio, eps))

    def forward(self, x):
        for block in self.children():
            x = block(x)
        return x


class CAbstractor(_Connector):
    """Honeybee's C-Abstractor: features + ``pos_emb`` ``[1, H*W, C]``, to ``[B, C, H, W]``, stage
    ``net.0``, adaptive average pooling to sqrt(M) x sqrt(M), stage ``net.2``, tokens row-major, then
    the readout ``readout.0`` (Linear), (SiLU, ``readout.2``), ... With depth 0 there are no stages."""

    type = "c_abstractor"

    def __init__(self, config):
        super().__init__(config)
        cfg = self.config
        c = self.vision_dim
        hidden = int(cfg.get("hiddenSize", 1024))
        depth = int(cfg.get("depth", 3))
        mlp_depth = int(cfg.get("mlpDepth", 2))
        m = int(cfg["numQueries"])
        side = math.isqrt(m)
        if side * side != m:
            raise ValueError(f"c_abstractor: numQueries {m} is not a perfect square")
        if mlp_depth < 1 or depth < 0:
            raise ValueError(f"c_abstractor: needs depth >= 0 and mlpDepth >= 1, got {depth}, {mlp_depth}")
        self.num_queries = m
        self.side = side
        self.input_grid = _grid(cfg["inputGrid"])
        se_ratio = float(cfg.get("seRatio", 0.25))
        eps = float(cfg.get("layerNormEps", 1e-5))
        if cfg.get("posEmb", True):
            self.pos_emb = nn.Parameter(torch.zeros(1, self.input_grid[0] * self.input_grid[1], c))
        else:
            self.pos_emb = None
        self.net = nn.Module()
        if depth > 0:
            self.net.add_module("0", _Stage(depth, c, hidden, se_ratio, eps))
            self.net.add_module("2", _Stage(depth, hidden, hidden, se_ratio, eps))
        self.readout = nn.Module()
        width = hidden if depth > 0 else c
        for i in range(mlp_depth):
            self.readout.add_module(str(2 * i), nn.Linear(width if i == 0 else self.llm_dim, self.llm_dim))
        self.mlp_depth = mlp_depth
        self.depth = depth

    @property
    def feature_levels(self):
        return [int(self.config.get("featureLevel", -1))]

    def token_count(self, grid=None):
        return self.num_queries

    def forward(self, levels, grid=None):
        """``[B, H*W, vision_dim]`` -> ``[B, numQueries, llm_dim]``."""
        (x,) = _levels(levels, 1, "CAbstractor")
        if grid is None:
            grid = self.input_grid if self.pos_emb is not None else _square(x.shape[1], "CAbstractor")
        grid = _grid(grid)
        if self.pos_emb is not None and grid != self.input_grid:
            raise ValueError(f"CAbstractor: grid {grid} is not the position embedding's {self.input_grid}")
        _check_level(x, 0, self.vision_dim, grid, "CAbstractor")
        if self.pos_emb is not None:
            x = x + self.pos_emb
        y = _to_map(x, grid)
        if self.depth > 0:
            y = getattr(self.net, "0")(y)
        y = F.adaptive_avg_pool2d(y, (self.side, self.side))
        if self.depth > 0:
            y = getattr(self.net, "2")(y)
        y = getattr(self.readout, "0")(_to_tokens(y))
        for i in range(1, self.mlp_depth):
            y = getattr(self.readout, str(2 * i))(F.silu(y))
        return y


# MARK: - Chain-of-Sight


class _CoSAttention(nn.Module):
    """``to_q`` ``[dim, dim]`` and fused ``to_kv`` ``[2 dim, vision]`` without bias (rows ``[0, dim)``
    keys, ``[dim, 2 dim)`` values), ``proj`` with bias, ``query_norm`` and ``cont_norm``."""

    def __init__(self, dim, vision_dim, heads, eps):
        super().__init__()
        self.heads = heads
        self.to_q = nn.Linear(dim, dim, bias=False)
        self.to_kv = nn.Linear(vision_dim, 2 * dim, bias=False)
        self.proj = nn.Linear(dim, dim)
        self.query_norm = nn.LayerNorm(dim, eps=eps)
        self.cont_norm = nn.LayerNorm(vision_dim, eps=eps)

    def forward(self, q, context):
        k, v = self.to_kv(self.cont_norm(context)).chunk(2, dim=-1)
        return self.proj(_attention(self.to_q(self.query_norm(q)), k, v, self.heads))


def window_partition(x, grid, ws):
    """``[B, H*W, C]`` -> ``[B * windows, ws*ws, C]``: batch-major, windows row-major over the window
    grid, patches row-major inside a window."""
    b, _, c = x.shape
    gh, gw = grid[0] // ws, grid[1] // ws
    return x.reshape(b, gh, ws, gw, ws, c).permute(0, 1, 3, 2, 4, 5).reshape(b * gh * gw, ws * ws, c)


class ChainOfSight(_Connector):
    """Chain-of-Sight: per scale (window ``ws``, ``nq`` queries), window w owns queries
    ``[w*npw, (w+1)*npw)`` of ``cls_token_w{ws}_q{nq}``; one block per (level, scale),
    ``q = q + attn(q, window)``, ``q = q + mlp(ln(q))``, through the levels in order; scales
    concatenated in config order, then ``ln_out`` and ``out_proj``. Block names carry the level as
    ``l{L-1}`` for HF ``hidden_states`` index L (the authors' 0-based block numbering)."""

    type = "chain_of_sight"

    def __init__(self, config):
        super().__init__(config)
        cfg = self.config
        c = self.vision_dim
        self.dim = d = int(cfg.get("dim") or c)
        self.head_dim = int(cfg.get("headDim", 64))
        ratio = int(cfg.get("mlpRatio", 4))
        eps = float(cfg.get("layerNormEps", 1e-5))
        self.grid = _grid(cfg["grid"])
        self.scales = [(int(s["windowSize"]), int(s["queries"])) for s in cfg["scales"]]
        self.levels = [int(level) for level in cfg.get("featureLevels", [16, 23])]
        if d % self.head_dim:
            raise ValueError(f"chain_of_sight: dim {d} is not a multiple of headDim {self.head_dim}")
        self.layouts = []
        for i, (ws, nq) in enumerate(self.scales):
            if ws <= 0 or self.grid[0] % ws or self.grid[1] % ws:
                raise ValueError(f"chain_of_sight: scale {i}: window {ws} does not tile the {self.grid} grid")
            windows = (self.grid[0] // ws) * (self.grid[1] // ws)
            if nq < windows or nq % windows:
                raise ValueError(f"chain_of_sight: scale {i}: {nq} queries cannot be shared by {windows} windows")
            self.layouts.append((windows, nq // windows))
        for ws, nq in self.scales:
            self.register_parameter(f"cls_token_w{ws}_q{nq}", nn.Parameter(torch.zeros(1, nq, d)))
        for level in self.levels:
            for ws, nq in self.scales:
                x = self.block_suffix(ws, nq, level)
                self.add_module("attn_" + x, _CoSAttention(d, c, d // self.head_dim, eps))
                self.add_module("mlp_" + x, _MLP(d, ratio * d))
                self.add_module("ln_" + x, nn.LayerNorm(d, eps=eps))
        self.ln_out = nn.LayerNorm(d, eps=eps)
        self.out_proj = nn.Linear(d, self.llm_dim)

    @staticmethod
    def block_suffix(ws, nq, level):
        """``0_w{ws}_l{level-1}_q{nq}`` for HF ``hidden_states`` index ``level``."""
        return f"0_w{ws}_l{level - 1}_q{nq}"

    @property
    def feature_levels(self):
        return list(self.levels)

    def token_count(self, grid=None):
        if grid is not None and _grid(grid) != self.grid:
            raise ValueError(f"ChainOfSight: grid {_grid(grid)} is not the configured {self.grid}")
        return sum(nq for _, nq in self.scales)

    def scale_tokens(self, levels):
        """Each scale's tokens before ``ln_out``: ``[B, nq, dim]`` per scale, in config order."""
        levels = _levels(levels, len(self.levels), "ChainOfSight")
        for i, x in enumerate(levels):
            _check_level(x, i, self.vision_dim, self.grid, "ChainOfSight")
        b = levels[0].shape[0]
        out = []
        for (ws, nq), (windows, npw) in zip(self.scales, self.layouts):
            q = getattr(self, f"cls_token_w{ws}_q{nq}")
            q = q.reshape(1, windows, npw, self.dim).expand(b, -1, -1, -1).reshape(b * windows, npw, self.dim)
            for level, x in zip(self.levels, levels):
                sfx = self.block_suffix(ws, nq, level)
                window = window_partition(x, self.grid, ws)
                q = q + getattr(self, "attn_" + sfx)(q, window)
                q = q + getattr(self, "mlp_" + sfx)(getattr(self, "ln_" + sfx)(q))
            out.append(q.reshape(b, nq, self.dim))
        return out

    def forward(self, levels, grid=None):
        """One ``[B, H*W, vision_dim]`` per feature level -> ``[B, sum(queries), llm_dim]``."""
        if grid is not None and _grid(grid) != self.grid:
            raise ValueError(f"ChainOfSight: grid {_grid(grid)} is not the configured {self.grid}")
        return self.out_proj(self.ln_out(torch.cat(self.scale_tokens(levels), dim=1)))


_TYPES = {
    cls.type: cls
    for cls in (ProjectionConnector, AveragePoolingConnector, AttentionPoolingConnector, CAbstractor, ChainOfSight)
}


def connector_types():
    """The ``type`` tags this package builds."""
    return list(_TYPES)


def build_connector(config):
    """Builds the connector a Sightline ``ConnectorConfiguration`` describes (a ``dict`` or JSON
    text with a ``type`` field); weights are uninitialised placeholders until ``load_state_dict``."""
    if isinstance(config, (str, bytes)):
        config = json.loads(config)
    kind = config.get("type")
    if kind not in _TYPES:
        raise ValueError(f"unknown connector type {kind!r} (known: {', '.join(_TYPES)})")
    return _TYPES[kind](config)
