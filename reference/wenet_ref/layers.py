"""Building blocks of WeNet's ASR model, written for this project.

Module and parameter names follow WeNet (wenet/models/transformer/*) so that
``state_dict()`` keys equal those of a WeNet ``final.pt``. No dropout (the
demo's train.py adds it with hooks). ``forward`` is the full-sequence (masked)
path; ``forward_chunk`` methods are WeNet's streaming path with attention
K/V and causal-conv caches (WeNet's ``forward_chunk``).
"""

import math
from typing import Optional, Tuple

import torch
from torch import nn

ACTIVATIONS = {
    "relu": nn.ReLU,
    "swish": nn.SiLU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "hardtanh": nn.Hardtanh,
    "selu": nn.SELU,
}


def make_activation(name: str, key: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise ValueError(f"{key}: expected one of {sorted(ACTIVATIONS)}, "
                         f"got {name!r}")
    return ACTIVATIONS[name]()


def sinusoid_table(max_len: int, d_model: int) -> torch.Tensor:
    """[1, max_len, d_model]: sin on even, cos on odd channels.

    Computed in float32 exactly as WeNet does (the product position * freq
    is rounded to float32 before sin/cos), so the buffer is bit-identical to
    WeNet's ``pe``.
    """
    pe = torch.zeros(max_len, d_model)
    position = torch.arange(0, max_len, dtype=torch.float32).unsqueeze(1)
    freq = torch.exp(
        torch.arange(0, d_model, 2, dtype=torch.float32) *
        -(math.log(10000.0) / d_model))
    pe[:, 0::2] = torch.sin(position * freq)
    pe[:, 1::2] = torch.cos(position * freq)
    return pe.unsqueeze(0)


class PositionalEncoding(nn.Module):
    """abs_pos: returns (x * sqrt(d) + pe[:T], pe[:T])."""

    def __init__(self, d_model: int, max_len: int = 5000):
        super().__init__()
        self.xscale = math.sqrt(d_model)
        self.register_buffer("pe", sinusoid_table(max_len, d_model))

    def forward(self, x: torch.Tensor,
                offset: int = 0) -> Tuple[torch.Tensor, torch.Tensor]:
        pos_emb = self.position_encoding(x.size(1), offset)
        return x * self.xscale + pos_emb, pos_emb

    def position_encoding(self, size: int, offset: int = 0) -> torch.Tensor:
        """pe[offset:offset + size] (WeNet's position_encoding(offset, size))."""
        if offset < 0 or offset + size > self.pe.size(1):
            raise ValueError(f"positions {offset}..{offset + size} exceed the "
                             f"position table of {self.pe.size(1)}")
        return self.pe[:, offset:offset + size]


class RelPositionalEncoding(PositionalEncoding):
    """rel_pos: returns (x * sqrt(d), pe[:T]); pe feeds linear_pos."""

    def forward(self, x: torch.Tensor,
                offset: int = 0) -> Tuple[torch.Tensor, torch.Tensor]:
        return x * self.xscale, self.position_encoding(x.size(1), offset)


class NoPositionalEncoding(nn.Module):
    """no_pos: x unchanged (not even scaled), zero pos_emb; no buffer."""

    def __init__(self, d_model: int, max_len: int = 5000):
        super().__init__()
        self.d_model = d_model

    def forward(self, x: torch.Tensor,
                offset: int = 0) -> Tuple[torch.Tensor, torch.Tensor]:
        return x, self.position_encoding(x.size(1), offset).to(x.dtype)

    def position_encoding(self, size: int, offset: int = 0) -> torch.Tensor:
        return torch.zeros(1, size, self.d_model)


POS_ENCODINGS = {
    "abs_pos": PositionalEncoding,
    "rel_pos": RelPositionalEncoding,
    "no_pos": NoPositionalEncoding,
}


def make_pos_encoding(name: str, d_model: int, max_len: int) -> nn.Module:
    if name not in POS_ENCODINGS:
        raise ValueError(f"encoder_conf.pos_enc_layer_type: expected one of "
                         f"{sorted(POS_ENCODINGS)}, got {name!r}")
    return POS_ENCODINGS[name](d_model, max_len)


class Conv2dSubsampling(nn.Module):
    """conv2d (x4), conv2d6 (x6), conv2d8 (x8).

    WeNet names: conv2d keeps its linear in ``out.0`` (a Sequential), the
    x6/x8 variants in ``linear``. Conv stack: Conv2d(1->d, 3, 2), ReLU, then
    (x4) Conv2d(d, 3, 2) / (x6) Conv2d(d, 5, 3) / (x8) two Conv2d(d, 3, 2),
    each followed by ReLU. The frame mask is subsampled by slicing, which for
    these kernels keeps exactly the frames computed from valid input only.
    """

    # name -> list of (kernel, stride) after the first conv, mask slices
    SPECS = {
        "conv2d": ([(3, 2)], [(2, 2), (2, 2)]),
        "conv2d6": ([(5, 3)], [(2, 2), (4, 3)]),
        "conv2d8": ([(3, 2), (3, 2)], [(2, 2), (2, 2), (2, 2)]),
    }

    def __init__(self, kind: str, idim: int, odim: int, pos_enc: nn.Module):
        super().__init__()
        if kind not in self.SPECS:
            raise ValueError(f"encoder_conf.input_layer: expected one of "
                             f"{sorted(self.SPECS)}, got {kind!r}")
        self.kind = kind
        later, self.mask_slices = self.SPECS[kind]
        layers = [nn.Conv2d(1, odim, 3, 2), nn.ReLU()]
        freq = (idim - 1) // 2
        for kernel, stride in later:
            layers += [nn.Conv2d(odim, odim, kernel, stride), nn.ReLU()]
            freq = (freq - kernel) // stride + 1
        self.conv = nn.Sequential(*layers)
        if kind == "conv2d":
            self.out = nn.Sequential(nn.Linear(odim * freq, odim))
        else:
            self.linear = nn.Linear(odim * freq, odim)
        self.pos_enc = pos_enc
        self.subsampling_rate = {"conv2d": 4, "conv2d6": 6, "conv2d8": 8}[kind]
        # input frames past the first that one output frame sees (WeNet's)
        self.right_context = {"conv2d": 6, "conv2d6": 10, "conv2d8": 14}[kind]

    def position_encoding(self, size: int, offset: int = 0) -> torch.Tensor:
        return self.pos_enc.position_encoding(size, offset)

    def forward(self, x: torch.Tensor, x_mask: torch.Tensor, offset: int = 0):
        """offset: position of the first output frame (streaming chunks)."""
        x = self.conv(x.unsqueeze(1))  # (B, C, T', F')
        b, c, t, f = x.size()
        x = x.transpose(1, 2).contiguous().view(b, t, c * f)
        x = self.out(x) if self.kind == "conv2d" else self.linear(x)
        x, pos_emb = self.pos_enc(x, offset)
        for start, step in self.mask_slices:
            x_mask = x_mask[:, :, start::step]
        return x, pos_emb, x_mask


def subsampled_length(kind: str, frames: int) -> int:
    """Number of output frames of Conv2dSubsampling for `frames` inputs."""
    n = (frames - 1) // 2
    for kernel, stride in Conv2dSubsampling.SPECS[kind][0]:
        n = (n - kernel) // stride + 1
    return max(n, 0)


class MultiHeadedAttention(nn.Module):
    """Scaled dot-product attention with WeNet's masking.

    Masked scores are set to -inf, softmax is taken, then the masked
    probabilities are set to 0 (so a fully masked row gives zeros, not NaN).
    """

    def __init__(self, n_head: int, n_feat: int):
        super().__init__()
        if n_feat % n_head != 0:
            raise ValueError(f"attention_heads: {n_head} does not divide "
                             f"output_size {n_feat}")
        self.d_k = n_feat // n_head
        self.h = n_head
        self.linear_q = nn.Linear(n_feat, n_feat)
        self.linear_k = nn.Linear(n_feat, n_feat)
        self.linear_v = nn.Linear(n_feat, n_feat)
        self.linear_out = nn.Linear(n_feat, n_feat)

    def _heads(self, linear: nn.Linear, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.size()
        return linear(x).view(b, t, self.h, self.d_k).transpose(1, 2)

    def _attend(self, v: torch.Tensor, scores: torch.Tensor,
                mask: Optional[torch.Tensor]) -> torch.Tensor:
        if mask is not None:
            # mask: (B, 1 or T1, T2) with True = may attend
            masked = mask.unsqueeze(1).eq(0)[..., :scores.size(-1)]
            scores = scores.masked_fill(masked, -float("inf"))
            attn = torch.softmax(scores, dim=-1).masked_fill(masked, 0.0)
        else:
            attn = torch.softmax(scores, dim=-1)
        x = torch.matmul(attn, v)  # (B, H, T1, d_k)
        b, _, t1, _ = x.size()
        x = x.transpose(1, 2).contiguous().view(b, t1, self.h * self.d_k)
        return self.linear_out(x)

    def forward(self, query, key, value, mask, pos_emb=None):
        q = self._heads(self.linear_q, query)
        k = self._heads(self.linear_k, key)
        v = self._heads(self.linear_v, value)
        return self._attend(v, self._scores(q, k, pos_emb), mask)

    def _scores(self, q, k, pos_emb):
        return torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(self.d_k)

    def forward_chunk(self, x, pos_emb, cache: Optional[Tuple[torch.Tensor,
                                                             torch.Tensor]]):
        """Self-attention of a chunk x (B, C, d) over the cached keys/values
        (B, H, Tc, d_k) of earlier frames and its own, no mask (WeNet's
        forward_chunk: every cached and chunk frame is visible). pos_emb
        covers Tc + C positions (rel_pos). Returns (out, (k, v)) with the
        chunk's K/V appended."""
        q = self._heads(self.linear_q, x)
        k = self._heads(self.linear_k, x)
        v = self._heads(self.linear_v, x)
        if cache is not None and cache[0].size(2) > 0:
            k = torch.cat([cache[0], k], dim=2)
            v = torch.cat([cache[1], v], dim=2)
        return self._attend(v, self._scores(q, k, pos_emb), None), (k, v)


class RelPositionMultiHeadedAttention(MultiHeadedAttention):
    """WeNet's relative-position attention (Transformer-XL terms, but with
    NO rel_shift): scores = ((q+u) k^T + (q+v) p^T) / sqrt(d_k), where
    p = linear_pos(pe[:T]) is the absolute sinusoid of each key frame."""

    def __init__(self, n_head: int, n_feat: int):
        super().__init__(n_head, n_feat)
        self.linear_pos = nn.Linear(n_feat, n_feat, bias=False)
        self.pos_bias_u = nn.Parameter(torch.zeros(self.h, self.d_k))
        self.pos_bias_v = nn.Parameter(torch.zeros(self.h, self.d_k))

    def _scores(self, q, k, pos_emb):
        q = q.transpose(1, 2)  # (B, T, H, d_k)
        p = self.linear_pos(pos_emb).view(pos_emb.size(0), -1, self.h,
                                          self.d_k).transpose(1, 2)
        q_u = (q + self.pos_bias_u).transpose(1, 2)  # (B, H, T, d_k)
        q_v = (q + self.pos_bias_v).transpose(1, 2)
        matrix_bd = torch.matmul(q_v, p.transpose(-2, -1))
        matrix_ac = torch.matmul(q_u, k.transpose(-2, -1))
        return (matrix_ac + matrix_bd) / math.sqrt(self.d_k)


class PositionwiseFeedForward(nn.Module):
    """w_2(act(w_1 x))."""

    def __init__(self, idim: int, hidden: int, activation: nn.Module):
        super().__init__()
        self.w_1 = nn.Linear(idim, hidden)
        self.activation = activation
        self.w_2 = nn.Linear(hidden, idim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w_2(self.activation(self.w_1(x)))


class ConvolutionModule(nn.Module):
    """Conformer convolution module with WeNet's batch-padding semantics.

    Padded frames are zeroed on the module INPUT (before pointwise_conv1),
    so after pointwise_conv1 + GLU they hold GLU(bias), not zero, and the
    depthwise conv of the last valid frames sees those values (then the
    conv's own zero padding past the batch's longest utterance). The output
    is zeroed at padded frames after pointwise_conv2.
    """

    def __init__(self, channels: int, kernel_size: int,
                 activation: nn.Module, norm: str, causal: bool):
        super().__init__()
        self.pointwise_conv1 = nn.Conv1d(channels, 2 * channels, 1)
        if causal:
            padding, self.lorder = 0, kernel_size - 1
        else:
            if (kernel_size - 1) % 2 != 0:
                raise ValueError(f"encoder_conf.cnn_module_kernel: expected "
                                 f"an odd kernel, got {kernel_size}")
            padding, self.lorder = (kernel_size - 1) // 2, 0
        self.depthwise_conv = nn.Conv1d(channels, channels, kernel_size,
                                        padding=padding, groups=channels)
        if norm == "batch_norm":
            self.use_layer_norm = False
            self.norm = nn.BatchNorm1d(channels)
        elif norm == "layer_norm":
            self.use_layer_norm = True
            self.norm = nn.LayerNorm(channels)
        else:
            raise ValueError(f"encoder_conf.cnn_module_norm: expected "
                             f"batch_norm or layer_norm, got {norm!r}")
        self.pointwise_conv2 = nn.Conv1d(channels, channels, 1)
        self.activation = activation

    def forward(self, x: torch.Tensor, mask_pad: torch.Tensor):
        x = x.transpose(1, 2)  # (B, C, T)
        x = x.masked_fill(~mask_pad, 0.0)
        if self.lorder > 0:
            x = nn.functional.pad(x, (self.lorder, 0), "constant", 0.0)
        x = nn.functional.glu(self.pointwise_conv1(x), dim=1)
        x = self.depthwise_conv(x)
        if self.use_layer_norm:
            x = self.norm(x.transpose(1, 2)).transpose(1, 2)
        else:
            x = self.norm(x)
        x = self.pointwise_conv2(self.activation(x))
        x = x.masked_fill(~mask_pad, 0.0)
        return x.transpose(1, 2)

    def forward_chunk(self, x: torch.Tensor, cache: Optional[torch.Tensor]):
        """One streaming chunk x (B, C, d), no padding. A causal module
        prepends its cache (B, d, lorder): the last kernel-1 frames of its
        input (before pointwise_conv1), zeros before the first chunk; WeNet's
        ConvolutionModule with cnn_cache. A non-causal one convolves the
        chunk alone. Returns (out, new_cache)."""
        x = x.transpose(1, 2)  # (B, C, T)
        new_cache = None
        if self.lorder > 0:
            if cache is None or cache.size(-1) == 0:
                x = nn.functional.pad(x, (self.lorder, 0), "constant", 0.0)
            else:
                x = torch.cat([cache, x], dim=2)
            new_cache = x[:, :, -self.lorder:]
        x = nn.functional.glu(self.pointwise_conv1(x), dim=1)
        x = self.depthwise_conv(x)
        if self.use_layer_norm:
            x = self.norm(x.transpose(1, 2)).transpose(1, 2)
        else:
            x = self.norm(x)
        x = self.pointwise_conv2(self.activation(x))
        return x.transpose(1, 2), new_cache
