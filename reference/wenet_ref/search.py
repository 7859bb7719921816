"""CTC greedy search, CTC prefix beam search and attention rescoring with the
semantics of WeNet's python search (wenet/models/transformer/search.py).

Prefix beam search runs in float64 on the float32 log-probs (as WeNet's
python does with .item()). Attention rescoring accumulates in float32 torch
scalars, as WeNet does: decoder log-probs are float32 tensors, so WeNet's
``score`` becomes a float32 tensor after the first addition.
"""

import math
from typing import List, Sequence, Tuple

import torch


def log_add(*args: float) -> float:
    if all(a == -math.inf for a in args):
        return -math.inf
    a_max = max(args)
    return a_max + math.log(sum(math.exp(a - a_max) for a in args))


def ctc_greedy_search(log_probs: torch.Tensor, length: int,
                      blank_id: int = 0) -> List[int]:
    """Best path over the first `length` frames of (T, V) log-probs, then
    collapse repeats and drop blanks."""
    best = log_probs[:length].argmax(dim=-1).tolist()
    out, prev = [], None
    for tok in best:
        if tok != prev and tok != blank_id:
            out.append(tok)
        prev = tok
    return out


class _Prefix:
    __slots__ = ("s", "ns")

    def __init__(self, s: float = -math.inf, ns: float = -math.inf):
        self.s = s  # ends in blank
        self.ns = ns  # ends in the last token

    def score(self) -> float:
        return log_add(self.s, self.ns)


def ctc_prefix_beam_search(log_probs: torch.Tensor, length: int,
                           beam_size: int, blank_id: int = 0
                           ) -> Tuple[List[List[int]], List[float]]:
    """N-best prefixes and their CTC scores (log-sum over all alignments).

    Per frame: take the frame's top-`beam_size` tokens (torch.topk order);
    extend every kept prefix by each of them in that order (blank keeps the
    prefix; a repeat of the last token keeps it from the non-blank path and
    extends it from the blank path); merge equal prefixes by log-add; keep
    the `beam_size` best by score (stable sort: ties keep first-seen order).
    """
    hyps: List[Tuple[Tuple[int, ...], _Prefix]] = [((), _Prefix(0.0))]
    for t in range(length):
        logp = log_probs[t]
        _, top_idx = logp.topk(beam_size)
        nxt = {}

        def get(prefix):
            if prefix not in nxt:
                nxt[prefix] = _Prefix()
            return nxt[prefix]

        for u in top_idx.tolist():
            p = logp[u].item()
            for prefix, sc in hyps:
                last = prefix[-1] if prefix else None
                if u == blank_id:
                    n = get(prefix)
                    n.s = log_add(n.s, sc.score() + p)
                elif u == last:
                    n1 = get(prefix)
                    n1.ns = log_add(n1.ns, sc.ns + p)
                    n2 = get(prefix + (u, ))
                    n2.ns = log_add(n2.ns, sc.s + p)
                else:
                    n = get(prefix + (u, ))
                    n.ns = log_add(n.ns, sc.score() + p)
        ranked = sorted(nxt.items(), key=lambda kv: kv[1].score(),
                        reverse=True)
        hyps = ranked[:beam_size]
    return [list(p) for p, _ in hyps], [sc.score() for _, sc in hyps]


def pad_hyps(nbest: Sequence[Sequence[int]], sos: int,
             eos: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """hyps_in (N, maxlen + 1) = <sos> + tokens + <eos> padding and
    hyps_lens = len + 1 (WeNet's add_sos_eos on the N-best)."""
    width = max(len(h) for h in nbest) + 1
    hyps_in = torch.full((len(nbest), width), eos, dtype=torch.long)
    hyps_in[:, 0] = sos
    for i, h in enumerate(nbest):
        if h:
            hyps_in[i, 1:len(h) + 1] = torch.tensor(h, dtype=torch.long)
    lens = torch.tensor([len(h) + 1 for h in nbest], dtype=torch.long)
    return hyps_in, lens


def hyp_decoder_score(log_probs: torch.Tensor, hyp: Sequence[int], eos: int,
                      reverse: bool = False) -> torch.Tensor:
    """Sum of log P(token) + log P(<eos>) of one hyp from its (L, V) decoder
    log-probs, summed in float32 in WeNet's order. For the right-to-left
    decoder, token j sits at position len - 1 - j."""
    n = len(hyp)
    score = torch.zeros((), dtype=log_probs.dtype)
    for j, w in enumerate(hyp):
        pos = n - 1 - j if reverse else j
        score = score + log_probs[pos, w]
    return score + log_probs[n, eos]


def attention_rescoring(model, encoder_out: torch.Tensor,
                        nbest: Sequence[Sequence[int]],
                        ctc_scores: Sequence[float], ctc_weight: float = 0.5,
                        reverse_weight: float = 0.0,
                        rescoring_weight: float = 1.0):
    """Rescore one utterance's N-best; encoder_out is (1, T_valid, d).

    score_i = rescoring_weight * att_i + ctc_weight * ctc_i, with
    att_i = l2r_i, or (1 - reverse_weight) * l2r_i + reverse_weight * r2l_i
    for a bidirectional decoder with reverse_weight > 0. WeNet's python has
    no rescoring_weight (it is 1); WeNet's C++ runtime has it.
    Returns (best_index, best_tokens, best_score, all_scores); the first
    maximum wins ties.
    """
    hyps_in, hyps_lens = pad_hyps(nbest, model.sos, model.eos)
    lens = torch.tensor([encoder_out.size(1)])
    l2r = model.decode(encoder_out, lens, hyps_in, hyps_lens)
    use_r2l = reverse_weight > 0 and model.is_bidirectional
    r2l = model.decode(encoder_out, lens, hyps_in, hyps_lens,
                       reverse=True) if use_r2l else None
    scores = []
    for i, hyp in enumerate(nbest):
        score = hyp_decoder_score(l2r[i], hyp, model.eos)
        if use_r2l:
            r_score = hyp_decoder_score(r2l[i], hyp, model.eos, reverse=True)
            score = score * (1 - reverse_weight) + r_score * reverse_weight
        if rescoring_weight != 1.0:
            score = score * rescoring_weight
        score = score + ctc_scores[i] * ctc_weight
        scores.append(score.item())
    best = max(range(len(scores)), key=lambda i: (scores[i], -i))
    return best, list(nbest[best]), scores[best], scores
