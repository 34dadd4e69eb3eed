"""Typed schemas behind every YAML group in ``conf/``.

Hydra composes ``conf/config.yaml`` on top of :class:`RunConfig` (registered as ``base_config``
by ``ufo_rl/hydra_conf.py``), so an unknown key or a wrong type fails in Hydra with its own
message. The entry point converts the result once with ``hydra_conf.to_run_config``; library
code receives these dataclasses, never a ``DictConfig``, and treats them as read-only (``dataclasses.replace`` for a
variant). They are not ``frozen=True`` because OmegaConf then marks every node of the schema
read-only and Hydra can no longer compose YAML onto it. Each option is documented here, once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from omegaconf import MISSING

# trainer.budget values: equal optimizer steps per selector, or equal passes over each subset
BUDGETS = ("steps", "epochs")


@dataclass
class TinyConfig:
    """Recipe of the embedded tiny model (``ufo_rl/tiny_model.py``): same recipe, same weights."""

    seed: int = 0
    hidden_size: int = 256
    num_layers: int = 4
    num_heads: int = 4
    intermediate_size: int = 768
    max_positions: int = 256
    sft_levels: List[int] = field(default_factory=lambda: [1, 2, 3, 4])
    # long enough that the model masters what it was shown without a slip (level 1 passes 8 of
    # 8 samples on 99% of the pool): prompts it always solves, beside ones it never solves
    sft_steps: int = 3000
    # share of warm-start solutions whose answer tag repeats the value *before* the last step
    # (noisy labels, like slips in human-written solutions): the model learns both endings, and
    # GRPO with a verifiable reward can learn which one pays (measured in the README)
    slip_frac: float = 0.5
    # the difficulty levels whose warm-start solutions may slip: [2] confines the habit to level
    # 2, so only its prompts (pass rate about 0.5, the middle zone) carry what GRPO can learn
    # (the skill world, README); null slips on every level, a habit that any prompt can teach
    # (the global-habit world of model=tiny_global_habit)
    slip_levels: Optional[List[int]] = field(default_factory=lambda: [2])
    batch_size: int = 64
    lr: float = 2e-3
    warmup_steps: int = 30
    weight_decay: float = 0.01
    eval_per_level: int = 50


@dataclass
class ModelConfig:
    # "tiny" builds (or reuses) the embedded model; anything else is a hub id or a local folder.
    name_or_path: str = "tiny"
    tiny: TinyConfig = field(default_factory=TinyConfig)
    # where built tiny models are cached (default: the user cache dir, or $UFO_RL_CACHE)
    cache_dir: Optional[str] = None
    # tiny only: use the build shipped with the package when the recipe matches (the same
    # starting model on every machine); false builds it on this machine instead
    shipped_tiny: bool = True
    # auto: bfloat16 on a GPU that supports it, else float16 on GPU, float32 on CPU
    dtype: str = "auto"
    # auto: cuda when available, else cpu
    device: str = "auto"
    # system prompt of the chat (null: none; the tiny model's template ignores it anyway)
    system_prompt: Optional[str] = None
    # text the assistant turn starts with before the scored answer (the paper: "<answer> ")
    answer_prefix: str = "<answer>"
    # generation length cap for sampling, evaluation and the greedy UFO target
    max_new_tokens: int = 96
    # stop strings for generation besides EOS
    stop: List[str] = field(default_factory=list)
    trust_remote_code: bool = False
    # CPU threads for torch when the model runs on the CPU (null: torch's default; a GPU run
    # leaves torch's default too, ufo_rl/models.py: apply_threads)
    threads: Optional[int] = None
    # sampling backend for multisample scoring: hf (transformers generate) | vllm (GPU)
    generation_backend: str = "hf"
    # vllm only: share of GPU memory vLLM may take (on a GPU; the CPU build reads model.vllm_kv_cache_gb)
    vllm_gpu_memory_utilization: float = 0.85
    # vllm on a CPU: the engine's KV cache in GiB (null: sized from the job, ufo_rl/budget.py:
    # vllm_kv_cache_bytes: prompts x K sequences of prompt + max_new_tokens tokens, with a margin,
    # a floor of one full-length sequence, and at most a quarter of the memory available). On a GPU,
    # a value here replaces vllm_gpu_memory_utilization. $VLLM_CPU_KVCACHE_SPACE, when set, wins.
    vllm_kv_cache_gb: Optional[float] = None
    # the resident memory in GiB that a job on a CPU plans for: GRPO's forward and backward pass
    # runs in micro-batches of completions that fit it (the same gradient; ufo_rl/train.py), and a
    # job whose estimate cannot fit the memory available stops before it loads the model
    # (ufo_rl/plan.py: check_memory). null: 8 GiB, or half the memory available at the start if
    # that is less. Not part of the run identity
    memory_gb: Optional[float] = None


@dataclass
class DatasetConfig:
    # embedded | jsonl | parquet | hub
    kind: str = "embedded"
    # short name used in results tables (gsm8k, math500, ...)
    name: str = "embedded"
    # embedded only: generator seed, sizes, difficulty levels (null: all)
    seed: int = 0
    n_pool: int = 2000
    n_test: int = 500
    levels: Optional[List[int]] = None
    # embedded: which split this dataset is (pool | test)
    split: str = "pool"
    # jsonl / parquet: a local file; hub: a dataset name for `datasets.load_dataset`
    path: Optional[str] = None
    hub_config: Optional[str] = None
    # field mapping
    question_field: str = "question"
    answer_field: str = "answer"
    solution_field: Optional[str] = None
    id_field: Optional[str] = None
    difficulty_field: Optional[str] = None
    # how the gold answer is read from answer_field: field (as is) | gsm8k (after ####) |
    # boxed (last \boxed{}) | number (last number)
    answer_extraction: str = "field"
    # keep only the first N rows (null: all); with on_bad_answer=skip, the first N kept rows
    limit: Optional[int] = None
    # a row whose gold answer cannot be read (null, NaN, a boolean, no match for
    # answer_extraction, empty): error (stop with the file line) | skip (drop the row; the
    # loader prints how many and which, and fails when no row is left)
    on_bad_answer: str = "error"
    # the question composed from several fields, e.g. "{body} {question}" (plain {name} fields
    # only; literal braces as {{ and }}); when set, question_field is not read
    question_template: Optional[str] = None
    # RL pool only: a cap on a prompt's length in tokens of the model's tokenizer, chat template
    # included (null: no cap), and what to do with a longer prompt: error | skip (dropped, and
    # counted in scoring.json)
    max_prompt_tokens: Optional[int] = None
    on_long_prompt: str = "error"


@dataclass
class SelectorConfig:
    # ufo | multisample | random | full
    name: str = "ufo"
    # share of the pool kept, in (0, 1]
    fraction: float = 0.1
    # top_mid | lowest | highest | band | bin | dapo | calibrated | random | all
    rule: str = "top_mid"
    # ufo: which text is teacher-forced: answer | solution | greedy
    target: str = "answer"
    # prompts per forward pass (ufo) or sequences per generate call (multisample)
    batch_size: int = 64
    # ufo: sort prompts by length so a batch wastes little padding
    bucket: bool = True
    # ufo: run the leading tokens that every prompt shares (chat template, system prompt) once
    # and copy their KV cache to each batch (ufo_rl/scoring.py); the same scores, less work
    share_prefix: bool = True
    # ufo: how the scored text is tokenised. joint (the authors'): the chat with the assistant turn
    # continued by answer_prefix + target is tokenised as one string and the last T tokens are
    # scored, T = the target's own token count; split: prompt + answer_prefix and the target are
    # tokenised apart and concatenated; auto: joint when the model's chat template renders a
    # system message, else split (the tiny model, whose template drops the system prompt)
    tokenization: str = "auto"
    # multisample: samples per prompt and their temperature
    k: int = 8
    temperature: float = 1.0
    # rule=band: keep the prompts whose signal is closest to this value; rule=calibrated: those
    # whose predicted pass rate is closest to it
    band_target: float = 0.5
    # ufo_calibrated: the share of the pool sampled k times to fit the confidence -> pass rate
    # map, in (0, 1]; a prompt is in it when a hash of (its id, calibration_seed) falls below it
    calibration_share: float = 0.05
    calibration_seed: int = 0
    # rule=bin: split the pool into n_bins equal-count bins of the signal, keep bin bin_index;
    # rule=value_bin: bin the pool by signal value (pass rates j/K), merging neighbouring values
    # until a bin holds bin_min_share of the pool (and 20 prompts), keep bin bin_index
    n_bins: int = 10
    bin_index: int = 0
    bin_min_share: float = 0.05
    # which signal the rule reads (null: the method's own: confidence for ufo, pass_rate for
    # multisample)
    signal: Optional[str] = None


@dataclass
class TrainerConfig:
    name: str = "grpo"
    # steps: every selector gets max_steps optimizer steps (equal compute);
    # epochs: every selector gets `epochs` passes over its subset (full data costs more steps)
    budget: str = "steps"
    max_steps: int = 60
    epochs: float = 1.0
    # of 1e-5, 2e-5, 5e-5 and 1e-4 on the embedded default, 2e-5 did best (README, Results)
    learning_rate: float = 2e-5
    lr_scheduler_type: str = "constant"
    warmup_ratio: float = 0.0
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    num_generations: int = 8
    # prompts per optimizer step = per_device_prompts * gradient_accumulation_steps
    per_device_prompts: int = 8
    gradient_accumulation_steps: int = 1
    max_prompt_length: int = 512
    max_completion_length: int = 96
    temperature: float = 1.0
    top_p: float = 1.0
    # KL coefficient (0: no reference model)
    beta: float = 0.0
    loss_type: str = "dapo"
    scale_rewards: str = "group"
    mask_truncated_completions: bool = True
    # add a format reward (1 when the completion ends with a closed <answer> tag)
    format_reward: bool = False
    format_reward_weight: float = 0.1
    # periodic held-out evaluation every N steps (0: only before and after): greedy accuracy only,
    # the learning curve; avg@k (eval.k) is sampled before and after training
    eval_every: int = 0
    save_steps: int = 50
    logging_steps: int = 1
    bf16: bool = False
    use_vllm: bool = False
    # experiment tracking: none | tensorboard | trackio | wandb, or a list of them; each logs
    # offline under the run folder (ufo_rl/tracking.py); train.jsonl stays the report's source
    report_to: Any = "none"
    # extra keyword arguments for trl.GRPOConfig
    extra: Dict[str, Any] = field(default_factory=dict)


@dataclass
class EvalConfig:
    # benchmark name -> dataset config
    benchmarks: Dict[str, DatasetConfig] = field(default_factory=dict)
    # greedy accuracy always; avg@k with this many samples at `temperature` (0: skip)
    k: int = 4
    temperature: float = 1.0
    batch_size: int = 128
    max_new_tokens: Optional[int] = None
    # evaluate the model before training too
    before: bool = True


@dataclass
class RunConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    selector: SelectorConfig = field(default_factory=SelectorConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    # plan (validate only) | select (score + select) | train (+ GRPO + eval) | all (= train)
    stage: str = "all"
    seed: int = 0
    # where scores are cached across runs (null: <results_dir>/cache)
    cache_dir: Optional[str] = None
    # where run folders, tables and figures go
    results_dir: str = "results"
    # where this run writes (set by Hydra to its run/sweep dir)
    run_dir: str = MISSING
    # progress bars, and a progress line per job at most every 15 s; false keeps only the
    # line at each stage boundary (ufo_rl/progress.py)
    progress: bool = True
    # write tables and figures after a sweep
    report: bool = True
    # free-form tag recorded with the results (the experiment name)
    experiment: str = "default"


# ---- values no job can run with --------------------------------------------------------------
# Checked when the composed config is converted (ufo_rl/hydra_conf.py: to_run_config), before a
# job writes anything; the ranges that need the scorer registry or a loaded pool are the plan's
# (ufo_rl/plan.py). Each returns one line saying what is wrong and what to do, or None.


def results_dir_problem(results_dir: str | None) -> str | None:
    """An empty ``results_dir`` would put the runs at the filesystem root (``/runs``)."""
    if results_dir is None or not str(results_dir).strip():
        return "results_dir is empty; set it to a folder (e.g. results_dir=results)"
    return None


def config_problem(cfg: RunConfig) -> str | None:
    """The first value of ``cfg`` out of its range, as one line; None when every value is valid."""
    problem = results_dir_problem(cfg.results_dir)
    if problem:
        return problem
    share = cfg.selector.calibration_share
    if not 0 < share <= 1:
        return (f"selector.calibration_share must be in (0, 1], got {share}; "
                "set it to the share of the pool to sample (e.g. selector.calibration_share=0.05)")
    threads = cfg.model.threads
    if threads is not None and threads < 1:
        return (f"model.threads must be >= 1, or null for torch's default, got {threads}; "
                "set model.threads=1 (or model.threads=null)")
    return None
