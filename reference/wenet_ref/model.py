"""WeNet's CTC/attention ASR model (inference only), written for this project.

Entry points:
  from_config(cfg, pe_max_len=5000) -> WenetModel  (cfg: train.yaml as a dict)
  load_model_dir(path) -> WenetModel                (train.yaml + final.pt)
  model.encode(feats, feats_lens, decoding_chunk_size=-1,
               num_decoding_left_chunks=-1) -> (encoder_out, encoder_lens)
      (chunk > 0: WeNet's chunk-masked full-sequence forward)
  model.encoder.forward_chunk_by_chunk(feats, chunk, left_chunks)
      -> WeNet's streaming forward with caches, one utterance
  model.ctc_log_probs(encoder_out) -> (B, T', V)
  model.decode(encoder_out, lens_or_mask, hyps_in, hyps_lens, reverse=False)
      -> (N, L, V) decoder log-probs (WeNet's forward_attention_decoder)
"""

import json
import math
import os
from typing import List, Optional, Tuple

import torch
import yaml
from torch import nn

from .layers import (Conv2dSubsampling, ConvolutionModule, MultiHeadedAttention,
                     PositionalEncoding, PositionwiseFeedForward,
                     RelPositionMultiHeadedAttention, make_activation,
                     make_pos_encoding)


class GlobalCMVN(nn.Module):
    """(x - mean) * istd with float32 buffers ``mean`` and ``istd``."""

    def __init__(self, mean: torch.Tensor, istd: torch.Tensor):
        super().__init__()
        self.register_buffer("mean", mean.float())
        self.register_buffer("istd", istd.float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) * self.istd


def cmvn_from_stats(mean_stat, var_stat, frame_num) -> Tuple[torch.Tensor,
                                                             torch.Tensor]:
    """WeNet's formula, in float64, then rounded to float32."""
    mean, istd = [], []
    for m, v in zip(mean_stat, var_stat):
        m = m / frame_num
        var = max(v / frame_num - m * m, 1.0e-20)
        mean.append(m)
        istd.append(1.0 / math.sqrt(var))
    return (torch.tensor(mean, dtype=torch.float64).float(),
            torch.tensor(istd, dtype=torch.float64).float())


def load_cmvn_file(path: str, is_json: bool):
    if is_json:
        with open(path) as f:
            stats = json.load(f)
        return cmvn_from_stats(stats["mean_stat"], stats["var_stat"],
                               stats["frame_num"])
    # Kaldi text: [ mean_stat... count var_stat... 0 ]
    with open(path) as f:
        arr = f.read().split()
    if arr[0] != "[" or arr[-1] != "]":
        raise ValueError(f"{path}: expected Kaldi text cmvn '[ ... ]'")
    dim = (len(arr) - 4) // 2
    vals = [float(a) for a in arr[1:-1]]
    return cmvn_from_stats(vals[:dim], vals[dim + 1:2 * dim + 1], vals[dim])


def make_pad_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """True at padded positions, (B, max_len)."""
    return torch.arange(max_len, device=lengths.device).unsqueeze(0) >= \
        lengths.unsqueeze(1)


def subsequent_chunk_mask(size: int, chunk_size: int,
                          num_left_chunks: int = -1,
                          device=None) -> torch.Tensor:
    """WeNet's subsequent_chunk_mask (wenet/utils/mask.py), vectorized:
    (size, size) bool, row i may see [start, ending) with
    ending = min((i // chunk + 1) * chunk, size) and start = 0 (num_left_chunks
    < 0) or max((i // chunk - num_left_chunks) * chunk, 0)."""
    idx = torch.arange(size, device=device)
    block = idx // chunk_size
    ending = torch.clamp((block + 1) * chunk_size, max=size)
    if num_left_chunks < 0:
        start = torch.zeros_like(idx)
    else:
        start = torch.clamp((block - num_left_chunks) * chunk_size, min=0)
    col = idx.unsqueeze(0)
    return (col >= start.unsqueeze(1)) & (col < ending.unsqueeze(1))


def add_optional_chunk_mask(xs: torch.Tensor, masks: torch.Tensor,
                            use_dynamic_chunk: bool,
                            use_dynamic_left_chunk: bool,
                            decoding_chunk_size: int, static_chunk_size: int,
                            num_decoding_left_chunks: int,
                            enable_full_context: bool = True,
                            max_chunk_size: int = 25) -> torch.Tensor:
    """WeNet's add_optional_chunk_mask (wenet/utils/mask.py). masks (B, 1, T)
    -> attention mask (B, T, T) or (B, 1, T).

    Dynamic chunk models: decoding_chunk_size < 0: full context;
    > 0: that chunk with num_decoding_left_chunks (< 0: all left chunks);
    == 0 (training): draw c = torch.randint(1, T) from torch's global RNG;
    c > T // 2 (about half the batches): full context; else chunk
    c % max_chunk_size + 1 (1..25 frames at 4x subsampling), all left chunks
    unless use_dynamic_left_chunk (then randint(0, (T - 1) // chunk) left
    chunks). Static chunk models keep static_chunk_size with
    num_decoding_left_chunks. Only deviation: T == 1 (WeNet's randint would
    fail) is full context."""
    if use_dynamic_chunk:
        max_len = xs.size(1)
        if decoding_chunk_size < 0:
            chunk_size, num_left_chunks = max_len, -1
        elif decoding_chunk_size > 0:
            chunk_size = decoding_chunk_size
            num_left_chunks = num_decoding_left_chunks
        elif max_len <= 1:
            chunk_size, num_left_chunks = max_len, -1
        else:
            chunk_size = torch.randint(1, max_len, (1, )).item()
            num_left_chunks = -1
            if chunk_size > max_len // 2 and enable_full_context:
                chunk_size = max_len
            else:
                chunk_size = chunk_size % max_chunk_size + 1
                if use_dynamic_left_chunk:
                    max_left_chunks = (max_len - 1) // chunk_size
                    num_left_chunks = torch.randint(0, max_left_chunks,
                                                    (1, )).item()
        if chunk_size >= max_len and num_left_chunks < 0:
            return masks  # the same attention as a (B, T, T) all-ones mask
        chunk_masks = subsequent_chunk_mask(xs.size(1), chunk_size,
                                            num_left_chunks, xs.device)
        return masks & chunk_masks.unsqueeze(0)
    if static_chunk_size > 0:
        chunk_masks = subsequent_chunk_mask(xs.size(1), static_chunk_size,
                                            num_decoding_left_chunks,
                                            xs.device)
        return masks & chunk_masks.unsqueeze(0)
    return masks


class TransformerEncoderLayer(nn.Module):

    def __init__(self, size, self_attn, feed_forward, normalize_before):
        super().__init__()
        self.self_attn = self_attn
        self.feed_forward = feed_forward
        self.norm1 = nn.LayerNorm(size)
        self.norm2 = nn.LayerNorm(size)
        self.normalize_before = normalize_before

    def forward(self, x, mask, pos_emb, mask_pad):
        nb = self.normalize_before
        residual = x
        h = self.norm1(x) if nb else x
        x = residual + self.self_attn(h, h, h, mask, pos_emb)
        if not nb:
            x = self.norm1(x)
        residual = x
        h = self.norm2(x) if nb else x
        x = residual + self.feed_forward(h)
        if not nb:
            x = self.norm2(x)
        return x

    def forward_chunk(self, x, pos_emb, att_cache, cnn_cache):
        nb = self.normalize_before
        h = self.norm1(x) if nb else x
        att, new_att = self.self_attn.forward_chunk(h, pos_emb, att_cache)
        x = x + att
        if not nb:
            x = self.norm1(x)
        h = self.norm2(x) if nb else x
        x = x + self.feed_forward(h)
        if not nb:
            x = self.norm2(x)
        return x, new_att, None


class ConformerEncoderLayer(nn.Module):
    """[½ FFN_macaron] -> MHA -> [conv] -> FFN (x½ with macaron) ->
    [norm_final]; every sub-block pre-normed and residual."""

    def __init__(self, size, self_attn, feed_forward, feed_forward_macaron,
                 conv_module, normalize_before):
        super().__init__()
        self.self_attn = self_attn
        self.feed_forward = feed_forward
        self.feed_forward_macaron = feed_forward_macaron
        self.conv_module = conv_module
        self.norm_ff = nn.LayerNorm(size)
        self.norm_mha = nn.LayerNorm(size)
        if feed_forward_macaron is not None:
            self.norm_ff_macaron = nn.LayerNorm(size)
            self.ff_scale = 0.5
        else:
            self.ff_scale = 1.0
        if conv_module is not None:
            self.norm_conv = nn.LayerNorm(size)
            self.norm_final = nn.LayerNorm(size)
        self.normalize_before = normalize_before

    def _sub(self, x, norm, fn, scale=1.0):
        """Residual sub-block x + scale * fn(norm(x)) (pre-norm), or
        norm(x + scale * fn(x)) (post-norm)."""
        nb = self.normalize_before
        x = x + scale * fn(norm(x) if nb else x)
        return x if nb else norm(x)

    def forward(self, x, mask, pos_emb, mask_pad):
        if self.feed_forward_macaron is not None:
            x = self._sub(x, self.norm_ff_macaron, self.feed_forward_macaron,
                          self.ff_scale)
        x = self._sub(x, self.norm_mha,
                      lambda h: self.self_attn(h, h, h, mask, pos_emb))
        if self.conv_module is not None:
            x = self._sub(x, self.norm_conv,
                          lambda h: self.conv_module(h, mask_pad))
        x = self._sub(x, self.norm_ff, self.feed_forward, self.ff_scale)
        if self.conv_module is not None:
            x = self.norm_final(x)
        return x

    def forward_chunk(self, x, pos_emb, att_cache, cnn_cache):
        """One streaming chunk (WeNet's layer forward with att_cache and
        cnn_cache): returns (x, (k, v) incl. this chunk, new cnn cache)."""
        if self.feed_forward_macaron is not None:
            x = self._sub(x, self.norm_ff_macaron, self.feed_forward_macaron,
                          self.ff_scale)
        new_att = None

        def att(h):
            nonlocal new_att
            out, new_att = self.self_attn.forward_chunk(h, pos_emb, att_cache)
            return out
        x = self._sub(x, self.norm_mha, att)
        new_cnn = None
        if self.conv_module is not None:
            def conv(h):
                nonlocal new_cnn
                out, new_cnn = self.conv_module.forward_chunk(h, cnn_cache)
                return out
            x = self._sub(x, self.norm_conv, conv)
        x = self._sub(x, self.norm_ff, self.feed_forward, self.ff_scale)
        if self.conv_module is not None:
            x = self.norm_final(x)
        return x, new_att, new_cnn


class Encoder(nn.Module):
    """Conformer or Transformer encoder (module name ``encoder``)."""

    def __init__(self, kind: str, input_dim: int, conf: dict,
                 global_cmvn: Optional[GlobalCMVN], pe_max_len: int):
        super().__init__()
        d = conf.get("output_size", 256)
        heads = conf.get("attention_heads", 4)
        units = conf.get("linear_units", 2048)
        blocks = conf.get("num_blocks", 6)
        conformer = kind == "conformer"
        pos_type = conf.get("pos_enc_layer_type",
                            "rel_pos" if conformer else "abs_pos")
        self.normalize_before = conf.get("normalize_before", True)
        self.static_chunk_size = conf.get("static_chunk_size", 0)
        self.use_dynamic_chunk = conf.get("use_dynamic_chunk", False)
        self.use_dynamic_left_chunk = conf.get("use_dynamic_left_chunk", False)

        self.global_cmvn = global_cmvn
        self.embed = Conv2dSubsampling(
            conf.get("input_layer", "conv2d"), input_dim, d,
            make_pos_encoding(pos_type, d, pe_max_len))
        self.after_norm = nn.LayerNorm(d)

        act_name = conf.get("activation_type", "swish" if conformer else "relu")
        attn_type = conf.get("selfattention_layer_type")
        if attn_type is None:  # older WeNet picked it from the pos encoding
            attn_type = "rel_selfattn" if pos_type == "rel_pos" else "selfattn"
        if attn_type not in ("selfattn", "rel_selfattn"):
            raise ValueError(f"encoder_conf.selfattention_layer_type: expected "
                             f"selfattn or rel_selfattn, got {attn_type!r}")
        if attn_type == "rel_selfattn" and not conformer:
            raise ValueError("encoder_conf.selfattention_layer_type: "
                             "rel_selfattn needs encoder: conformer")

        def attn():
            cls = (RelPositionMultiHeadedAttention
                   if attn_type == "rel_selfattn" else MultiHeadedAttention)
            return cls(heads, d)

        def ffn():
            return PositionwiseFeedForward(
                d, units, make_activation(act_name,
                                          "encoder_conf.activation_type"))

        if conformer:
            macaron = conf.get("macaron_style", True)
            use_cnn = conf.get("use_cnn_module", True)
            kernel = conf.get("cnn_module_kernel", 15)
            norm = conf.get("cnn_module_norm", "batch_norm")
            causal = conf.get("causal", False)
            self.encoders = nn.ModuleList([
                ConformerEncoderLayer(
                    d, attn(), ffn(), ffn() if macaron else None,
                    ConvolutionModule(
                        d, kernel,
                        make_activation(act_name,
                                        "encoder_conf.activation_type"),
                        norm, causal) if use_cnn else None,
                    self.normalize_before) for _ in range(blocks)
            ])
        else:
            self.encoders = nn.ModuleList([
                TransformerEncoderLayer(d, attn(), ffn(),
                                        self.normalize_before)
                for _ in range(blocks)
            ])

    def forward(self, xs: torch.Tensor, xs_lens: torch.Tensor,
                decoding_chunk_size: int = -1,
                num_decoding_left_chunks: int = -1):
        """WeNet's BaseEncoder.forward. NOTE the default: -1 (full context;
        static chunk models keep their chunks), where WeNet's default is 0,
        which draws a random chunk (dynamic chunk training): pass 0 to train.
        The attention mask is add_optional_chunk_mask's; the conv module only
        sees the padding mask (a causal conv never looks right)."""
        masks = ~make_pad_mask(xs_lens, xs.size(1)).unsqueeze(1)  # (B,1,T)
        if self.global_cmvn is not None:
            xs = self.global_cmvn(xs)
        xs, pos_emb, masks = self.embed(xs, masks)
        mask_pad = masks  # (B, 1, T')
        att_mask = add_optional_chunk_mask(
            xs, masks, self.use_dynamic_chunk, self.use_dynamic_left_chunk,
            decoding_chunk_size, self.static_chunk_size,
            num_decoding_left_chunks,
            max_chunk_size=int(100.0 / self.embed.subsampling_rate))
        for layer in self.encoders:
            xs = layer(xs, att_mask, pos_emb, mask_pad)
        if self.normalize_before:
            xs = self.after_norm(xs)
        return xs, masks

    def forward_chunk(self, xs: torch.Tensor, offset: int,
                      required_cache_size: int,
                      att_cache: Optional[List] = None,
                      cnn_cache: Optional[List] = None):
        """WeNet's BaseEncoder.forward_chunk for one chunk of raw features xs
        (1, (C-1)*s + right_context + 1, F) (or fewer at the end): CMVN,
        subsampling (positions from `offset`), then each layer over its
        cached K/V (per layer (k, v), each (1, H, Tc, d_k)) with
        pos_emb = position_encoding(offset - Tc, Tc + C), and its conv cache.
        Returns (out (1, C, d), att_cache, cnn_cache), the att cache keeping
        the last required_cache_size frames (< 0: all, 0: none...as WeNet:
        0 keeps nothing)."""
        assert xs.size(0) == 1
        tmp_masks = torch.ones(1, 1, xs.size(1), dtype=torch.bool,
                               device=xs.device)
        if self.global_cmvn is not None:
            xs = self.global_cmvn(xs)
        xs, _, _ = self.embed(xs, tmp_masks, offset)
        cache_t1 = att_cache[0][0].size(2) if att_cache else 0
        chunk = xs.size(1)
        key_size = cache_t1 + chunk
        pos_emb = self.embed.position_encoding(key_size, offset - cache_t1)
        pos_emb = pos_emb.to(xs.device, xs.dtype)
        if required_cache_size < 0:
            start = 0
        elif required_cache_size == 0:
            start = key_size
        else:
            start = max(key_size - required_cache_size, 0)
        new_att, new_cnn = [], []
        for i, layer in enumerate(self.encoders):
            xs, (k, v), c = layer.forward_chunk(
                xs, pos_emb, att_cache[i] if att_cache else None,
                cnn_cache[i] if cnn_cache else None)
            new_att.append((k[:, :, start:], v[:, :, start:]))
            new_cnn.append(c)
        if self.normalize_before:
            xs = self.after_norm(xs)
        return xs, new_att, new_cnn

    def forward_chunk_by_chunk(self, xs: torch.Tensor,
                               decoding_chunk_size: int,
                               num_decoding_left_chunks: int = -1):
        """WeNet's BaseEncoder.forward_chunk_by_chunk, one utterance
        xs (1, T, F): windows of (C-1)*s + right_context + 1 input frames
        every s*C frames (overlapping; no subsampling cache), attention cache
        of C * num_decoding_left_chunks frames (< 0: all), conv cache.
        Returns (out (1, T', d), masks (1, 1, T') all True)."""
        assert decoding_chunk_size > 0
        assert self.static_chunk_size > 0 or self.use_dynamic_chunk
        s = self.embed.subsampling_rate
        context = self.embed.right_context + 1
        stride = s * decoding_chunk_size
        window = (decoding_chunk_size - 1) * s + context
        num_frames = xs.size(1)
        att_cache, cnn_cache, outputs, offset = None, None, [], 0
        required = decoding_chunk_size * num_decoding_left_chunks
        for cur in range(0, num_frames - context + 1, stride):
            end = min(cur + window, num_frames)
            y, att_cache, cnn_cache = self.forward_chunk(
                xs[:, cur:end], offset, required, att_cache, cnn_cache)
            outputs.append(y)
            offset += y.size(1)
        ys = torch.cat(outputs, 1)
        return ys, torch.ones(1, 1, ys.size(1), dtype=torch.bool,
                              device=ys.device)


class DecoderLayer(nn.Module):

    def __init__(self, size, heads, units, activation, normalize_before):
        super().__init__()
        self.self_attn = MultiHeadedAttention(heads, size)
        self.src_attn = MultiHeadedAttention(heads, size)
        self.feed_forward = PositionwiseFeedForward(size, units, activation)
        self.norm1 = nn.LayerNorm(size)
        self.norm2 = nn.LayerNorm(size)
        self.norm3 = nn.LayerNorm(size)
        self.normalize_before = normalize_before

    def forward(self, x, tgt_mask, memory, memory_mask):
        nb = self.normalize_before
        h = self.norm1(x) if nb else x
        x = x + self.self_attn(h, h, h, tgt_mask)
        if not nb:
            x = self.norm1(x)
        h = self.norm2(x) if nb else x
        x = x + self.src_attn(h, memory, memory, memory_mask)
        if not nb:
            x = self.norm2(x)
        h = self.norm3(x) if nb else x
        x = x + self.feed_forward(h)
        if not nb:
            x = self.norm3(x)
        return x


class TransformerDecoder(nn.Module):
    """embed (Embedding, PositionalEncoding) -> layers -> after_norm ->
    output_layer. Returns logits."""

    def __init__(self, vocab: int, d: int, conf: dict, num_blocks: int,
                 pe_max_len: int):
        super().__init__()
        if conf.get("input_layer", "embed") != "embed":
            raise ValueError(f"decoder_conf.input_layer: expected embed, got "
                             f"{conf['input_layer']!r}")
        heads = conf.get("attention_heads", 4)
        units = conf.get("linear_units", 2048)
        act = conf.get("activation_type", "relu")
        self.normalize_before = conf.get("normalize_before", True)
        self.embed = nn.Sequential(nn.Embedding(vocab, d),
                                   PositionalEncoding(d, pe_max_len))
        self.after_norm = nn.LayerNorm(d)
        self.output_layer = nn.Linear(d, vocab)
        self.decoders = nn.ModuleList([
            DecoderLayer(d, heads, units,
                         make_activation(act, "decoder_conf.activation_type"),
                         self.normalize_before) for _ in range(num_blocks)
        ])

    def forward(self, memory, memory_mask, ys_in, ys_in_lens):
        length = ys_in.size(1)
        tgt_mask = ~make_pad_mask(ys_in_lens, length).unsqueeze(1)  # (N,1,L)
        causal = torch.tril(torch.ones(length, length, dtype=torch.bool))
        tgt_mask = tgt_mask & causal.unsqueeze(0)  # (N, L, L)
        x, _ = self.embed[1](self.embed[0](ys_in))
        for layer in self.decoders:
            x = layer(x, tgt_mask, memory, memory_mask)
        if self.normalize_before:
            x = self.after_norm(x)
        return self.output_layer(x)


class BiTransformerDecoder(nn.Module):

    def __init__(self, vocab: int, d: int, conf: dict, pe_max_len: int):
        super().__init__()
        self.left_decoder = TransformerDecoder(vocab, d, conf,
                                               conf.get("num_blocks", 6),
                                               pe_max_len)
        self.right_decoder = TransformerDecoder(vocab, d, conf,
                                                conf.get("r_num_blocks", 0),
                                                pe_max_len)


class CTC(nn.Module):

    def __init__(self, vocab: int, d: int):
        super().__init__()
        self.ctc_lo = nn.Linear(d, vocab)


def reverse_hyps(hyps_in: torch.Tensor, hyps_lens: torch.Tensor,
                 eos: int) -> torch.Tensor:
    """Right-to-left decoder input, as WeNet's forward_attention_decoder
    builds it: [<sos>, y_n, ..., y_1, <eos>, <eos>...] where hyps_in is
    [<sos>, y_1, ..., y_n, <eos>...] and hyps_lens = n + 1. Same shape as
    hyps_in (the last column is eos padding for the longest hyp)."""
    tokens = hyps_in[:, 1:]
    r_lens = hyps_lens - 1
    width = tokens.size(1)
    idx = torch.arange(width).unsqueeze(0)
    valid = idx < r_lens.unsqueeze(1)
    gather = ((r_lens.unsqueeze(1) - 1 - idx) * valid).clamp(min=0)
    rev = torch.where(valid, torch.gather(tokens, 1, gather),
                      torch.full_like(tokens, eos))
    # WeNet gathers only max(r_lens) columns; beyond that it is all eos too.
    return torch.cat([hyps_in[:, :1], rev], dim=1)


class WenetModel(nn.Module):
    """encoder + decoder + ctc, named as WeNet's ASRModel."""

    def __init__(self, cfg: dict, pe_max_len: int = 5000,
                 cmvn: Optional[Tuple[torch.Tensor, torch.Tensor]] = None,
                 use_cmvn: bool = True):
        super().__init__()
        self.vocab_size = int(cfg["output_dim"])
        input_dim = int(cfg["input_dim"])
        enc_kind = cfg.get("encoder", "conformer")
        if enc_kind not in ("conformer", "transformer"):
            raise ValueError(f"encoder: expected conformer or transformer, "
                             f"got {enc_kind!r}")
        dec_kind = cfg.get("decoder", "bitransformer")
        if dec_kind not in ("transformer", "bitransformer"):
            raise ValueError(f"decoder: expected transformer or "
                             f"bitransformer, got {dec_kind!r}")
        enc_conf = cfg.get("encoder_conf", {}) or {}
        dec_conf = cfg.get("decoder_conf", {}) or {}

        global_cmvn = None
        if use_cmvn:
            if cmvn is None:
                cmvn = (torch.zeros(input_dim), torch.ones(input_dim))
            global_cmvn = GlobalCMVN(*cmvn)
        self.encoder = Encoder(enc_kind, input_dim, enc_conf, global_cmvn,
                               pe_max_len)
        d = enc_conf.get("output_size", 256)
        if dec_kind == "transformer":
            self.decoder = TransformerDecoder(self.vocab_size, d, dec_conf,
                                              dec_conf.get("num_blocks", 6),
                                              pe_max_len)
        else:
            self.decoder = BiTransformerDecoder(self.vocab_size, d, dec_conf,
                                                pe_max_len)
        self.ctc = CTC(self.vocab_size, d)

        special = (cfg.get("tokenizer_conf", {}) or {}).get("special_tokens",
                                                             {}) or {}
        self.sos = int(special.get("<sos>", self.vocab_size - 1))
        self.eos = int(special.get("<eos>", self.vocab_size - 1))
        self.blank_id = int((cfg.get("ctc_conf", {}) or {}).get(
            "ctc_blank_id", 0))
        self.reverse_weight = float(
            (cfg.get("model_conf", {}) or {}).get("reverse_weight", 0.0))
        self.eval()

    @property
    def is_bidirectional(self) -> bool:
        return isinstance(self.decoder, BiTransformerDecoder)

    @torch.no_grad()
    def encode(self, feats: torch.Tensor, feats_lens: torch.Tensor,
               decoding_chunk_size: int = -1,
               num_decoding_left_chunks: int = -1):
        """feats (B, T, F) raw fbank (CMVN applied inside), lens (B,).
        decoding_chunk_size > 0 (streaming models): WeNet's chunk-masked
        forward (decode without simulate_streaming); for a causal conv module
        with all left chunks it equals forward_chunk_by_chunk."""
        out, masks = self.encoder(feats.float(), feats_lens.long(),
                                  decoding_chunk_size,
                                  num_decoding_left_chunks)
        return out, masks.squeeze(1).sum(1)

    @torch.no_grad()
    def ctc_log_probs(self, encoder_out: torch.Tensor) -> torch.Tensor:
        return torch.log_softmax(self.ctc.ctc_lo(encoder_out), dim=-1)

    @torch.no_grad()
    def decode(self, encoder_out: torch.Tensor, lens_or_mask: torch.Tensor,
               hyps_in: torch.Tensor, hyps_lens: torch.Tensor,
               reverse: bool = False) -> torch.Tensor:
        """Decoder log-probs (N, L, V) for hyps_in (N, L) = <sos> + tokens +
        <eos> padding, hyps_lens = tokens + 1. encoder_out is (1, T, d)
        (shared by all hyps) or (N, T, d); lens_or_mask is (B,) valid frame
        counts or a (B, 1, T) bool mask. reverse=True runs the right-to-left
        decoder on WeNet's reversed input built from hyps_in."""
        n = hyps_in.size(0)
        hyps_in, hyps_lens = hyps_in.long(), hyps_lens.long()
        if lens_or_mask.dim() == 1:
            mask = ~make_pad_mask(lens_or_mask.long(),
                                  encoder_out.size(1)).unsqueeze(1)
        else:
            mask = lens_or_mask.bool()
        if encoder_out.size(0) == 1 and n > 1:
            encoder_out = encoder_out.expand(n, -1, -1)
            mask = mask.expand(n, -1, -1)
        if isinstance(self.decoder, BiTransformerDecoder):
            dec = self.decoder.right_decoder if reverse else \
                self.decoder.left_decoder
        elif reverse:
            raise ValueError("reverse=True needs decoder: bitransformer")
        else:
            dec = self.decoder
        if reverse:
            hyps_in = reverse_hyps(hyps_in, hyps_lens, self.eos)
        logits = dec(encoder_out, mask, hyps_in, hyps_lens)
        return torch.log_softmax(logits, dim=-1)


def uses_cmvn(cfg: dict) -> bool:
    if cfg.get("cmvn") == "global_cmvn":
        return True
    return bool(cfg.get("cmvn_file"))  # older top-level layout


def cmvn_path(cfg: dict, model_dir: str) -> Tuple[Optional[str], bool]:
    conf = cfg.get("cmvn_conf") or {}
    path = conf.get("cmvn_file", cfg.get("cmvn_file"))
    is_json = conf.get("is_json_cmvn", cfg.get("is_json_cmvn", True))
    if not path:
        return None, is_json
    for cand in (path, os.path.join(model_dir, path),
                 os.path.join(model_dir, os.path.basename(path))):
        if os.path.isfile(cand):
            return cand, is_json
    return None, is_json


def from_config(cfg: dict, pe_max_len: int = 5000, cmvn=None) -> WenetModel:
    return WenetModel(cfg, pe_max_len=pe_max_len, cmvn=cmvn,
                      use_cmvn=uses_cmvn(cfg))


def load_model_dir(model_dir: str) -> WenetModel:
    """train.yaml + final.pt (or the only *.pt) of a WeNet model dir."""
    with open(os.path.join(model_dir, "train.yaml")) as f:
        cfg = yaml.safe_load(f)
    ckpt = os.path.join(model_dir, "final.pt")
    if not os.path.isfile(ckpt):
        pts = sorted(p for p in os.listdir(model_dir) if p.endswith(".pt"))
        if not pts:
            raise FileNotFoundError(f"{model_dir}: no final.pt or *.pt")
        ckpt = os.path.join(model_dir, pts[0])
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    pe_key = "encoder.embed.pos_enc.pe"
    pe_max_len = state[pe_key].size(1) if pe_key in state else 5000
    cmvn = None
    use_cmvn = uses_cmvn(cfg) or "encoder.global_cmvn.mean" in state
    if use_cmvn and "encoder.global_cmvn.mean" not in state:
        path, is_json = cmvn_path(cfg, model_dir)
        if path is None:
            raise FileNotFoundError(f"{model_dir}: cmvn file not found")
        cmvn = load_cmvn_file(path, is_json)
    model = WenetModel(cfg, pe_max_len=pe_max_len, cmvn=cmvn,
                       use_cmvn=use_cmvn)
    if use_cmvn and "encoder.global_cmvn.mean" not in state:
        state = dict(state)
        state["encoder.global_cmvn.mean"] = model.encoder.global_cmvn.mean
        state["encoder.global_cmvn.istd"] = model.encoder.global_cmvn.istd
    model.load_state_dict(state, strict=True)
    model.eval()
    return model
