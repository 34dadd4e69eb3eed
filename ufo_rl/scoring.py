"""UFO-RL single-pass scoring: one teacher-forced forward pass per prompt.

For prompt ``x`` and target ``y = (y_1..y_T)`` (arXiv 2505.12457, Sec. 4)::

    Conf(x) = (1/T) * sum_t log P(y_t | x, y_<t)      # mean token log-prob
    s       = exp(Conf(x))                            # geometric-mean token prob, in (0, 1]

Two tokenisations (``selector.tokenization``): ``split`` tokenises the prompt and the target
apart and concatenates them; ``joint`` (the authors' script) tokenises the whole chat string,
whose assistant turn is continued by the target, at once and scores its last ``T`` tokens. In
both, ``T`` is the number of tokens of the target tokenised alone. Batches are left-padded, so every
target sits at the right edge of its row and only the last ``max T + 1`` positions need logits
(``logits_to_keep``): with a 150k vocabulary that is most of the memory. Position ids follow
the attention mask, so a padded row scores exactly as it would alone.

Tokens that every sequence of a call starts with (the chat template and system prompt: 94 of 168
tokens on average for GSM8K under the R1 prompt with SmolLM2) are run once, and their KV cache is
copied to every batch (``share_prefix``). Each batch then feeds only the rest of its rows, placed
after the shared prefix, with the padding between the two masked out; positions continue from the
prefix, so each row sees the same context as before. Scores equal those without sharing up to
the rounding of a different matrix shape.
"""

from __future__ import annotations

import copy
import inspect
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm


@dataclass
class TeacherForcedResult:
    logprob_mean: np.ndarray  # (n,) Conf(x_i)
    n_target_tokens: np.ndarray  # (n,) T_i
    forward_tokens: int  # non-pad tokens fed through the model (a shared prefix counted once)
    padded_tokens: int  # tokens including padding (waste = padded - forward)
    shared_prefix_tokens: int = 0  # leading tokens common to every sequence, run once


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


# a shared prefix shorter than this is not worth a cache copy per batch
MIN_SHARED_PREFIX = 4


def shared_prefix_length(pairs: Sequence[tuple[list[int], list[int]]]) -> int:
    """How many leading tokens every (prefix, target) pair has in common, at most one less than its
    shortest prefix: each row keeps the token whose logits predict its first target token."""
    if len(pairs) < 2:
        return 0
    common = os.path.commonprefix([p for p, _ in pairs])  # lexicographic min/max: linear, in C
    return max(0, min(len(common), min(len(p) for p, _ in pairs) - 1))


def cache_arg(model) -> str:
    """The forward's name of the KV cache argument, and of the output that returns it
    (transformers 5.24 renamed ``past_key_values`` to ``cache``; 5.17, the vLLM venv's, has the
    old name)."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


@torch.no_grad()
def mean_target_logprob(
    model, pairs: Sequence[tuple[list[int], list[int]]], pad_id: int, batch_size: int = 8,
    bucket: bool = True, progress: bool = False, share_prefix: bool = True,
) -> TeacherForcedResult:
    """``Conf`` of every (prefix ids, target ids) pair under teacher forcing.

    Returns per pair the mean over target tokens of ``log P(y_t | prefix, y_<t)``, read from the
    logits at position ``t - 1``. A pair with an empty target gets ``nan``. With ``share_prefix``
    the leading tokens common to all pairs (:func:`shared_prefix_length`) run once (module doc).
    """
    device = next(model.parameters()).device
    n = len(pairs)
    out = np.full(n, np.nan)
    n_tgt = np.array([len(t) for _, t in pairs])
    shared = shared_prefix_length(pairs) if share_prefix else 0
    if shared < MIN_SHARED_PREFIX:
        shared = 0
    prefix_cache, cache_kw = None, {}
    if shared:
        arg = cache_arg(model)
        head = torch.tensor([pairs[0][0][:shared]], device=device)
        prefix_cache = model(input_ids=head, use_cache=True)[arg]  # the output names it alike
    forward_tokens, padded = shared, shared
    lengths = [len(p) + len(t) - shared for p, t in pairs]
    groups = batches(lengths, batch_size, bucket)
    for idx in tqdm(groups, desc="ufo score", disable=not progress, leave=False):
        seqs = [(pairs[i][0] + pairs[i][1])[shared:] for i in idx]
        width = max(map(len, seqs))
        ids = torch.full((len(idx), width), pad_id, dtype=torch.long)
        att = torch.zeros((len(idx), width), dtype=torch.long)
        for r, s in enumerate(seqs):
            ids[r, width - len(s):] = torch.tensor(s)
            att[r, width - len(s):] = 1
        pos = (att.cumsum(-1) - 1).clamp(min=0) + shared
        keep = int(max(n_tgt[idx].max(), 0)) + 1
        if shared:  # the prefix's cache for each row; the padding sits between it and the rest
            cache = copy.deepcopy(prefix_cache)
            cache.batch_repeat_interleave(len(idx))
            att = torch.cat([torch.ones((len(idx), shared), dtype=torch.long), att], dim=-1)
            cache_kw = {arg: cache}
        logits = model(
            input_ids=ids.to(device), attention_mask=att.to(device), position_ids=pos.to(device),
            logits_to_keep=keep, use_cache=bool(shared), **cache_kw,
        ).logits.float()  # (b, keep, V): positions width-keep .. width-1
        for r, i in enumerate(idx):
            t = int(n_tgt[i])
            if t == 0:
                continue
            target = torch.tensor(pairs[i][1], device=device)
            # the last t predictions are the target's (position width-1 predicts past the end);
            # normalised row by row, so the batch's logits are never copied whole
            rows = torch.log_softmax(logits[r, keep - 1 - t : keep - 1], dim=-1)
            out[i] = rows.gather(-1, target[:, None]).mean().item()
        del logits
        forward_tokens += sum(map(len, seqs))
        padded += width * len(idx)
    return TeacherForcedResult(out, n_tgt, forward_tokens, padded, shared)
