"""Training budgets in optimizer steps, for any number of processes: the arithmetic in one place.

One optimizer step of TRL's GRPO takes a *global batch* of prompts, each sampled
``num_generations`` times::

    prompts per step = per_device_prompts x gradient_accumulation_steps x processes

(TRL's ``per_device_train_batch_size`` counts completions: ``per_device_prompts x
num_generations``; its generation batch is that x processes x accumulation, one per optimizer
step.) The two budgets of ``trainer.budget`` (README, "What the suite does"):

- ``steps``: ``max_steps`` optimizer updates of that global batch, the same for every selector
  (equal compute);
- ``epochs``: ``ceil(epochs x n_train / prompts per step)`` updates, so every selector makes the
  same number of passes over its own subset whatever the process count, and a bigger subset
  costs proportionally more (the paper's training-time comparison, arXiv 2505.12457, Table 6).

``n_train`` counts the prompts that are trained on: the subset less the prompts dropped for
being over ``trainer.max_prompt_length`` (ufo_rl/train.py). TRL's sampler forms only whole
global batches, so a subset smaller than one is refused here rather than trained for no step.

Memory is budgeted here too (the second half of this file): estimates of what a job holds
resident, from a checkpoint's ``config.json`` and the job's lengths and batch sizes, the
micro-batch that keeps a GRPO step inside ``model.memory_gb``, and the KV cache that a vLLM
engine on a CPU is given (``model.vllm_kv_cache_gb``).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

from ufo_rl.config import BUDGETS, TrainerConfig
from ufo_rl.errors import UserError


@dataclass(frozen=True)
class Budget:
    """What one run trains: ``steps`` updates of ``prompts_per_step`` prompts over ``n_train``."""

    steps: int
    prompts_per_step: int  # global: all processes and accumulation steps together
    world_size: int
    n_train: int
    n_dropped: int

    @property
    def passes(self) -> float:
        """Passes over the trained prompts that the steps amount to."""
        return self.steps * self.prompts_per_step / self.n_train

    def record(self) -> dict:
        return {**asdict(self), "passes": self.passes}


def prompts_per_step(cfg: TrainerConfig, world_size: int = 1) -> int:
    """Prompts per optimizer step over all ``world_size`` processes (each sampled
    ``num_generations`` times).

    >>> prompts_per_step(TrainerConfig(per_device_prompts=2, gradient_accumulation_steps=8), 8)
    128
    """
    return cfg.per_device_prompts * cfg.gradient_accumulation_steps * world_size


def completions_per_device_step(cfg: TrainerConfig) -> int:
    """TRL's ``per_device_train_batch_size``: completions per process and micro-step."""
    return cfg.per_device_prompts * cfg.num_generations


def total_steps(cfg: TrainerConfig, n_train: int, world_size: int = 1) -> int:
    """Optimizer steps for the budget: fixed (``steps``) or proportional to ``n_train`` (``epochs``).

    >>> total_steps(TrainerConfig(budget="epochs", epochs=1.0, per_device_prompts=8), 200)
    25
    >>> total_steps(TrainerConfig(budget="epochs", epochs=1.0, per_device_prompts=8), 200, world_size=2)
    13
    >>> total_steps(TrainerConfig(budget="steps", max_steps=40), 200, world_size=8)
    40
    """
    if cfg.budget == "steps":
        steps = cfg.max_steps
    elif cfg.budget == "epochs":
        steps = math.ceil(cfg.epochs * n_train / prompts_per_step(cfg, world_size))
    else:
        raise UserError(f"unknown trainer.budget {cfg.budget!r}; use one of {', '.join(BUDGETS)}")
    if steps < 1:
        raise UserError(f"the training budget comes to {steps} steps; raise trainer.max_steps or trainer.epochs")
    return steps


def plan_budget(cfg: TrainerConfig, n_subset: int, n_dropped: int = 0, world_size: int = 1) -> Budget:
    """The budget of a run on ``n_subset`` selected prompts of which ``n_dropped`` were dropped as
    over-long, launched on ``world_size`` processes."""
    n_train = n_subset - n_dropped
    per_step = prompts_per_step(cfg, world_size)
    if n_train < per_step:
        raise UserError(
            f"{n_train} prompts to train on, fewer than one optimizer step takes ({per_step} = "
            f"trainer.per_device_prompts {cfg.per_device_prompts} x trainer.gradient_accumulation_steps "
            f"{cfg.gradient_accumulation_steps} x {world_size} processes); lower trainer.per_device_prompts "
            "or select more prompts")
    return Budget(total_steps(cfg, n_train, world_size), per_step, world_size, n_train, n_dropped)


# ---- memory: what a job holds resident, estimated before a model is loaded --------------------
#
# The estimates below are built from a checkpoint's config.json and the job's lengths and batch
# sizes. Their constants were measured on SmolLM2-135M (a Llama, float32) on the 2-core AMD EPYC
# of the README: the tensors a training forward pass saves for the backward pass came to 1.34 to
# 1.50 MiB per token (30 layers, counted through torch's saved-tensor hooks), and a micro-batch of
# TRL's GRPO step (4 completions of 599 tokens, left-padded) raised the resident memory by 5.85
# GiB, 2.5 MiB per token: the saved tensors, their gradients in the backward pass and the
# allocator's working copies. ``activation_bytes_per_token`` is that last figure.

GiB = 2**30
# a process of the suite before any model: Python, torch, transformers, TRL, datasets (0.5 GiB
# measured after the imports), with room for the tokenizer, the data and the allocator's slack
BASE_BYTES = GiB
# the default of model.memory_gb, and the share of the memory available that caps it
DEFAULT_MEMORY_BYTES = 8 * GiB
DEFAULT_MEMORY_SHARE = 0.5
# float32 logits of one position, held about three times in a GRPO step: the logits, their
# log-softmax (or the entropy's), and their gradient
LOGIT_COPIES = 3
# vLLM on a CPU: sequences the engine runs at once (its default max_num_seqs for the LLM class)
# and its KV block size (vllm/platforms/cpu.py and vllm/engine/arg_utils.py, vLLM 0.31)
VLLM_CPU_MAX_SEQS = 256
VLLM_CPU_BLOCK = 128
# the KV cache sized from the job: this margin over the need, at least this floor, at most this
# share of the memory available when the engine starts
VLLM_KV_MARGIN = 1.1
VLLM_KV_FLOOR = 256 * 2**20
VLLM_KV_SHARE = 0.25


@dataclass(frozen=True)
class ModelShape:
    """What the memory estimates need of a decoder-only checkpoint (its ``config.json``)."""

    n_params: int
    num_layers: int
    hidden_size: int
    intermediate_size: int
    num_kv_heads: int
    head_dim: int
    vocab_size: int
    max_positions: int | None = None

    @classmethod
    def from_config(cls, config: dict, n_params: int | None = None) -> ModelShape | None:
        """The shape in a ``config.json`` (a multimodal one's ``text_config``), or None when it
        lacks a field. ``n_params`` defaults to a Llama-style count from the config.

        >>> cfg = {"num_hidden_layers": 30, "hidden_size": 576, "intermediate_size": 1536, "num_attention_heads": 9,
        ...        "num_key_value_heads": 3, "vocab_size": 49152, "tie_word_embeddings": True}
        >>> ModelShape.from_config(cfg).n_params   # SmolLM2-135M, 134,515,008 in its checkpoint
        134515008
        """
        c = config.get("text_config") or config
        try:
            layers, hidden, heads = int(c["num_hidden_layers"]), int(c["hidden_size"]), int(c["num_attention_heads"])
            inter, vocab = int(c["intermediate_size"]), int(c["vocab_size"])
        except (KeyError, TypeError, ValueError):
            return None
        kv_heads = int(c.get("num_key_value_heads") or heads)
        head_dim = int(c.get("head_dim") or hidden // heads)
        if n_params is None:
            attn = hidden * head_dim * (2 * heads + 2 * kv_heads)
            per_layer = attn + 3 * hidden * inter + 2 * hidden
            tied = c.get("tie_word_embeddings", config.get("tie_word_embeddings", True))
            n_params = layers * per_layer + hidden + vocab * hidden * (1 if tied else 2)
        return cls(n_params, layers, hidden, inter, kv_heads, head_dim, vocab, c.get("max_position_embeddings"))

    def kv_bytes_per_token(self, dtype_bytes: int) -> int:
        """Keys and values of one token over all layers."""
        return 2 * self.num_layers * self.num_kv_heads * self.head_dim * dtype_bytes

    def activation_bytes_per_token(self, dtype_bytes: int) -> int:
        """Resident memory of a training forward and backward pass, per token: per layer, eight
        intermediate-width tensors and sixteen hidden-width ones (the MLP's gate, up, activation
        and product; norms, projections, rotary, attention in and out; each saved once and its
        gradient once), 2.5 MiB a token for SmolLM2-135M in float32 as measured (see above)."""
        return self.num_layers * (8 * self.intermediate_size + 16 * self.hidden_size) * dtype_bytes


def decode_bytes(shape: ModelShape, rows: int, tokens: int, dtype_bytes: int) -> int:
    """Working memory of decoding ``rows`` sequences of up to ``tokens`` tokens with
    ufo_rl/generation.py's loop: the KV cache, twice (a compaction copies it into new buffers),
    and the last position's float32 logits and their softmax."""
    return 2 * rows * tokens * shape.kv_bytes_per_token(dtype_bytes) + rows * shape.vocab_size * 4 * LOGIT_COPIES


def decode_rows(shape: ModelShape, tokens: int, dtype_bytes: int, budget: int, most: int) -> int:
    """Sequences of up to ``tokens`` tokens to decode at once, at most ``most``: as many as fit
    ``budget`` beside the process and the weights (at least 1).

    >>> shape = ModelShape(134_515_008, 30, 576, 1536, 3, 64, 49152)   # SmolLM2-135M
    >>> decode_rows(shape, 500 + 1024, 4, budget=8 * GiB, most=64), decode_rows(shape, 300, 4, 8 * GiB, 64)
    (49, 64)
    """
    room = budget - BASE_BYTES - shape.n_params * dtype_bytes
    return max(1, min(most, room // decode_bytes(shape, 1, tokens, dtype_bytes)))


def train_state_bytes(shape: ModelShape, dtype_bytes: int, reference_model: bool = False) -> int:
    """Weights, gradients and AdamW's two float32 moments of a training run (and a frozen
    reference copy of the weights when the KL term needs one, ``trainer.beta > 0``)."""
    weights = shape.n_params * dtype_bytes
    return 2 * weights + 8 * shape.n_params + (weights if reference_model else 0)


def micro_batch_bytes(shape: ModelShape, completions: int, prompt_tokens: int, completion_tokens: int,
                      dtype_bytes: int) -> int:
    """One forward and backward pass of GRPO's loss over ``completions`` sequences: the saved
    activations of prompt + completion tokens, and the completion positions' logits."""
    seq = prompt_tokens + completion_tokens
    per = seq * shape.activation_bytes_per_token(dtype_bytes) + completion_tokens * shape.vocab_size * 4 * LOGIT_COPIES
    return completions * per


def train_fixed_bytes(shape: ModelShape, cfg: TrainerConfig, dtype_bytes: int) -> int:
    """What a GRPO run holds throughout: the process and the training state."""
    return BASE_BYTES + train_state_bytes(shape, dtype_bytes, cfg.beta > 0)


def train_peak_bytes(shape: ModelShape, cfg: TrainerConfig, micro: int, prompt_tokens: int, dtype_bytes: int,
                     rollout_prompts: int | None = None) -> int:
    """Resident peak of a GRPO run on one process: the fixed part, and the larger of a rollout
    (``rollout_prompts`` prompts x ``num_generations`` decoded at once; default: the whole
    generation batch) and the forward and backward pass of ``micro`` completions."""
    prompts = rollout_prompts or cfg.per_device_prompts * cfg.gradient_accumulation_steps
    rollout = decode_bytes(shape, prompts * cfg.num_generations, prompt_tokens + cfg.max_completion_length, dtype_bytes)
    step = micro_batch_bytes(shape, micro, prompt_tokens, cfg.max_completion_length, dtype_bytes)
    return train_fixed_bytes(shape, cfg, dtype_bytes) + max(rollout, step)


def micro_batch(shape: ModelShape, cfg: TrainerConfig, prompt_tokens: int, dtype_bytes: int, budget: int) -> int:
    """The completions per forward and backward pass: the largest divisor of TRL's
    ``per_device_train_batch_size`` (``per_device_prompts x num_generations``) whose pass, with
    the fixed part, fits ``budget`` (1 when none does). Splitting a batch into micro-batches and
    accumulating their gradients gives the same update (ufo_rl/train.py).

    >>> shape = ModelShape(134_515_008, 30, 576, 1536, 3, 64, 49152)   # SmolLM2-135M
    >>> micro_batch(shape, TrainerConfig(), prompt_tokens=300, dtype_bytes=4, budget=8 * GiB)
    4
    >>> micro_batch(shape, TrainerConfig(), prompt_tokens=300, dtype_bytes=4, budget=128 * GiB)
    64
    """
    total = completions_per_device_step(cfg)
    fixed = train_fixed_bytes(shape, cfg, dtype_bytes)
    for c in sorted((d for d in range(1, total + 1) if total % d == 0), reverse=True):
        if fixed + micro_batch_bytes(shape, c, prompt_tokens, cfg.max_completion_length, dtype_bytes) <= budget:
            return c
    return 1


def rollout_prompts(shape: ModelShape, cfg: TrainerConfig, prompt_tokens: int, dtype_bytes: int, budget: int) -> int:
    """Prompts whose ``num_generations`` completions are decoded at once in a GRPO rollout: all
    of the generation batch's when they fit ``budget`` with the fixed part, else as many as do
    (at least 1).

    >>> shape = ModelShape(134_515_008, 30, 576, 1536, 3, 64, 49152)   # SmolLM2-135M
    >>> [rollout_prompts(shape, TrainerConfig(), 300, 4, budget=gib * GiB) for gib in (8, 4)]
    [8, 3]
    """
    total = cfg.per_device_prompts * cfg.gradient_accumulation_steps
    room = budget - train_fixed_bytes(shape, cfg, dtype_bytes)
    per_prompt = decode_bytes(shape, cfg.num_generations, prompt_tokens + cfg.max_completion_length, dtype_bytes)
    return max(1, min(total, room // per_prompt))


def vllm_kv_cache_bytes(n_prompts: int, k: int, prompt_tokens: int, max_new_tokens: int, kv_bytes_per_token: int,
                        available: int, max_model_len: int | None = None) -> int:
    """The KV cache a vLLM engine on a CPU needs for a multi-sample job: ``n_prompts x k``
    sequences (at most the engine's ``VLLM_CPU_MAX_SEQS`` at once) of ``prompt_tokens +
    max_new_tokens`` tokens in whole blocks, with a margin; at least ``VLLM_KV_FLOOR`` and one
    sequence of ``max_model_len`` (vLLM refuses to start with less); at most ``VLLM_KV_SHARE``
    of the ``available`` memory (the engine then runs fewer sequences at once), unless the floor
    needs more. Whole MiB.

    >>> kv = 2 * 30 * 3 * 64 * 4   # SmolLM2-135M, float32: 45 KiB a token
    >>> vllm_kv_cache_bytes(16, 8, 200, 512, kv, available=20 * GiB) / GiB   # 128 sequences of 768 tokens
    4.640625
    >>> vllm_kv_cache_bytes(2, 2, 20, 24, kv, available=20 * GiB) == VLLM_KV_FLOOR
    True
    """
    seqs = min(n_prompts * k, VLLM_CPU_MAX_SEQS)
    blocks = math.ceil((prompt_tokens + max_new_tokens) / VLLM_CPU_BLOCK)
    need = math.ceil(seqs * blocks * VLLM_CPU_BLOCK * kv_bytes_per_token * VLLM_KV_MARGIN)
    floor = max(VLLM_KV_FLOOR, math.ceil((max_model_len or 0) / VLLM_CPU_BLOCK) * VLLM_CPU_BLOCK * kv_bytes_per_token)
    size = max(floor, min(need, int(available * VLLM_KV_SHARE)))
    return math.ceil(size / 2**20) * 2**20


def available_memory() -> int:
    """Bytes of memory available to a new allocation now (the kernel's MemAvailable)."""
    import psutil

    return int(psutil.virtual_memory().available)


def memory_budget(memory_gb: float | None, available: int | None = None) -> int:
    """``model.memory_gb`` in bytes; null: ``DEFAULT_MEMORY_BYTES`` or ``DEFAULT_MEMORY_SHARE``
    of the memory available, whichever is less.

    >>> memory_budget(None, available=22 * GiB) / GiB
    8.0
    >>> memory_budget(None, available=10 * GiB) / GiB
    5.0
    >>> memory_budget(2.5) / GiB
    2.5
    """
    if memory_gb is not None:
        if memory_gb <= 0:
            raise UserError(f"model.memory_gb must be > 0 or null, got {memory_gb}")
        return int(memory_gb * GiB)
    available = available_memory() if available is None else available
    return min(DEFAULT_MEMORY_BYTES, int(available * DEFAULT_MEMORY_SHARE))


def checkpoint_params(folder: Path) -> int | None:
    """Parameters stored in a checkpoint folder's safetensors files, read from their headers
    (no weights loaded); None when it holds none."""
    total, found = 0, False
    for f in sorted(Path(folder).glob("*.safetensors")):
        try:
            with open(f, "rb") as fh:
                header = json.loads(fh.read(int.from_bytes(fh.read(8), "little")))
        except (OSError, ValueError):
            return None
        for name, meta in header.items():
            if name != "__metadata__":
                total += math.prod(meta["shape"])
                found = True
    return total if found else None


def model_shape(path: str | Path) -> ModelShape | None:
    """The shape of a local checkpoint folder, from its ``config.json`` and its safetensors
    headers; None for a hub id or a config this cannot read."""
    folder = Path(path)
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        return None
    return ModelShape.from_config(config, checkpoint_params(folder)) if isinstance(config, dict) else None
