"""GRPO through TRL's ``GRPOTrainer``: one function from a model folder and a subset to a run.

Design choices (measured on the tiny model; the README states the numbers):
- the model is passed to TRL by *path*, so TRL builds the reference model itself when
  ``beta > 0`` (a model object breaks the reference copy);
- gradient checkpointing is off (it only slows a tiny model down) and ``use_cpu`` is set when
  no GPU is visible;
- plain-text rollouts are sampled by ufo_rl/generation.py's decoding loop instead of TRL's call
  to ``generate`` (same distribution, less waste on a CPU; see ``_grpo_trainer_class``);
- the reward is the verifiable correctness of :mod:`ufo_rl.rewards` (strict by default: only
  completions that stop at ``</answer>`` are paid), with truncated completions masked out of
  the loss, which kept the policy from drifting to the length cap;
- metrics are read from ``trainer.state.log_history`` (not the console) and written one row
  per logged step to ``train.jsonl``; ``zero_adv_frac`` (the share of prompt groups whose
  rewards all agree, so whose advantage is zero) is computed from the rewards themselves, since
  TRL's own ``frac_reward_zero_std`` means something else under ``scale_rewards="batch"``.

Budgets (``steps``: equal optimizer updates; ``epochs``: equal passes over the subset) are
counted in ufo_rl/budget.py, over the prompts left after the over-long ones are dropped and the
global batch of all processes. Under a multi-process launch (ufo_rl/dist.py) every rank trains,
and rank 0 alone writes the logs, the evaluation curve and the final tokenizer.
"""

from __future__ import annotations

import inspect
import json
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from ufo_rl import dist
from ufo_rl.budget import (  # noqa: F401  (prompts_per_step, total_steps: re-exported)
    completions_per_device_step,
    plan_budget,
    prompts_per_step,
    total_steps,
)
from ufo_rl.config import ModelConfig, TrainerConfig
from ufo_rl.errors import UserError
from ufo_rl.io import write_text
from ufo_rl.models import build_prompt, load_tokenizer
from ufo_rl.problems import Problem
from ufo_rl.rewards import combined_reward, zero_advantage_fraction

LOG = logging.getLogger("ufo_rl.train")

TRAIN_LOG = "train.jsonl"
EVAL_CURVE = "eval_curve.jsonl"
CHECKPOINTS = "checkpoints"
FINAL = "final"

EvalFn = Callable[[object, int], dict]


def _checkpoint_step(path: Path) -> int | None:
    """The step of a complete checkpoint folder, or None. The Trainer writes ``trainer_state.json``
    last and not atomically, so a checkpoint is complete only when that file parses."""
    try:
        state = json.loads((path / "trainer_state.json").read_text())
    except (OSError, ValueError):  # absent (a kill mid-save) or torn
        return None
    return state.get("global_step") if isinstance(state, dict) else None


def latest_checkpoint(ckpt_dir: Path) -> Path | None:
    """The highest-numbered complete ``checkpoint-N`` folder, or None."""
    if not ckpt_dir.is_dir():
        return None
    numbered = sorted((p for p in ckpt_dir.glob("checkpoint-*") if p.name.split("-")[-1].isdigit()),
                      key=lambda p: int(p.name.split("-")[-1]), reverse=True)
    return next((p for p in numbered if _checkpoint_step(p) is not None), None)


class _RewardRecorder:
    """Wraps the reward callable: remembers each call's zero-advantage fraction and tokens."""

    def __init__(self, reward, group_size: int):
        self.reward = reward
        self.group_size = group_size
        self.__name__ = reward.__name__
        self.pending: list[float] = []
        self.tokens = 0

    def __call__(self, completions, answer, completion_ids=None, **kwargs):
        r = self.reward(completions, answer)
        self.pending.append(zero_advantage_fraction(r, self.group_size))
        if completion_ids is not None:
            self.tokens += sum(len(c) for c in completion_ids)
        return r

    def take(self) -> float | None:
        vals, self.pending = self.pending, []
        return sum(vals) / len(vals) if vals else None


def _callbacks(recorder: _RewardRecorder, log_path: Path, eval_fn: EvalFn | None, eval_every: int,
               curve_path: Path, t0: float):
    from transformers import TrainerCallback

    class Recorder(TrainerCallback):
        """Turns each TRL log entry into one ``train.jsonl`` row; runs the periodic eval."""

        def on_log(self, args, state, control, logs=None, **kw):
            logs = logs or {}
            if "reward" not in logs or not state.is_world_process_zero:  # the final summary entry
                return  # (train_runtime, ...), or a rank that does not write
            row = {
                "step": state.global_step,
                "reward_mean": logs.get("reward"),
                "reward_std": logs.get("reward_std"),
                "zero_adv_frac": recorder.take(),
                "kl": logs.get("kl"),
                "loss": logs.get("loss"),
                "learning_rate": logs.get("learning_rate"),
                "tokens": logs.get("num_tokens"),
                "completion_tokens": recorder.tokens,
                "mean_length": logs.get("completions/mean_length"),
                "clipped_ratio": logs.get("completions/clipped_ratio"),
                "entropy": logs.get("entropy"),
                "wall_seconds": round(time.perf_counter() - t0, 3),
            }
            with open(log_path, "a") as f:
                f.write(json.dumps(row) + "\n")

        def on_step_end(self, args, state, control, model=None, **kw):
            if eval_fn and eval_every and state.global_step % eval_every == 0 and state.is_world_process_zero:
                was = model.training
                model.eval()
                with torch.no_grad():
                    res = eval_fn(model, state.global_step)
                model.train(was)
                with open(curve_path, "a") as f:
                    f.write(json.dumps({"step": state.global_step, **(res or {})}) + "\n")

    return [Recorder()]


def _plain_text_sampling(trainer, images, multimodal_fields) -> bool:
    """Whether a GRPO rollout is plain sampling from a text model that
    :meth:`ufo_rl.generation.HFGenerator.sample_ids` reproduces: temperature and top-p only, on
    one process or under DDP (not DeepSpeed or FSDP, whose weights must be gathered first)."""
    t, args = trainer, trainer.args
    return (images is None and not multimodal_fields
            and not any(getattr(t, k, None) for k in ("use_vllm", "use_transformers_continuous_batching", "tools",
                                                       "environment_factories", "rollout_func", "_is_vlm",
                                                       "top_k", "min_p", "is_deepspeed_enabled", "is_fsdp_enabled"))
            and not getattr(args, "generation_kwargs", None) and getattr(args, "cache_implementation", None) is None
            and getattr(t, "repetition_penalty", 1.0) == 1.0 and getattr(t, "temperature", 0) > 0)


# The leading parameters of GRPOTrainer._generate_single_turn that OwnSamplingGRPOTrainer overrides
# (TRL 1.15 added num_generations; 1.14 and older pass three, and the override would raise a
# TypeError on the first rollout). tests/test_install.py checks the installed TRL against it.
TRL_GENERATE_PARAMS = ("self", "prompt_ids", "images", "multimodal_fields", "num_generations")


def check_trl_generate_signature(trainer_cls) -> None:
    """Stop with one line when TRL's ``_generate_single_turn`` is not the one the override expects."""
    import trl  # as GRPOTrainer below: importing TRL takes seconds, which a scoring-only job never needs

    params = tuple(inspect.signature(trainer_cls._generate_single_turn).parameters)
    if params[: len(TRL_GENERATE_PARAMS)] != TRL_GENERATE_PARAMS:
        raise UserError(
            f"TRL {trl.__version__} is not supported: GRPOTrainer._generate_single_turn takes {params}, the "
            f"project's rollout needs {TRL_GENERATE_PARAMS} (TRL >= 1.15); install the pinned versions: "
            "pip install -c requirements.lock -e .")


def _grpo_trainer_class():
    """TRL's ``GRPOTrainer``, sampling its completions with HFGenerator's decoding loop.

    TRL samples through ``generate``, which prefills each of a prompt's ``num_generations``
    rows again and runs every row until the longest one ends; on a CPU that was 38% of a step
    of the tiny model. The loop samples from the same distribution (same logits, temperature
    and top-p; tests/test_generation.py) from the trainer's own random stream, and returns what
    TRL's own path returns: the ids through the first EOS, no logprobs. Any other rollout
    (vLLM, tools, images, top-k, min-p, a repetition penalty, ...) stays with TRL.
    """
    from trl import GRPOTrainer

    from ufo_rl.generation import HFGenerator, SamplingParams

    check_trl_generate_signature(GRPOTrainer)

    class OwnSamplingGRPOTrainer(GRPOTrainer):
        # prompts whose completions are decoded at once (None: all); set by train_grpo to fit the
        # memory (ufo_rl/budget.py: rollout_prompts)
        rollout_prompts: int | None = None

        def _generate_single_turn(self, prompt_ids, images, multimodal_fields, num_generations, *args, **kwargs):
            if args or kwargs or not _plain_text_sampling(self, images, multimodal_fields):
                return super()._generate_single_turn(prompt_ids, images, multimodal_fields, num_generations,
                                                     *args, **kwargs)
            n = num_generations
            # TRL's RepeatSampler gives each prompt n consecutive rows: prefill each prompt once
            grouped = len(prompt_ids) % n == 0 and all(
                prompt_ids[i] == prompt_ids[i - i % n] for i in range(len(prompt_ids)))
            unique, n = (prompt_ids[::n], n) if grouped else (prompt_ids, 1)
            model = self.accelerator.unwrap_model(self.model_wrapped)
            gen = HFGenerator(model, self._tokenizer, batch_size=len(prompt_ids))
            params = SamplingParams(n=n, temperature=self.temperature, top_p=self.top_p,
                                    max_new_tokens=self.max_completion_length)
            per_call = self.rollout_prompts * num_generations // n if self.rollout_prompts else len(unique)
            out = []
            for i in range(0, len(unique), per_call):
                out += gen.sample_ids([list(p) for p in unique[i : i + per_call]], params, self.eos_token_ids)
            return out, None

    return OwnSamplingGRPOTrainer


def quiet_console(trainer, bar: bool) -> None:
    """Keep TRL's per-step metric dicts off the console: transformers prints each logged step's
    dict there (``ProgressCallback.on_log``, or ``PrinterCallback`` without bars), which in a sweep
    buries the job lines. The metrics are in ``train.jsonl`` already; here they go to the
    ``ufo_rl.train`` logger (the job's ``job.log``). With ``bar`` the step bar stays."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    def log_step(state, logs) -> None:
        if state.is_world_process_zero and logs:
            LOG.info("step %d: %s", state.global_step, json.dumps(logs, default=str))

    class StepBar(ProgressCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            log_step(state, logs)

    class StepLog(PrinterCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            log_step(state, logs)

    trainer.remove_callback(ProgressCallback)
    trainer.remove_callback(PrinterCallback)
    trainer.add_callback(StepBar() if bar else StepLog())


def grpo_args(cfg: TrainerConfig, out_dir: Path, steps: int, seed: int, progress: bool, micro: int | None = None):
    """The ``trl.GRPOConfig`` for a run (checkpoints under ``out_dir/checkpoints``).

    ``cfg.report_to`` names the trackers (:mod:`ufo_rl.tracking`): checked here (one-line
    :class:`UserError` for an unknown or missing one), and given the environment that keeps
    them offline and under ``out_dir``; the run folder's name is the tracker's run name.

    ``micro`` (a divisor of ``per_device_prompts x num_generations``; default: all of them) is
    the completions per forward and backward pass: TRL generates each step's batch at once and
    splits it into ``steps_per_generation`` micro-batches whose gradients it accumulates into
    one optimizer step, normalised over the whole batch, so the update is the same.
    """
    import os

    from trl import GRPOConfig

    from ufo_rl.tracking import check_report_to, tracking_env

    targets = check_report_to(cfg.report_to)
    os.environ.update(tracking_env(targets, out_dir, os.environ))
    on_gpu = torch.cuda.is_available()
    split = completions_per_device_step(cfg) // micro if micro else 1
    kw = dict(
        output_dir=str(out_dir / CHECKPOINTS),
        max_steps=steps,
        learning_rate=cfg.learning_rate,
        lr_scheduler_type=cfg.lr_scheduler_type,
        warmup_steps=cfg.warmup_ratio,  # a float < 1 is a ratio of the total steps
        weight_decay=cfg.weight_decay,
        max_grad_norm=cfg.max_grad_norm,
        num_generations=cfg.num_generations,
        per_device_train_batch_size=completions_per_device_step(cfg) // split,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps * split,
        max_completion_length=cfg.max_completion_length,
        temperature=cfg.temperature,
        top_p=cfg.top_p,
        beta=cfg.beta,
        loss_type=cfg.loss_type,
        scale_rewards=cfg.scale_rewards,
        mask_truncated_completions=cfg.mask_truncated_completions,
        logging_steps=cfg.logging_steps,
        save_strategy="steps",
        save_steps=cfg.save_steps,
        save_total_limit=2,
        gradient_checkpointing=False,
        bf16=cfg.bf16 and on_gpu,
        fp16=False,
        use_cpu=not on_gpu,
        use_vllm=cfg.use_vllm,
        seed=seed,
        data_seed=seed,
        report_to=targets or "none",
        run_name=out_dir.name,
        disable_tqdm=not progress,
        log_completions=False,
        dataloader_num_workers=0,
    )
    if split > 1:  # one generation per optimizer step, as without the split
        kw["steps_per_generation"] = cfg.gradient_accumulation_steps * split
    kw.update(cfg.extra)
    return GRPOConfig(**kw)


def train_chunks(model_path: str, cfg: TrainerConfig, model_cfg: ModelConfig, prompt_tokens: int) -> tuple[int, int]:
    """(completions per forward and backward pass, prompts per rollout decoding call) on a CPU:
    the most that keep the step's estimated resident peak inside ``model.memory_gb``
    (ufo_rl/budget.py: micro_batch, rollout_prompts). The whole batch on a GPU, for a checkpoint
    whose shape cannot be read, or when ``trainer.extra`` sets TRL's generation batch itself."""
    from ufo_rl.budget import memory_budget, micro_batch, model_shape, rollout_prompts, train_peak_bytes
    from ufo_rl.models import resolve_device, resolve_dtype

    total, prompts = completions_per_device_step(cfg), cfg.per_device_prompts * cfg.gradient_accumulation_steps
    device = resolve_device(model_cfg)
    shape = model_shape(model_path)
    if device.type != "cpu" or shape is None or {"generation_batch_size", "steps_per_generation"} & set(cfg.extra):
        return total, prompts
    dtype_bytes = resolve_dtype(model_cfg, device).itemsize
    budget = memory_budget(model_cfg.memory_gb)
    micro = micro_batch(shape, cfg, prompt_tokens, dtype_bytes, budget)
    rollout = rollout_prompts(shape, cfg, prompt_tokens, dtype_bytes, budget)
    if micro < total or rollout < prompts:
        release_freed_memory()
        if dist.is_main_process():
            peak = train_peak_bytes(shape, cfg, micro, prompt_tokens, dtype_bytes, rollout)
            print(f"[ufo-rl] GRPO: each step samples its {prompts} prompts {rollout} at a time and passes its "
                  f"{total} completions through the model {micro} at a time (model.memory_gb "
                  f"{budget / 2**30:.1f} GiB; step estimated at {peak / 2**30:.1f} GiB)", flush=True)
    return micro, rollout


# glibc's mallopt parameter for the size from which an allocation gets its own mapping
_M_MMAP_THRESHOLD = -3


def release_freed_memory(threshold: int = 2**20) -> bool:
    """Have glibc serve every allocation of ``threshold`` bytes or more with its own mapping, which
    goes back to the system when freed (a fixed threshold; glibc's own rises as big blocks are
    freed). Without it the activations of successive micro-batches fragmented the heap: SmolLM2's
    GRPO step in micro-batches of 4 grew from 6 to 11.2 GiB resident over its 16 micro-batches
    (8.3 GiB with it), and a loop of forward and backward passes held 5.1 GiB between passes
    against 2.4 GiB with it. The fresh pages cost time: up to a fifth more in that loop, nothing
    measurable in the GRPO step (711 s against 768 s, on a shared core). Applied only when the
    batch is split for memory. False where the C library is not glibc."""
    import ctypes

    try:
        return bool(ctypes.CDLL("libc.so.6").mallopt(_M_MMAP_THRESHOLD, threshold))
    except (OSError, AttributeError):
        return False


def train_grpo(model_path: str, train_problems: Sequence[Problem], cfg: TrainerConfig,
               model_cfg: ModelConfig, out_dir: Path, seed: int, eval_fn: EvalFn | None = None,
               progress: bool = True, reward_fn: Callable[..., list[float]] | None = None,
               callbacks: Sequence = ()) -> dict:
    """Run GRPO on ``train_problems`` from the model folder ``model_path``.

    Writes ``out_dir/train.jsonl`` (one row per logged step), checkpoints under
    ``out_dir/checkpoints`` and the final model + tokenizer under ``out_dir/final``. If a
    checkpoint is there already the run resumes from it (``resumed: True``).
    ``eval_fn(model, step) -> dict`` runs every ``cfg.eval_every`` steps; its results come back
    as ``curve``. ``reward_fn`` replaces the default correctness reward (tests use it);
    ``callbacks`` are more ``transformers.TrainerCallback`` objects (the job's progress lines).
    """
    from datasets import Dataset
    from transformers import AutoModelForCausalLM  # noqa: F401  (fails early if missing)
    if not train_problems:
        raise UserError("the training subset is empty; check the selector's fraction and the pool")
    if cfg.name != "grpo":
        raise UserError(f"unknown trainer.name {cfg.name!r}; only 'grpo' is available")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    main = dist.is_main_process()
    tok = load_tokenizer(model_path, model_cfg)
    rows = [{"prompt": build_prompt(tok, p.question, model_cfg.system_prompt), "answer": p.answer}
            for p in train_problems]
    # TRL 1.x no longer truncates prompts: drop the ones over max_prompt_length instead
    n_long = 0
    lengths = [len(ids) for ids in tok([r["prompt"] for r in rows], add_special_tokens=False)["input_ids"]]
    if cfg.max_prompt_length:
        keep = [(r, n) for r, n in zip(rows, lengths) if n <= cfg.max_prompt_length]
        n_long, rows, lengths = len(rows) - len(keep), [r for r, _ in keep], [n for _, n in keep]
        if not rows:
            raise UserError(f"every training prompt is longer than trainer.max_prompt_length="
                            f"{cfg.max_prompt_length} tokens; raise it")
    budget = plan_budget(cfg, len(train_problems), n_long, dist.world_size())
    steps = budget.steps
    dataset = Dataset.from_list(rows)

    resume = latest_checkpoint(out_dir / CHECKPOINTS)
    # a checkpoint at the last step leaves nothing to train: the Trainer, resumed there, would
    # still run one step past max_steps, so the final model is that checkpoint's instead
    finished = resume is not None and _checkpoint_step(resume) >= steps
    log_path = out_dir / TRAIN_LOG
    curve_path = out_dir / EVAL_CURVE
    for path in (log_path, curve_path) if main else ():
        if resume is None and path.exists():
            path.unlink()  # a fresh run starts fresh logs
        elif resume is not None and path.exists():
            _truncate_log(path, int(resume.name.split("-")[-1]))

    # a resumed run counts the training time of the steps it keeps: wall_seconds and
    # training_seconds go on from the last kept row instead of starting again at 0
    prior = max((r.get("wall_seconds") or 0.0 for r in _read_jsonl(log_path)), default=0.0) if resume else 0.0

    reward = reward_fn or combined_reward(
        strict=True, format_weight=cfg.format_reward_weight if cfg.format_reward else 0.0)
    recorder = _RewardRecorder(reward, cfg.num_generations)
    t0 = time.perf_counter() - prior
    # TRL pads every prompt of a generation batch to its longest: the subset's longest bounds it
    micro, rollout = train_chunks(model_path, cfg, model_cfg, max(lengths))
    args = grpo_args(cfg, out_dir, steps, seed, progress, micro)
    trainer = _grpo_trainer_class()(
        model=str(resume) if finished else model_path,
        reward_funcs=[recorder],
        args=args,
        train_dataset=dataset,
        processing_class=tok,
        callbacks=[*_callbacks(recorder, log_path, eval_fn, cfg.eval_every, curve_path, t0), *callbacks],
    )
    trainer.rollout_prompts = rollout
    quiet_console(trainer, progress)
    if finished:
        trainer.state.global_step = _checkpoint_step(resume)
    else:
        # the checkpoint chosen above, not the Trainer's own pick (the highest-numbered folder,
        # which a kill during a save leaves incomplete)
        trainer.train(resume_from_checkpoint=str(resume) if resume is not None else None)
    training_seconds = time.perf_counter() - t0

    final = out_dir / FINAL
    trainer.save_model(str(final))  # the Trainer saves on rank 0 (every rank takes part)
    if main:
        tok.save_pretrained(str(final))

    history = _read_jsonl(log_path)
    curve = _read_jsonl(curve_path)
    zero = [r["zero_adv_frac"] for r in history if r.get("zero_adv_frac") is not None]
    rewards = [r["reward_mean"] for r in history if r.get("reward_mean") is not None]
    k = max(1, len(rewards) // 10)  # first and last tenth, so one noisy step does not decide
    return {
        "training_seconds": training_seconds,
        "steps": trainer.state.global_step,
        "n_train": len(rows),
        "n_dropped_long_prompts": n_long,
        **{k: v for k, v in budget.record().items() if k not in ("steps", "n_train", "n_dropped")},
        "resumed": resume is not None,
        "resumed_from": str(resume) if resume else None,
        "final_model_path": str(final),
        "zero_adv_frac_mean": sum(zero) / len(zero) if zero else None,
        "reward_first": sum(rewards[:k]) / k if rewards else None,
        "reward_last": sum(rewards[-k:]) / k if rewards else None,
        "curve": curve,
        "micro_batch": micro,
        "rollout_prompts": rollout,
        "threads": torch.get_num_threads(),
        "device": "cuda" if torch.cuda.is_available() else "cpu",
    }


def _read_jsonl(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _truncate_log(log_path: Path, step: int) -> None:
    """Drop rows logged after the checkpoint a resumed run restarts from, and a last row torn by
    a kill mid-append."""
    keep = []
    for line in log_path.read_text().splitlines():
        try:
            row = json.loads(line)
        except ValueError:  # blank or torn
            continue
        if row.get("step", 0) <= step:
            keep.append(line)
    write_text(log_path, "".join(line + "\n" for line in keep))
