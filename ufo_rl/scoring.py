"""UFO-RL single-pass scoring: one teacher-forced forward pass per prompt.

For prompt ``x`` and target ``y = (y_1..y_T)`` (PAPER.md, "The score", Sec. 4)::

    Conf(x) = (1/T) * sum_t log P(y_t | x, y_<t)      # mean token log-prob
    s       = exp(Conf(x))                            # geometric-mean token prob, in (0, 1]

Two tokenisations (``selector.tokenization``): ``split`` tokenises the prompt and the target
apart and concatenates them; ``joint`` (the authors' script) tokenises the whole chat string,
whose assistant turn is continued by the target, at once and scores its last ``T`` tokens. In
both, ``T`` is the number of tokens of the target tokenised alone. Batches are left-padded, so every
target sits at the right edge of its row and only the last ``max T + 1`` positions need logits
(``logits_to_keep``): with a 150k vocabulary that is most of the memory. Position ids follow
the attention mask, so a padded row scores exactly as it would alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm


@dataclass
class TeacherForcedResult:
    logprob_mean: np.ndarray  # (n,) Conf(x_i)
    n_target_tokens: np.ndarray  # (n,) T_i
    forward_tokens: int  # non-pad tokens fed through the model
    padded_tokens: int  # tokens including padding (waste = padded - forward)


def encode_pairs(tok, prefixes: Sequence[str], targets: Sequence[str]) -> list[tuple[list[int], list[int]]]:
    """Token ids of each (prefix, target), encoded apart and never with added special tokens."""
    pre = tok(list(prefixes), add_special_tokens=False)["input_ids"]
    tgt = tok(list(targets), add_special_tokens=False)["input_ids"]
    return list(zip(pre, tgt))


def encode_joint(tok, texts: Sequence[str], targets: Sequence[str]) -> list[tuple[list[int], list[int]]]:
    """Token ids of each whole ``text`` (which ends with its target), split before its last ``T``
    tokens, ``T`` = the token count of the target alone (its trailing whitespace dropped, as the
    chat template drops it). At a merged boundary the scored tokens are the text's, not the
    target's: that is what the authors scored. No special tokens are added: the chat template
    already wrote them."""
    ids = tok(list(texts), add_special_tokens=False)["input_ids"]
    n_tgt = [len(t) for t in tok([t.rstrip() for t in targets], add_special_tokens=False)["input_ids"]]
    out = []
    for seq, t in zip(ids, n_tgt):
        t = max(0, min(t, len(seq) - 1))  # keep at least one token of context
        out.append((seq[: len(seq) - t], seq[len(seq) - t :]))
    return out


def batches(lengths: Sequence[int], batch_size: int, bucket: bool) -> list[list[int]]:
    """Index batches; with ``bucket`` the indices are sorted by length first (less padding)."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i]) if bucket else list(range(len(lengths)))
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


@torch.no_grad()
def mean_target_logprob(
    model, pairs: Sequence[tuple[list[int], list[int]]], pad_id: int, batch_size: int = 8,
    bucket: bool = True, progress: bool = False,
) -> TeacherForcedResult:
    """``Conf`` of every (prefix ids, target ids) pair under teacher forcing.

    Returns per pair the mean over target tokens of ``log P(y_t | prefix, y_<t)``, read from the
    logits at position ``t - 1``. A pair with an empty target gets ``nan``.
    """
    device = next(model.parameters()).device
    n = len(pairs)
    out = np.full(n, np.nan)
    n_tgt = np.array([len(t) for _, t in pairs])
    forward_tokens = padded = 0
    lengths = [len(p) + len(t) for p, t in pairs]
    groups = batches(lengths, batch_size, bucket)
    for idx in tqdm(groups, desc="ufo score", disable=not progress, leave=False):
        seqs = [pairs[i][0] + pairs[i][1] for i in idx]
        width = max(map(len, seqs))
        ids = torch.full((len(idx), width), pad_id, dtype=torch.long)
        att = torch.zeros((len(idx), width), dtype=torch.long)
        for r, s in enumerate(seqs):
            ids[r, width - len(s):] = torch.tensor(s)
            att[r, width - len(s):] = 1
        pos = (att.cumsum(-1) - 1).clamp(min=0)
        keep = int(max(n_tgt[idx].max(), 0)) + 1
        logits = model(
            input_ids=ids.to(device), attention_mask=att.to(device), position_ids=pos.to(device),
            logits_to_keep=keep, use_cache=False,
        ).logits.float()  # (b, keep, V): positions width-keep .. width-1
        logp = torch.log_softmax(logits[:, :-1], dim=-1)  # predicts tokens width-keep+1 .. width-1
        for r, i in enumerate(idx):
            t = int(n_tgt[i])
            if t == 0:
                continue
            target = torch.tensor(pairs[i][1], device=device)
            rows = logp[r, logp.shape[1] - t:]  # the last t predictions are the target's
            out[i] = rows.gather(-1, target[:, None]).mean().item()
        forward_tokens += sum(map(len, seqs))
        padded += width * len(idx)
    return TeacherForcedResult(out, n_tgt, forward_tokens, padded)
