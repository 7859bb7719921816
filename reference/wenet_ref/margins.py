"""How close the goldens' search decisions are to a tie.

An engine whose log-probs differ from the reference by e reproduces the
goldens' tokens only where these margins exceed a few e. Reported per model
(minimum over utterances):
  greedy   best minus second-best CTC log-prob, over valid frames
  beamcut  prefix-beam search: score of the last kept prefix minus the
           first dropped one, over frames
  order    final N-best: smallest gap between neighbours
  rescore  attention rescoring: best minus second-best final score
and `moved`: in how many utterances rescoring picked another hyp than the
CTC best (the goldens should have some, so that rescoring is tested).
"""

import math
from typing import Dict, Tuple

import torch

from .search import _Prefix, attention_rescoring, log_add


def _beam_margins(log_probs: torch.Tensor, length: int, beam: int):
    """(beamcut, order, nbest, scores); same search as ctc_prefix_beam_search
    but keeping the score of the first pruned prefix."""
    hyps = [((), _Prefix(0.0))]
    cut = math.inf
    for t in range(length):
        logp = log_probs[t]
        _, top_idx = logp.topk(beam)
        nxt = {}

        def get(prefix):
            if prefix not in nxt:
                nxt[prefix] = _Prefix()
            return nxt[prefix]

        for u in top_idx.tolist():
            p = logp[u].item()
            for prefix, sc in hyps:
                last = prefix[-1] if prefix else None
                if u == 0:
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
        if len(ranked) > beam:
            cut = min(cut, ranked[beam - 1][1].score() -
                      ranked[beam][1].score())
        hyps = ranked[:beam]
    scores = [sc.score() for _, sc in hyps]
    order = min((scores[i] - scores[i + 1] for i in range(len(scores) - 1)),
                default=math.inf)
    return cut, order, [list(p) for p, _ in hyps], scores


def decision_margins(model, encoder_out: torch.Tensor,
                     encoder_lens: torch.Tensor, beam: int,
                     ctc_weight: float, reverse_weight: float
                     ) -> Tuple[Dict[str, float], int]:
    if model.blank_id != 0:
        raise ValueError("decision_margins assumes blank id 0")
    ctc = model.ctc_log_probs(encoder_out)
    worst = dict(greedy=math.inf, beamcut=math.inf, order=math.inf,
                 rescore=math.inf)
    moved = 0
    for b in range(encoder_out.size(0)):
        n = int(encoder_lens[b])
        top2, _ = ctc[b, :n].topk(2)
        worst["greedy"] = min(worst["greedy"],
                              (top2[:, 0] - top2[:, 1]).min().item())
        cut, order, nbest, scores = _beam_margins(ctc[b], n, beam)
        worst["beamcut"] = min(worst["beamcut"], cut)
        worst["order"] = min(worst["order"], order)
        best, _, _, final = attention_rescoring(model, encoder_out[b:b + 1, :n],
                                             nbest, scores, ctc_weight,
                                             reverse_weight)
        moved += best != 0
        final = sorted(final, reverse=True)
        if len(final) > 1:
            worst["rescore"] = min(worst["rescore"], final[0] - final[1])
    return worst, moved
