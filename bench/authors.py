"""The authors' UFO scoring procedure (arXiv 2505.12457, Sec. 4 and their public scoring script),
written out independently of the project's scorer (``ufo_rl/scorers.py``).

Each prompt is the chat [system, user, assistant ``"<answer> " + gold``] continued (no end of
turn); the whole set is tokenised at once and left-padded to its longest prompt; batches of 8 go
through the model with the attention mask only; for each prompt the last T tokens are scored one
by one in a Python loop, T = the gold answer's own token count.

Two uses: ``tests/test_real_model.py`` checks that the project's scorer gives the same Conf per
prompt (the parity test), and the benchmarks (``bench/gpu_check.py``) time it against the
project's scorer on the same model and prompts.
"""

from __future__ import annotations

import numpy as np
import torch

# The authors' R1 system prompt, character for character: a newline (not a space) before
# "<answer> answer here </answer>.".
AUTHORS_SYSTEM_PROMPT = (
    "A conversation between User and Assistant. The user asks a question, and the Assistant solves "
    "it. The assistant first thinks about the reasoning process in the mind and then provides the "
    "user with the answer. The reasoning process and answer are enclosed within <think> </think> "
    "and <answer> </answer> tags, respectively, i.e., <think> reasoning process here </think>\n"
    "<answer> answer here </answer>."
)


def authors_conf(model, tok, system_prompt: str, problems, batch_size: int = 8) -> np.ndarray:
    """Conf (mean log-prob of the gold answer's tokens) per problem, the authors' way.

    ``tok`` must pad on the left, as theirs did. ``problems`` need ``.question`` and ``.answer``."""
    texts = [
        tok.apply_chat_template(
            [{"role": "system", "content": system_prompt}, {"role": "user", "content": p.question},
             {"role": "assistant", "content": "<answer> " + p.answer}],
            tokenize=False, continue_final_message=True)
        for p in problems
    ]
    enc = tok(texts, padding=True, return_tensors="pt")
    device = next(model.parameters()).device
    confs = []
    for start in range(0, len(texts), batch_size):
        ids = enc["input_ids"][start:start + batch_size].to(device)
        att = enc["attention_mask"][start:start + batch_size].to(device)
        with torch.no_grad():
            logits = model(input_ids=ids, attention_mask=att).logits
        width = ids.shape[1]
        for r in range(ids.shape[0]):
            gold = problems[start + r].answer
            n = len(tok(gold, add_special_tokens=False)["input_ids"])
            total = 0.0
            for pos in range(width - n, width):
                logp = torch.log_softmax(logits[r, pos - 1].double(), dim=-1)
                total += logp[ids[r, pos]].item()
            confs.append(total / n)
    return np.array(confs)
