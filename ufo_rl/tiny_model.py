"""The embedded default model: a small Llama that the suite builds itself, offline, in minutes.

It is saved as an ordinary Hugging Face checkpoint folder (``config.json``, safetensors, a
tokenizer with a chat template), so every later stage loads it with ``from_pretrained`` exactly
like a hub model. The recipe, its seed and the measured greedy accuracy per difficulty level are
written beside the weights in ``ufo_rl_recipe.json``.

Design choices (measured; the README states the numbers, "The embedded world"):
- a character-level tokenizer over printable ASCII: every text encodes, answer tags are ordinary
  characters (special tokens would be stripped at decode and the reward would never match);
- supervised warm start on the worked solutions of the warm-start split, loss on the completion
  only, long enough (3,000 steps) that the model masters what it was shown cleanly and fails on
  what it was never shown: prompts it always solves beside prompts it never solves;
- half of the level-2 warm-start solutions carry a slip (``slip_frac``, ``slip_levels``): correct
  steps, but the answer tag repeats the value before the last step. The model learns both endings,
  so level-2 prompts pass about half of their samples: the middle zone, where a verifiable reward
  can remove the habit, as RL does for real models trained on imperfect demonstrations. Only
  those prompts carry it, so which prompts GRPO trains on decides what it learns. Without any
  slip, GRPO on this model did not beat noise in CPU-minutes (its errors were arithmetic it would
  have to relearn from one bit per sample).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import re
import string
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ufo_rl.config import TinyConfig
from ufo_rl.data import arith
from ufo_rl.errors import UserError

RECIPE_FILE = "ufo_rl_recipe.json"
RECIPE_VERSION = 3  # bump when the build code (or the embedded LEVELS) changes what a recipe produces
WEIGHTS_FILE = "model.safetensors"
# Distinct warm-start problems per level at most: level 4 (one 2-digit +/-) has about 12,000
# questions in all, so a longer warm start (sft_steps x batch_size over this) repeats the same
# problems, each pass in a new order. Recipes within it (the default: 7,200 per level) draw each
# problem once, as before the cap.
UNIQUE_PER_LEVEL = 8000
# Builds shipped with the package, one folder per recipe key (``python -m ufo_rl.tiny_model ship``)
SHIPPED_DIR = Path(__file__).resolve().parent / "assets" / "models"

SPECIAL = ["<pad>", "<unk>", "<s>", "</s>"]
CHARS = [c for c in string.printable if c not in "\t\r\x0b\x0c"]  # letters, digits, punctuation, space, \n

# The tiny model has no use for a system prompt (it cannot read instructions), so the template
# drops it; a user turn becomes "Q: ...\n" and the assistant turn starts with "A: ".
CHAT_TEMPLATE = (
    "{%- for m in messages -%}"
    "{%- if m['role'] == 'user' -%}{{ 'Q: ' + m['content'] + '\n' }}"
    "{%- elif m['role'] == 'assistant' -%}{{ 'A: ' + m['content'] + eos_token }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ 'A: ' }}{%- endif -%}"
)


def recipe_key(recipe: TinyConfig) -> str:
    """Content hash of a recipe (and of the build code's version): the cache folder's name."""
    material = {**asdict(recipe), "version": RECIPE_VERSION}
    material["sft_levels"] = list(material["sft_levels"])
    if material["slip_levels"] is None:  # the recipes from before the option keep their key
        del material["slip_levels"]
    else:
        material["slip_levels"] = sorted(material["slip_levels"])
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()[:12]


def build_tokenizer():
    """A character-level fast tokenizer with a chat template."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(SPECIAL + CHARS)}
    tk = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    # one piece per character; "[\s\S]" because "." would not match a newline
    tk.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    tk.decoder = decoders.Fuse()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=tk, pad_token="<pad>", unk_token="<unk>", bos_token="<s>", eos_token="</s>"
    )
    tok.chat_template = CHAT_TEMPLATE
    tok.padding_side = "left"
    return tok


def build_config(recipe: TinyConfig, tok):
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=len(tok),
        hidden_size=recipe.hidden_size,
        intermediate_size=recipe.intermediate_size,
        num_hidden_layers=recipe.num_layers,
        num_attention_heads=recipe.num_heads,
        num_key_value_heads=recipe.num_heads,
        max_position_embeddings=recipe.max_positions,
        tie_word_embeddings=True,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
    )


def default_cache_dir() -> Path:
    from platformdirs import user_cache_dir

    return Path(os.environ.get("UFO_RL_CACHE", user_cache_dir("ufo_rl"))) / "models"


def _prompt(tok, question: str) -> str:
    return tok.apply_chat_template([{"role": "user", "content": question}], tokenize=False,
                                   add_generation_prompt=True)


def _sft_batch(tok, problems, device):
    """Input ids with the loss on the completion (solution + EOS) only."""
    seqs, labels = [], []
    for p in problems:
        prompt_ids = tok(_prompt(tok, p.question), add_special_tokens=False)["input_ids"]
        target_ids = tok(p.solution, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        seqs.append(prompt_ids + target_ids)
        labels.append([-100] * len(prompt_ids) + target_ids)
    width = max(map(len, seqs))
    ids = torch.full((len(seqs), width), tok.pad_token_id)
    lab = torch.full((len(seqs), width), -100)
    att = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, (seq, lab_row) in enumerate(zip(seqs, labels)):  # right padding for training
        ids[i, : len(seq)] = torch.tensor(seq)
        lab[i, : len(lab_row)] = torch.tensor(lab_row)
        att[i, : len(seq)] = 1
    return ids.to(device), att.to(device), lab.to(device)


def with_slips(problems, frac: float, seed: int, levels=None):
    """Give a random ``frac`` of ``problems`` (of ``levels`` only, when given) a slip: the answer
    tag repeats the value before the last step.

    The worked steps stay correct; only the final copy is wrong, as in a noisy hand-written
    solution. The ``answer`` field (the gold label) is unchanged.

    >>> from ufo_rl.data import arith
    >>> from ufo_rl.problems import Problem
    >>> ps = arith.generate("warmup", 200, 0, [1])
    >>> slipped = with_slips(ps, 0.5, 0)
    >>> n = sum(s.solution != p.solution for s, p in zip(slipped, ps))
    >>> 70 < n < 130
    True
    >>> p = Problem("x", "Left to right: 7+5-2", "10", "7+5=12\\n12-2=10\\n<answer>10</answer>")
    >>> with_slips([p], 1.0, 0)[0].solution.splitlines()
    ['7+5=12', '12-2=10', '<answer>12</answer>']
    >>> mixed = arith.generate("warmup", 40, 0, [1, 2])
    >>> sorted({s.difficulty for s, p in zip(with_slips(mixed, 1.0, 0, [2]), mixed) if s != p})
    [2]
    """
    if not 0.0 <= frac <= 1.0:
        raise UserError(f"model.tiny.slip_frac={frac} is out of range; use a value in [0, 1]")
    rng = random.Random(f"slip/{seed}")
    out = []
    for p in problems:
        if rng.random() < frac and (levels is None or p.difficulty in levels):
            *steps, _tag = p.solution.splitlines()
            before = re.match(r"\d+", steps[-1]).group()  # the left operand of the last step
            p = replace(p, solution="\n".join([*steps, f"<answer>{before}</answer>"]))
        out.append(p)
    return out


def per_level_accuracy(model, tok, problems, batch_size: int = 128) -> dict[int, float]:
    """Greedy accuracy per difficulty level, the answers checked by :mod:`ufo_rl.answers`."""
    from ufo_rl.answers import check
    from ufo_rl.generation import HFGenerator, SamplingParams

    gen = HFGenerator(model, tok, batch_size=batch_size)
    outs = gen.generate([_prompt(tok, p.question) for p in problems],
                        SamplingParams(n=1, temperature=0.0, max_new_tokens=96))
    by_level: dict[int, list[bool]] = {}
    for p, o in zip(problems, outs):
        by_level.setdefault(p.difficulty, []).append(check(o[0].text, p.answer)[1])
    return {lv: sum(v) / len(v) for lv, v in sorted(by_level.items())}


def train_tiny(recipe: TinyConfig, progress: bool = True, device: str = "cpu"):
    """Build and warm-start a tiny model on ``device``; returns (model on the CPU, tokenizer, info).

    The weights are initialised on the CPU from ``recipe.seed`` on every device; the warm start
    then runs on ``device`` (a GPU builds the default recipe in about a minute instead of about
    20 on two CPU cores). Like two CPUs, a GPU builds another model from the same recipe: its
    kernels round differently and its backward passes are not bit-deterministic.
    """
    from transformers import LlamaForCausalLM

    torch.manual_seed(recipe.seed)
    random.seed(recipe.seed)
    tok = build_tokenizer()
    model = LlamaForCausalLM(build_config(recipe, tok)).to(device)
    n_train = recipe.sft_steps * recipe.batch_size
    # the warm-start split never repeats a question of the default pool or test set
    held = arith.embedded_splits(recipe.seed, n_pool=2000, n_test=500)
    exclude = {p.question for split in held.values() for p in split}
    n_unique = min(n_train, UNIQUE_PER_LEVEL * len(recipe.sft_levels))
    train = arith.generate("warmup", n_unique, recipe.seed, list(recipe.sft_levels), exclude=exclude)
    rng = random.Random(recipe.seed)
    rng.shuffle(train)
    train = with_slips(train, recipe.slip_frac, recipe.seed, recipe.slip_levels)
    passes = [train]
    while sum(map(len, passes)) < n_train:  # a longer warm start goes over them again, reshuffled
        again = list(train)
        rng.shuffle(again)
        passes.append(again)
    train = [p for one in passes for p in one][:n_train]
    opt = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay,
                            betas=(0.9, 0.95))

    def lr_at(step: int) -> float:
        if step < recipe.warmup_steps:
            return (step + 1) / recipe.warmup_steps
        frac = (step - recipe.warmup_steps) / max(1, recipe.sft_steps - recipe.warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * frac))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    model.train()
    t0 = time.perf_counter()
    bar = tqdm(range(recipe.sft_steps), desc="warm start (SFT)", disable=not progress)
    loss_val = float("nan")
    for step in bar:
        chunk = train[step * recipe.batch_size : (step + 1) * recipe.batch_size]
        ids, att, lab = _sft_batch(tok, chunk, device)
        loss = model(input_ids=ids, attention_mask=att, labels=lab).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        loss_val = loss.item()
        if step % 20 == 0:
            bar.set_postfix(loss=f"{loss_val:.3f}")
    train_seconds = time.perf_counter() - t0
    model.eval()
    probe = arith.generate("test", recipe.eval_per_level * len(arith.LEVELS), recipe.seed + 1)
    acc = per_level_accuracy(model, tok, probe)
    model.to("cpu")
    info = {
        "recipe": asdict(recipe),
        "recipe_key": recipe_key(recipe),
        "n_parameters": sum(p.numel() for p in model.parameters()),
        "final_sft_loss": loss_val,
        "train_seconds": round(train_seconds, 1),
        "torch_threads": torch.get_num_threads(),
        "build_device": torch.cuda.get_device_name(device) if torch.device(device).type == "cuda" else "cpu",
        "greedy_accuracy_per_level": acc,
        "accuracy_probe": f"{recipe.eval_per_level} test-stream problems per level, seed {recipe.seed + 1}",
    }
    return model, tok, info


def shipped_model(recipe: TinyConfig) -> Path | None:
    """The shipped build of ``recipe`` (``ufo_rl/assets/models/tiny-<key>``), or None."""
    path = SHIPPED_DIR / f"tiny-{recipe_key(recipe)}"
    return path if (path / RECIPE_FILE).exists() else None


def weights_digest(path: Path) -> str:
    """sha256 of a model folder's weight file, recorded in the recipe file when a build is shipped."""
    h = hashlib.sha256()
    with open(Path(path) / WEIGHTS_FILE, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def ensure_tiny_model(recipe: TinyConfig | None = None, cache_dir: str | Path | None = None,
                      progress: bool = True, shipped: bool = True, device: str = "cpu") -> Path:
    """Path of the tiny model for ``recipe``: the shipped build when there is one (and
    ``shipped``), else one built here (on ``device``) and cached, building it on the first call.

    The shipped build is what makes runs comparable across machines: SFT amplifies the last-bit
    differences between CPUs' kernels, so two machines building the same recipe get different
    models (``results/bench/build_variation-*.json`` measures by how much). The cache folder is
    written to a temporary name and renamed when complete, so an interrupted build never leaves
    a half model that a later run would reuse.
    """
    recipe = recipe or TinyConfig()
    if shipped and (found := shipped_model(recipe)) is not None:
        return found
    root = Path(cache_dir) if cache_dir else default_cache_dir()
    path = root / f"tiny-{recipe_key(recipe)}"
    if (path / RECIPE_FILE).exists():
        return path
    model, tok, info = train_tiny(recipe, progress=progress, device=device)
    tmp = root / f".{path.name}.tmp-{os.getpid()}"
    try:
        tmp.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        (tmp / RECIPE_FILE).write_text(json.dumps(info, indent=2))
    except OSError as err:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
        raise UserError(f"cannot write the tiny model under {root} ({err.strerror}); "
                        "set model.cache_dir or $UFO_RL_CACHE to a writable folder") from err
    try:
        tmp.rename(path)
    except OSError as err:  # another process finished first: keep theirs
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
        if not (path / RECIPE_FILE).exists():
            raise UserError(f"could not write the tiny model to {path}; check that the folder is writable") from err
    return path


def ship(recipe: TinyConfig | None = None, source: Path | None = None, progress: bool = True) -> Path:
    """Copy a build of ``recipe`` (``source``, or a fresh build here) into :data:`SHIPPED_DIR`,
    recording its weights' sha256, and remove shipped builds of other recipes."""
    import shutil

    recipe = recipe or TinyConfig()
    key = recipe_key(recipe)
    if source is None:
        source = ensure_tiny_model(recipe, progress=progress, shipped=False)
    info = json.loads((Path(source) / RECIPE_FILE).read_text())
    if info.get("recipe_key") != key:
        raise UserError(f"{source} holds recipe {info.get('recipe_key')}, not {key}; build the default recipe")
    dest = SHIPPED_DIR / f"tiny-{key}"
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    for f in Path(source).iterdir():
        if f.is_file() and f.name != RECIPE_FILE:
            shutil.copyfile(f, dest / f.name)
            os.chmod(dest / f.name, 0o644)
    info["weights_sha256"] = weights_digest(dest)
    (dest / RECIPE_FILE).write_text(json.dumps(info, indent=2) + "\n")
    for other in SHIPPED_DIR.glob("tiny-*"):
        if other != dest:
            shutil.rmtree(other)
    return dest


if __name__ == "__main__":
    import argparse
    import sys

    ap = argparse.ArgumentParser(description="Build the default tiny model and ship it with the package.")
    ap.add_argument("command", choices=["ship"])
    ap.add_argument("--from", dest="source", type=Path, help="an existing build of the default recipe to ship")
    args = ap.parse_args()
    try:
        print(ship(source=args.source))
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
