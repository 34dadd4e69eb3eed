"""Memory a user can plan for: the estimates of ufo_rl/budget.py, GRPO in micro-batches, the
one-line refusal before a model is loaded (ufo_rl/plan.py: check_memory), the stage marker that
names a killed run on the next start, and the KV cache of a vLLM engine on a CPU
(ufo_rl/generation.py: vllm_memory_kwargs). No vLLM needed; tests/test_vllm.py checks the real
engine in the vLLM venv."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import types
from pathlib import Path

import pytest
import torch

from ufo_rl.budget import (
    VLLM_KV_FLOOR,
    GiB,
    ModelShape,
    checkpoint_params,
    micro_batch,
    model_shape,
    train_peak_bytes,
    vllm_kv_cache_bytes,
)
from ufo_rl.config import DatasetConfig, EvalConfig, ModelConfig, RunConfig, SelectorConfig, TrainerConfig
from ufo_rl.errors import UserError
from ufo_rl.problems import Problem

# SmolLM2-135M-Instruct's config.json (ufo_rl/smollm2.py), enough for every estimate
SMOLLM2_CONFIG = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "num_hidden_layers": 30,
                  "hidden_size": 576, "intermediate_size": 1536, "num_attention_heads": 9, "num_key_value_heads": 3,
                  "head_dim": 64, "vocab_size": 49152, "tie_word_embeddings": True, "max_position_embeddings": 8192}
SMOLLM2 = ModelShape.from_config(SMOLLM2_CONFIG)


@pytest.fixture
def smollm2_folder(tmp_path) -> str:
    """A folder with SmolLM2's config.json and no weights: the estimates read nothing else."""
    (tmp_path / "config.json").write_text(json.dumps(SMOLLM2_CONFIG))
    return str(tmp_path)


# ---- estimates ---------------------------------------------------------------------------------

def test_the_parameter_count_from_a_config_is_the_checkpoints():
    import ufo_rl

    shipped = Path(ufo_rl.__file__).parent / "assets" / "models"
    folders = [p for p in shipped.iterdir() if (p / "config.json").is_file()]
    assert folders, "the tiny model ships with the package"
    for folder in folders:
        config = json.loads((folder / "config.json").read_text())
        stored = checkpoint_params(folder)
        assert stored and ModelShape.from_config(config).n_params == stored
        assert model_shape(folder).n_params == stored
    assert SMOLLM2.n_params == 134_515_008  # the converted SmolLM2 checkpoint's count
    assert SMOLLM2.kv_bytes_per_token(4) == 46_080
    assert model_shape("HuggingFaceTB/SmolLM2-135M-Instruct") is None  # a hub id: nothing to read


def test_micro_batch_is_the_largest_divisor_that_fits_the_budget():
    cfg = TrainerConfig()  # 8 prompts x 8 generations
    seen = []
    for gib in (2, 4, 6, 8, 12, 16, 32, 128):
        micro = micro_batch(SMOLLM2, cfg, 350, 4, gib * GiB)
        assert 64 % micro == 0
        peak = train_peak_bytes(SMOLLM2, cfg, micro, 350, 4)
        assert peak <= gib * GiB or micro == 1
        if micro < 64:  # the next larger divisor would not fit
            bigger = min(d for d in range(micro + 1, 65) if 64 % d == 0)
            assert train_peak_bytes(SMOLLM2, cfg, bigger, 350, 4) > gib * GiB
        seen.append(micro)
    assert seen == sorted(seen) and seen[0] == 1 and seen[-1] == 64
    # longer sequences, smaller micro-batches
    assert micro_batch(SMOLLM2, cfg, 1500, 4, 8 * GiB) < micro_batch(SMOLLM2, cfg, 100, 4, 8 * GiB)


def test_grpo_args_split_the_batch_without_changing_the_generation_batch(tmp_path):
    from ufo_rl.train import grpo_args

    cfg = TrainerConfig(per_device_prompts=8, num_generations=8, gradient_accumulation_steps=2)
    whole = grpo_args(cfg, tmp_path, steps=3, seed=0, progress=False)
    split = grpo_args(cfg, tmp_path, steps=3, seed=0, progress=False, micro=8)
    assert (whole.per_device_train_batch_size, whole.gradient_accumulation_steps) == (64, 2)
    assert (split.per_device_train_batch_size, split.gradient_accumulation_steps, split.steps_per_generation) == (
        8, 16, 16)
    # one generation of 16 prompts x 8 completions per optimizer step either way
    assert whole.generation_batch_size == split.generation_batch_size == 128
    assert whole.steps_per_generation * whole.per_device_train_batch_size == 128


def test_train_chunks_follow_model_memory_gb(smollm2_folder):
    from ufo_rl.budget import rollout_prompts
    from ufo_rl.train import train_chunks

    cfg = TrainerConfig()
    small = train_chunks(smollm2_folder, cfg, ModelConfig(device="cpu", memory_gb=5.0), 350)
    big = train_chunks(smollm2_folder, cfg, ModelConfig(device="cpu", memory_gb=128.0), 350)
    assert big == (64, 8)  # all 8 prompts x 8 generations at once
    micro, prompts = small
    assert micro < 64 and 64 % micro == 0 and 1 <= prompts < 8
    assert train_peak_bytes(SMOLLM2, cfg, micro, 350, 4, prompts) <= 5 * GiB
    assert train_peak_bytes(SMOLLM2, cfg, micro, 350, 4) > 5 * GiB  # the whole rollout at once would not fit
    assert prompts == rollout_prompts(SMOLLM2, cfg, 350, 4, 5 * GiB)
    # TRL's generation batch set by hand, or an unreadable checkpoint: left as it is
    extra = dataclasses.replace(cfg, extra={"generation_batch_size": 64})
    assert train_chunks(smollm2_folder, extra, ModelConfig(device="cpu", memory_gb=5.0), 350) == (64, 8)
    assert train_chunks("org/model", cfg, ModelConfig(device="cpu", memory_gb=5.0), 350) == (64, 8)
    with pytest.raises(UserError, match="model.memory_gb"):
        train_chunks(smollm2_folder, cfg, ModelConfig(device="cpu", memory_gb=0.0), 350)


@pytest.mark.slow
def test_micro_batches_give_the_same_update(tmp_path, monkeypatch):
    """One GRPO step on a random model with the batch whole and in micro-batches of 2: the same
    rollouts and the same weight change (plain SGD, so the change is the gradient itself). A
    rollout in calls of one prompt samples from the same model, so the same number of
    completions, each ending at EOS or the length cap."""
    from helpers import save_random_model
    from safetensors.torch import load_file

    import ufo_rl.train as train

    path = save_random_model(tmp_path / "model")
    start = load_file(str(path / "model.safetensors"))
    problems = [Problem(id=f"p{i}", question=f"{i}+{i}", answer=str(2 * i)) for i in range(4)]
    cfg = TrainerConfig(max_steps=1, num_generations=4, per_device_prompts=2, gradient_accumulation_steps=2,
                        max_completion_length=12, learning_rate=0.5, mask_truncated_completions=False,
                        extra={"optim": "sgd"})

    def reward(completions, answer, **kw):  # varied within a group, so the advantages are not zero
        return [float(len(c) % 3) for c in completions]

    from ufo_rl.generation import HFGenerator

    calls = []
    sample_ids = HFGenerator.sample_ids

    def counted(self, prompt_ids, params, eos_ids=None):
        out = sample_ids(self, prompt_ids, params, eos_ids)
        calls[-1].append((len(prompt_ids), len(out)))
        return out

    monkeypatch.setattr(HFGenerator, "sample_ids", counted)
    deltas, logs = {}, {}
    for micro, rollout in ((8, 4), (2, 4), (8, 1)):
        monkeypatch.setattr(train, "train_chunks", lambda *a, c=(micro, rollout): c)
        out = tmp_path / f"run{micro}-{rollout}"
        calls.append([])
        res = train.train_grpo(str(path), problems, cfg, ModelConfig(device="cpu"), out, seed=0, progress=False,
                               reward_fn=reward)
        assert (res["micro_batch"], res["rollout_prompts"], res["steps"]) == (micro, rollout, 1)
        end = load_file(str(out / "final" / "model.safetensors"))
        deltas[micro, rollout] = {k: end[k] - start[k] for k in start}
        logs[micro, rollout] = json.loads((out / "train.jsonl").read_text().splitlines()[0])
    # the 4 prompts of the step, 4 completions each: in one call, or one prompt a call
    assert calls == [[(4, 16)], [(4, 16)], [(1, 4)] * 4]
    logs, deltas = {m: logs[m, 4] for m in (8, 2)}, {m: deltas[m, 4] for m in (8, 2)}
    assert logs[8]["completion_tokens"] == logs[2]["completion_tokens"]
    assert logs[8]["reward_mean"] == logs[2]["reward_mean"]
    moved = max(d.abs().max().item() for d in deltas[8].values())
    assert moved > 1e-4, "the step must change the weights for the comparison to mean anything"
    for k in start:
        torch.testing.assert_close(deltas[2][k], deltas[8][k], rtol=1e-4, atol=1e-6 * moved)


# ---- the plan's one line ----------------------------------------------------------------------

def job_config(tmp_path, folder, **model) -> RunConfig:
    test = DatasetConfig(kind="embedded", name="test", split="test", n_pool=16, n_test=8)
    return RunConfig(model=ModelConfig(name_or_path=folder, device="cpu", **model),
                     dataset=DatasetConfig(kind="embedded", n_pool=16, n_test=8), selector=SelectorConfig(name="ufo"),
                     eval=EvalConfig(benchmarks={"test": test}), stage="all", cache_dir=str(tmp_path / "cache"),
                     run_dir=str(tmp_path / "run"), progress=False)


@pytest.fixture
def smollm2_tok():
    """A tokenizer to count prompt tokens with (the tiny model's: counting is all it does here)."""
    from ufo_rl.tiny_model import build_tokenizer

    return build_tokenizer()


def test_a_job_that_cannot_fit_says_so_in_one_line(tmp_path, smollm2_folder, smollm2_tok):
    from ufo_rl.plan import check_memory

    cfg = job_config(tmp_path, smollm2_folder)
    pool = [Problem(id=str(i), question="What is 2 + 2? " * 20, answer="4") for i in range(16)]
    with pytest.raises(UserError) as err:
        check_memory(cfg, smollm2_folder, pool, {}, smollm2_tok, available=3 * GiB)
    msg = str(err.value)
    assert "\n" not in msg and "more than the 3.0 GiB of memory available" in msg and "135M parameters" in msg
    assert "at its train stage" in msg and "trainer.max_completion_length" in msg


def test_a_job_that_fits_is_estimated_stage_by_stage(tmp_path, smollm2_folder, smollm2_tok, capsys):
    from ufo_rl.plan import check_memory

    cfg = job_config(tmp_path, smollm2_folder)
    pool = [Problem(id=str(i), question="What is 2 + 2?", answer="4") for i in range(16)]
    bench = {"test": pool[:4]}
    plan = check_memory(cfg, smollm2_folder, pool, bench, smollm2_tok, available=20 * GiB)
    est = plan.estimate
    assert set(est) == {"score", "eval", "train"} and plan.eval_batch_size == cfg.eval.batch_size
    assert max(b for b, _ in est.values()) <= 8 * GiB  # model.memory_gb's default on a 20 GiB machine
    from ufo_rl.plan import longest_prompt

    n = longest_prompt(smollm2_tok, pool, None)
    micro = micro_batch(SMOLLM2, cfg.trainer, n, 4, 8 * GiB)
    assert 1 < micro < 64
    assert est["train"][1] == (f"GRPO sampling 8 prompts at a time and training on micro-batches of {micro} "
                               f"completions of up to {n} + 96 tokens")
    assert capsys.readouterr().err == ""
    # within what is available but over model.memory_gb: one line, and the job goes on
    small = job_config(tmp_path, smollm2_folder, memory_gb=1.5)
    check_memory(small, smollm2_folder, pool, bench, smollm2_tok, available=20 * GiB)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "more than model.memory_gb (1.5 GiB" in err
    # SmolLM2's 1,024 new tokens on MATH prompts: fewer sequences decoded at once
    long = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, max_new_tokens=1024))
    from ufo_rl.budget import decode_rows

    plan = check_memory(long, smollm2_folder, pool, bench, smollm2_tok, available=20 * GiB)
    assert plan.eval_batch_size == decode_rows(SMOLLM2, n + 1024, 4, 8 * GiB, 128) < 128
    assert plan.estimate["eval"][0] <= 8 * GiB
    # on a GPU, or with no config.json to read, nothing is estimated
    assert check_memory(cfg, "org/model", pool, bench, smollm2_tok, available=GiB) is None


def test_a_job_evaluates_in_the_batch_its_memory_plan_allows(tmp_path, monkeypatch, capsys):
    """model.memory_gb below what the process itself takes: the job says so in one line and goes
    on with the least it can do at once, one sequence per evaluation batch and one completion per
    forward and backward pass."""
    import ufo_rl.evaluate
    import ufo_rl.train
    from ufo_rl.pipeline import Job

    seen = []
    evaluate = ufo_rl.evaluate.evaluate

    def spy(model, tok, benches, cfg, *a, **kw):
        seen.append(cfg.batch_size)
        return evaluate(model, tok, benches, cfg, *a, **kw)

    monkeypatch.setattr(ufo_rl.evaluate, "evaluate", spy)
    test = DatasetConfig(kind="embedded", name="test", split="test", n_pool=16, n_test=4)
    cfg = RunConfig(model=ModelConfig(device="cpu", memory_gb=0.5, max_new_tokens=16),
                    dataset=DatasetConfig(kind="embedded", n_pool=16, n_test=4), selector=SelectorConfig(name="full"),
                    trainer=TrainerConfig(max_steps=1, per_device_prompts=2, num_generations=2,
                                          max_completion_length=8),
                    eval=EvalConfig(benchmarks={"test": test}, k=2, batch_size=32), stage="all",
                    cache_dir=str(tmp_path / "cache"), run_dir=str(tmp_path / "run"), progress=False)
    meta = Job(cfg).run()
    assert meta["status"] == "done" and meta["train"]["micro_batch"] == 1
    assert seen == [1, 1]  # before and after training
    err = capsys.readouterr().err
    assert "more than model.memory_gb (0.5 GiB" in err


# ---- a killed run, named on the next start ------------------------------------------------------

def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def write_marker(path: Path, **record) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))


def test_a_stale_marker_names_the_previous_run_killed_for_memory(tmp_path, capsys):
    from ufo_rl.pipeline import Job
    from ufo_rl.plan import stage_marker_path

    cfg = dataclasses.replace(job_config(tmp_path, "tiny"), selector=SelectorConfig(name="random"), stage="select")
    marker = stage_marker_path(cfg)
    total = 24 * GiB
    write_marker(marker, pid=dead_pid(), create_time=1.0, stage="train", total_memory=total, peak_rss=int(0.97 * total))
    meta = Job(cfg).run()
    assert meta["status"] == "done"
    lines = [ln for ln in capsys.readouterr().err.splitlines() if "previous run" in ln]
    assert lines == ["[ufo-rl] the previous run of this job was killed (likely out of memory at stage train: it held "
                     "23.3 GiB of the machine's 24.0 GiB when last seen); it restarts from what was saved; set "
                     "model.memory_gb below the memory free for this job if it was killed for memory"]
    assert not marker.exists(), "a run that ends removes its marker"
    # the next run of the same command has nothing to say
    Job(dataclasses.replace(cfg, run_dir=cfg.run_dir)).run()
    assert "previous run" not in capsys.readouterr().err


def test_a_marker_says_nothing_while_its_process_runs_and_is_unsure_below_half_the_memory(tmp_path):
    import psutil

    from ufo_rl.plan import StageMarker

    path = tmp_path / "m.stage.json"
    me = psutil.Process()
    write_marker(path, pid=os.getpid(), create_time=me.create_time(), stage="score", total_memory=16 * GiB,
                 peak_rss=15 * GiB)
    assert StageMarker(path).previous_kill() is None  # that run still runs
    write_marker(path, pid=dead_pid(), create_time=1.0, stage="score", total_memory=16 * GiB, peak_rss=2 * GiB)
    line = StageMarker(path).previous_kill()
    assert "killed (at stage score, it held 2.0 GiB" in line and "perhaps not for memory" in line
    path.write_text("{torn")
    assert StageMarker(path).previous_kill() is None


def test_a_process_killed_mid_stage_leaves_a_marker_that_says_so(tmp_path):
    """A real SIGKILL (what the kernel's out-of-memory killer sends): the process cannot clean up,
    and the marker it leaves names its stage and its last resident memory."""
    from ufo_rl.plan import StageMarker

    path = tmp_path / "m.stage.json"
    code = ("import os, signal, sys; from ufo_rl.plan import StageMarker; "
            f"m = StageMarker({str(path)!r}); m.start('load'); m.stage('train'); "
            "os.kill(os.getpid(), signal.SIGKILL)")
    proc = subprocess.run([sys.executable, "-c", code])
    assert proc.returncode == -signal.SIGKILL
    record = json.loads(path.read_text())
    assert record["stage"] == "train" and record["peak_rss"] > 0
    line = StageMarker(path).previous_kill()
    assert line.startswith("[ufo-rl] the previous run of this job was killed (at stage train, it held")
    # a process that ends in Python (here an error) removes its marker
    code = (f"from ufo_rl.plan import StageMarker; m = StageMarker({str(path)!r}); m.start()\n"
            "try:\n    raise SystemExit(3)\nfinally:\n    m.close()")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 3
    assert not path.exists()


# ---- vLLM's KV cache on a CPU -------------------------------------------------------------------

def test_the_kv_cache_is_sized_from_the_job():
    kv = SMOLLM2.kv_bytes_per_token(4)
    assert vllm_kv_cache_bytes(2, 2, 20, 24, kv, available=20 * GiB) == VLLM_KV_FLOOR  # 4 short sequences
    mid = vllm_kv_cache_bytes(8, 4, 150, 256, kv, available=20 * GiB)
    need = 32 * 512 * kv  # 32 sequences of 406 tokens, in whole blocks of 128
    assert need < mid <= 1.1 * need + 2**20
    big = vllm_kv_cache_bytes(64, 8, 150, 256, kv, available=64 * GiB)
    assert 256 * 512 * kv < big <= 1.1 * 256 * 512 * kv + 2**20  # 256 sequences run at once at most
    assert vllm_kv_cache_bytes(1000, 8, 150, 256, kv, available=64 * GiB) == big
    capped = vllm_kv_cache_bytes(64, 8, 150, 256, kv, available=8 * GiB)
    assert capped <= 0.25 * 8 * GiB + 2**20 < big  # at most a quarter of the memory available
    # never below one sequence of the longest length the engine accepts
    assert vllm_kv_cache_bytes(1, 1, 10, 10, kv, available=GiB, max_model_len=8192) >= 8192 * kv


def test_vllm_memory_kwargs(smollm2_folder):
    from ufo_rl.generation import vllm_memory_kwargs

    m = ModelConfig(max_new_tokens=256)
    cpu = vllm_memory_kwargs(m, "cpu", smollm2_folder, 64, 8, 150, 4, env={}, available=20 * GiB)
    assert cpu == {"kv_cache_memory_bytes": vllm_kv_cache_bytes(64, 8, 150, 256, 46_080, 20 * GiB, 406),
                   "max_model_len": 406}
    knob = dataclasses.replace(m, vllm_kv_cache_gb=1.5)
    assert vllm_memory_kwargs(knob, "cpu", smollm2_folder, 64, 8, 150, 4, env={})["kv_cache_memory_bytes"] == \
        int(1.5 * GiB)
    # vLLM reads $VLLM_CPU_KVCACHE_SPACE itself; on a GPU the share of its memory, or the knob
    assert vllm_memory_kwargs(m, "cpu", smollm2_folder, 64, 8, 150, 4, env={"VLLM_CPU_KVCACHE_SPACE": "2"}) == {}
    assert vllm_memory_kwargs(m, "cuda", smollm2_folder, 64, 8, 150, 2, env={}) == {"gpu_memory_utilization": 0.85}
    assert vllm_memory_kwargs(knob, "cuda", smollm2_folder, 64, 8, 150, 2, env={}) == {
        "kv_cache_memory_bytes": int(1.5 * GiB)}
    with pytest.raises(UserError, match="model.vllm_kv_cache_gb"):
        vllm_memory_kwargs(dataclasses.replace(m, vllm_kv_cache_gb=-1.0), "cpu", smollm2_folder, 1, 1, 1, 4, env={})


class FakeLLM:
    """Stands in for ``vllm.LLM``: records its arguments and samples "<answer>4</answer>"."""

    made: list[dict] = []

    def __init__(self, model, **kwargs):
        from ufo_rl.models import load_tokenizer

        FakeLLM.made.append({"model": model, **kwargs})
        self.tok = load_tokenizer(model, ModelConfig())
        self.llm_engine = types.SimpleNamespace()

    def get_tokenizer(self):
        return self.tok

    def generate(self, requests, sp, use_tqdm=False):
        out = types.SimpleNamespace(text="<answer>4</answer>", token_ids=[1, 2, 3], finish_reason="stop")
        return [types.SimpleNamespace(prompt_token_ids=r["prompt_token_ids"], outputs=[out] * sp.kwargs["n"])
                for r in requests]


def test_the_kv_cache_knob_reaches_the_engine(tmp_path, monkeypatch):
    """A multisample job with model.generation_backend=vllm on a CPU builds its engine with the
    KV cache sized from the job, or with model.vllm_kv_cache_gb when it is set."""
    from ufo_rl.pipeline import Job

    vllm = types.ModuleType("vllm")
    vllm.LLM = FakeLLM
    vllm.SamplingParams = lambda **kw: types.SimpleNamespace(kwargs=kw)
    platforms = types.ModuleType("vllm.platforms")
    platforms.current_platform = types.SimpleNamespace(device_type="cpu")
    monkeypatch.setitem(sys.modules, "vllm", vllm)
    monkeypatch.setitem(sys.modules, "vllm.platforms", platforms)
    monkeypatch.delenv("VLLM_CPU_KVCACHE_SPACE", raising=False)
    FakeLLM.made = []
    for i, gb in enumerate((None, 0.75)):
        cfg = RunConfig(model=ModelConfig(name_or_path="tiny", generation_backend="vllm", max_new_tokens=24,
                                          vllm_kv_cache_gb=gb),
                        dataset=DatasetConfig(kind="embedded", n_pool=16, n_test=8),
                        selector=SelectorConfig(name="multisample", k=4), stage="select",
                        cache_dir=str(tmp_path / f"cache{i}"), run_dir=str(tmp_path / f"run{i}"), progress=False)
        assert Job(cfg).run()["status"] == "done"
    sized, knob = FakeLLM.made
    assert sized["kv_cache_memory_bytes"] == VLLM_KV_FLOOR  # 64 short sequences of the tiny model
    assert knob["kv_cache_memory_bytes"] == int(0.75 * GiB)
    assert sized["max_model_len"] == knob["max_model_len"] < 256  # the longest prompt + 24 new tokens
