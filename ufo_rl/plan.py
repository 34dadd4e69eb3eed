"""The plan of a job: everything about its config that can be checked without loading a model.

``stage=plan`` stops here (ufo_rl/pipeline.py): it validates the stage, the budget, the selector
and its rule, every numeric range, the model folder, the dataset configs and the cache folder,
and prints what would run. :func:`check_sizes` checks that the rule keeps a non-empty subset of
the loaded pool.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ufo_rl.config import BUDGETS, RunConfig
from ufo_rl.errors import UserError
from ufo_rl.problems import Problem
from ufo_rl.scorers import default_rule
from ufo_rl.selection import BIN_RULES, RULES, n_keep

STAGES = ("plan", "select", "train", "all")


# (value, name, lowest allowed, strict): numeric settings and their ranges, checked by the plan
def _ranges(cfg: RunConfig) -> list[tuple[float, str, float, bool]]:
    t, s, e, m = cfg.trainer, cfg.selector, cfg.eval, cfg.model
    return [
        (cfg.seed, "seed", 0, False), (s.k, "selector.k", 1, False), (s.batch_size, "selector.batch_size", 1, False),
        (s.temperature, "selector.temperature", 0, False), (s.n_bins, "selector.n_bins", 1, False),
        (t.num_generations, "trainer.num_generations", 2, False), (t.max_steps, "trainer.max_steps", 1, False),
        (t.epochs, "trainer.epochs", 0, True), (t.learning_rate, "trainer.learning_rate", 0, False),
        (t.per_device_prompts, "trainer.per_device_prompts", 1, False),
        (t.gradient_accumulation_steps, "trainer.gradient_accumulation_steps", 1, False),
        (t.max_completion_length, "trainer.max_completion_length", 1, False),
        (t.max_prompt_length, "trainer.max_prompt_length", 0, False), (t.temperature, "trainer.temperature", 0, True),
        (t.eval_every, "trainer.eval_every", 0, False), (t.save_steps, "trainer.save_steps", 1, False),
        (e.k, "eval.k", 0, False), (e.batch_size, "eval.batch_size", 1, False),
        (e.temperature, "eval.temperature", 0, False),
        (m.max_new_tokens, "model.max_new_tokens", 1, False),
    ]


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")


def _check_model_folder(cfg: RunConfig) -> None:
    """A local model folder must hold a config and a tokenizer (a hub id is checked when loaded)."""
    name = cfg.model.name_or_path
    if name == "tiny":
        return
    p = Path(name).expanduser()
    if not p.exists():
        if name.startswith(("/", ".", "~")):
            raise UserError(f"model folder {name} does not exist; check model.name_or_path")
        return
    if not p.is_dir():
        raise UserError(f"model.name_or_path {name} is a file; give the Hugging Face checkpoint folder")
    if not (p / "config.json").is_file():
        raise UserError(f"model folder {p} has no config.json; point model.name_or_path at a "
                        "Hugging Face checkpoint folder")
    if not any((p / f).is_file() for f in TOKENIZER_FILES):
        raise UserError(f"model folder {p} has no tokenizer ({', '.join(TOKENIZER_FILES)}); "
                        "save the tokenizer into it (tokenizer.save_pretrained)")


def _check_writable(path: Path, what: str) -> None:
    from ufo_rl.io import output_folder_problem

    problem = output_folder_problem(path)
    if problem:
        raise UserError(f"{what}: {problem}")


def make_plan(cfg: RunConfig) -> dict:
    """Validate everything that can be checked without a model; return a printable plan."""
    from ufo_rl.scorers import get_scorer

    if cfg.stage not in STAGES:
        raise UserError(f"unknown stage {cfg.stage!r}; use one of {', '.join(STAGES)}")
    if cfg.trainer.budget not in BUDGETS:
        raise UserError(f"unknown trainer.budget {cfg.trainer.budget!r}; use steps or epochs")
    scorer = get_scorer(cfg.selector.name)
    rule = default_rule(cfg.selector.name, cfg.selector.rule)
    if rule not in RULES:
        raise UserError(f"unknown selector.rule {rule!r}; known: {', '.join(sorted(RULES))}")
    if not 0 < cfg.selector.fraction <= 1:
        raise UserError(f"selector.fraction must be in (0, 1], got {cfg.selector.fraction}")
    for value, name, low, strict in _ranges(cfg):
        if value < low or (strict and value == low):
            raise UserError(f"{name} must be {'>' if strict else '>='} {low}, got {value}")
    if rule == "bin" and not 0 <= cfg.selector.bin_index < cfg.selector.n_bins:
        raise UserError(f"selector.bin_index must be in [0, {cfg.selector.n_bins}), got {cfg.selector.bin_index}")
    if rule == "value_bin":
        # K samples give K+1 pass-rate values, and every bin holds at least bin_min_share
        s = cfg.selector
        if not 0 < s.bin_min_share <= 1:
            raise UserError(f"selector.bin_min_share must be in (0, 1], got {s.bin_min_share}")
        most = min(s.k + 1, int(1 / s.bin_min_share))
        if not 0 <= s.bin_index < most:
            raise UserError(f"selector.bin_index must be in [0, {most}) for K={s.k} samples and bins of at "
                            f"least {s.bin_min_share:.0%} of the pool, got {s.bin_index}")
    from ufo_rl.scorers import TOKENIZATIONS

    if cfg.selector.tokenization not in TOKENIZATIONS:
        raise UserError(f"unknown selector.tokenization {cfg.selector.tokenization!r}; use {', '.join(TOKENIZATIONS)}")
    for key, knob in scorer.knobs.items():
        if knob.choices and getattr(cfg.selector, key) not in knob.choices:
            raise UserError(f"unknown selector.{key} {getattr(cfg.selector, key)!r}; use {', '.join(knob.choices)}")
    if cfg.dataset.on_long_prompt not in ("error", "skip"):
        raise UserError(f"unknown dataset.on_long_prompt {cfg.dataset.on_long_prompt!r}; use error or skip")
    if cfg.dataset.max_prompt_tokens is not None and cfg.dataset.max_prompt_tokens < 1:
        raise UserError(f"dataset.max_prompt_tokens must be >= 1 or null, got {cfg.dataset.max_prompt_tokens}")
    if cfg.model.generation_backend not in ("hf", "vllm"):
        raise UserError(f"unknown model.generation_backend {cfg.model.generation_backend!r}; use hf or vllm")
    import torch

    from ufo_rl.models import resolve_dtype

    resolve_dtype(cfg.model, torch.device("cpu"))  # an unknown dtype name is one line
    if scorer.needs_model or cfg.stage in ("train", "all"):
        _check_model_folder(cfg)
    from ufo_rl.data.loaders import check_dataset_config

    for ds in [cfg.dataset, *cfg.eval.benchmarks.values()]:
        check_dataset_config(ds)
    if cfg.stage != "plan":
        _check_writable(cache_root(cfg), "cache_dir")
    return {
        "experiment": cfg.experiment,
        "stage": cfg.stage,
        "model": cfg.model.name_or_path,
        "dataset": f"{cfg.dataset.name} ({cfg.dataset.kind})",
        "selector": cfg.selector.name,
        "rule": rule,
        "signal": cfg.selector.signal or scorer.signal,
        "fraction": 1.0 if rule == "all" else cfg.selector.fraction,
        "budget": cfg.trainer.budget,
        "benchmarks": sorted(cfg.eval.benchmarks),
        "seed": cfg.seed,
        "run_dir": cfg.run_dir,
    }


def check_sizes(cfg: RunConfig, pool: list[Problem]) -> None:
    """The subset the rule keeps from this pool is not empty (the same rounding as the rules)."""
    rule = default_rule(cfg.selector.name, cfg.selector.rule)
    if rule == "bin":
        if len(pool) < cfg.selector.n_bins:
            raise UserError(f"a pool of {len(pool)} cannot be split into {cfg.selector.n_bins} bins; "
                            "lower selector.n_bins")
    elif rule != "all":
        n_keep(len(pool), cfg.selector.fraction)
    if cfg.stage in ("train", "all") and rule not in ("all", *BIN_RULES):
        # the subset must fill one optimizer step (ufo_rl/budget.py; checked again after the
        # over-long prompts are dropped), found now rather than after an hour of scoring
        from ufo_rl import dist
        from ufo_rl.budget import prompts_per_step

        k, per_step = n_keep(len(pool), cfg.selector.fraction), prompts_per_step(cfg.trainer, dist.world_size())
        if k < per_step:
            raise UserError(f"selector.fraction={cfg.selector.fraction} keeps {k} of {len(pool)} prompts, fewer "
                            f"than one optimizer step takes ({per_step}); raise the pool or the fraction, or "
                            "lower trainer.per_device_prompts")


def cache_root(cfg: RunConfig) -> Path:
    """The score cache's folder: ``cache_dir``, else ``<results_dir>/cache``."""
    return Path(cfg.cache_dir or Path(cfg.results_dir) / "cache").expanduser()


def cap_prompts(pool: list[Problem], tok, system_prompt: str, ds) -> tuple[list[Problem], list[str]]:
    """The pool without the prompts over ``ds.max_prompt_tokens`` (counted with the chat template
    and ``system_prompt``), and the ids of those dropped, when ``ds.on_long_prompt`` is ``skip``;
    with ``error`` a long prompt is bad input."""
    import sys

    from ufo_rl.models import build_prompt

    prompts = [build_prompt(tok, p.question, system_prompt) for p in pool]
    lengths = [len(ids) for ids in tok(prompts, add_special_tokens=False)["input_ids"]]
    long = [(p, n) for p, n in zip(pool, lengths) if n > ds.max_prompt_tokens]
    if not long:
        return pool, []
    if ds.on_long_prompt != "skip":
        p, n = long[0]
        raise UserError(f"{ds.name}: problem {p.id!r} has a prompt of {n} tokens, over dataset.max_prompt_tokens="
                        f"{ds.max_prompt_tokens} ({len(long)} prompts in all); raise the cap or set "
                        "dataset.on_long_prompt=skip")
    ids = {p.id for p, _ in long}
    kept = [p for p in pool if p.id not in ids]
    if not kept:
        raise UserError(f"{ds.name}: every prompt is over dataset.max_prompt_tokens={ds.max_prompt_tokens}; "
                        "raise the cap")
    dropped = [p.id for p, _ in long]
    print(f"{ds.name}: skipped {len(long)} prompts over {ds.max_prompt_tokens} tokens "
          f"(first: {', '.join(dropped[:5])})", file=sys.stderr)
    return kept, dropped


# ---- memory: an estimate before the model is loaded, and what a killed run left behind ----------

def longest_prompt(tok, problems: list[Problem], system_prompt: str | None) -> int:
    """Tokens of the longest chat-formatted prompt of ``problems`` (0 for none)."""
    from ufo_rl.models import build_prompt

    if not problems:
        return 0
    prompts = [build_prompt(tok, p.question, system_prompt) for p in problems]
    return max(len(ids) for ids in tok(prompts, add_special_tokens=False)["input_ids"])


def memory_estimate(cfg: RunConfig, shape, pool_tokens: int, eval_tokens: int, dtype_bytes: int,
                    budget: int, target_tokens: int | None = None) -> dict[str, tuple[int, str]]:
    """Estimated resident peak of each stage of the job on a CPU, ``{stage: (bytes, what)}``, from
    the model's shape (ufo_rl/budget.py: ModelShape), the longest prompt of the pool and of the
    benchmarks in tokens, the longest text UFO scores (default ``model.max_new_tokens``), and the
    memory budget that sizes GRPO's micro-batches. Stages the job does not run, and sampling on
    vLLM (its own engine, ``model.vllm_kv_cache_gb``), are left out."""
    from ufo_rl.budget import BASE_BYTES, decode_bytes, decode_rows, micro_batch, rollout_prompts, train_peak_bytes
    from ufo_rl.scorers import get_scorer

    m, s, t = cfg.model, cfg.selector, cfg.trainer
    weights = BASE_BYTES + shape.n_params * dtype_bytes
    out: dict[str, tuple[int, str]] = {}
    scorer = get_scorer(s.name)
    if scorer.needs_model and scorer.samples and m.generation_backend != "vllm":
        rows = max(s.batch_size, s.k)
        out["score"] = (weights + decode_bytes(shape, rows, pool_tokens + m.max_new_tokens, dtype_bytes),
                        f"sampling {rows} sequences of up to {pool_tokens} + {m.max_new_tokens} tokens")
    elif scorer.needs_model:
        # one teacher-forced pass per batch: the target positions' float32 logits, twice (the
        # row's log-softmax), and a layer's working tensors (ufo_rl/scoring.py)
        keep = (target_tokens or m.max_new_tokens) + 1
        work = s.batch_size * (2 * keep * shape.vocab_size * 4
                               + (pool_tokens + keep) * (3 * shape.intermediate_size + 4 * shape.hidden_size)
                               * dtype_bytes)
        out["score"] = (weights + work, f"scoring {s.batch_size} prompts a pass")
    if cfg.stage in ("train", "all"):
        if cfg.eval.benchmarks:
            new = cfg.eval.max_new_tokens or m.max_new_tokens
            # eval.batch_size, lowered to what fits the budget (Job.evaluate uses the same)
            rows = max(decode_rows(shape, eval_tokens + new, dtype_bytes, budget, cfg.eval.batch_size), cfg.eval.k)
            out["eval"] = (weights + decode_bytes(shape, rows, eval_tokens + new, dtype_bytes),
                           f"decoding {rows} sequences of up to {eval_tokens} + {new} tokens")
        micro = micro_batch(shape, t, pool_tokens, dtype_bytes, budget)
        rollout = rollout_prompts(shape, t, pool_tokens, dtype_bytes, budget)
        out["train"] = (train_peak_bytes(shape, t, micro, pool_tokens, dtype_bytes, rollout),
                        f"GRPO sampling {rollout} prompts at a time and training on micro-batches of {micro} "
                        f"completions of up to {pool_tokens} + {t.max_completion_length} tokens")
    return out


def _target_tokens(cfg: RunConfig, tok, pool: list[Problem]) -> int | None:
    """Tokens of the longest text UFO teacher-forces (ufo_rl/scorers.py: ufo_targets): the answer
    prefix and the gold answer, or the worked solution; None for the model's own greedy text."""
    if cfg.selector.target == "answer":
        texts = [cfg.model.answer_prefix + p.answer for p in pool]
    elif cfg.selector.target == "solution":
        texts = [p.solution or p.answer for p in pool]
    else:
        return None
    return max((len(ids) for ids in tok(texts, add_special_tokens=False)["input_ids"]), default=0)


# what each stage's estimate can be lowered with
_LOWER = {"score": "selector.batch_size (or model.max_new_tokens)", "eval": "eval.batch_size or eval.max_new_tokens",
          "train": "trainer.max_completion_length or trainer.per_device_prompts"}


@dataclass(frozen=True)
class MemoryPlan:
    """What :func:`check_memory` found: each stage's estimate ``{stage: (bytes, what)}``, and the
    evaluation batch (sequences decoded at once) that fits ``model.memory_gb``."""

    estimate: dict
    eval_batch_size: int


def check_memory(cfg: RunConfig, model_path: str, pool: list[Problem], benches: dict, tok,
                 available: int | None = None) -> MemoryPlan | None:
    """Say in one line, before the model is loaded, whether the job fits the memory: a
    :class:`UserError` when a stage's estimate (:func:`memory_estimate`) is more than the memory
    available, a printed line when it is more than ``model.memory_gb``. Returns the plan (None on a
    GPU, or for a checkpoint whose shape cannot be read: nothing is checked then)."""
    import sys

    from ufo_rl.budget import GiB, available_memory, decode_rows, memory_budget, model_shape
    from ufo_rl.models import resolve_device, resolve_dtype

    device = resolve_device(cfg.model)
    shape = model_shape(model_path)
    if device.type != "cpu" or shape is None:
        return None
    available = available_memory() if available is None else available
    budget = memory_budget(cfg.model.memory_gb, available)
    pool_tokens = longest_prompt(tok, pool, cfg.model.system_prompt)
    if cfg.stage in ("train", "all"):
        pool_tokens = min(pool_tokens, cfg.trainer.max_prompt_length or pool_tokens)
    eval_tokens = max((longest_prompt(tok, b, cfg.model.system_prompt) for b in benches.values()), default=0)
    dtype_bytes = resolve_dtype(cfg.model, device).itemsize
    est = memory_estimate(cfg, shape, pool_tokens, eval_tokens, dtype_bytes, budget, _target_tokens(cfg, tok, pool))
    new = cfg.eval.max_new_tokens or cfg.model.max_new_tokens
    plan = MemoryPlan(est, decode_rows(shape, eval_tokens + new, dtype_bytes, budget, cfg.eval.batch_size))
    if not est:
        return plan
    stage, (peak, what) = max(est.items(), key=lambda kv: kv[1][0])
    line = (f"this job needs about {peak / GiB:.1f} GiB at its {stage} stage ({what}; "
            f"{shape.n_params / 1e6:.0f}M parameters)")
    if peak > available:
        raise UserError(f"{line}, more than the {available / GiB:.1f} GiB of memory available: it would be killed "
                        f"for memory; lower {_LOWER[stage]}, or free memory")
    if peak > budget:
        print(f"[ufo-rl] {line}, more than model.memory_gb ({budget / GiB:.1f} GiB; {available / GiB:.1f} GiB "
              f"available); lower {_LOWER[stage]} to stay within it", file=sys.stderr)
    return plan


STAGE_MARKER = "stage.json"
# the share of the machine's memory that a killed run held when last seen, from which the kill
# is named as likely for memory
OOM_SHARE = 0.5


def stage_marker_path(cfg: RunConfig) -> Path:
    """Where a job notes its running stage: beside its folder lock (ufo_rl/pipeline.py: Job._lock),
    under the cache, keyed by the absolute run folder, so the same command finds it again."""
    import hashlib

    digest = hashlib.sha256(str(Path(cfg.run_dir).absolute()).encode()).hexdigest()[:16]
    return cache_root(cfg) / "locks" / f"{digest}.{STAGE_MARKER}"


def _process_tree_rss(proc) -> int:
    import psutil

    total = 0
    for p in [proc, *proc.children(recursive=True)]:  # vLLM's engine runs in child processes
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


class StageMarker:
    """A file that says which stage a job is in, written before each stage and refreshed with the
    job's resident memory (its processes together) every few seconds, removed when the job ends
    in any way Python sees (done, an error, Ctrl-C). A marker left behind by a process that no
    longer runs means the job was killed (SIGKILL: the kernel's out-of-memory killer sends it)."""

    every = 2.0  # seconds between memory readings

    def __init__(self, path: Path):
        import threading

        self.path = Path(path)
        self.record: dict = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = None

    def previous_kill(self) -> str | None:
        """The one line that names a previous run of this job as killed, or None (no marker, an
        unreadable one, or one whose process still runs)."""
        import psutil

        from ufo_rl.budget import GiB

        rec = read_marker(self.path)
        if not rec:
            return None
        try:
            if psutil.Process(int(rec["pid"])).create_time() == rec.get("create_time"):
                return None  # still running (it holds the folder lock)
        except (psutil.Error, KeyError, TypeError, ValueError):
            pass
        stage, rss, total = rec.get("stage", "?"), rec.get("peak_rss", 0), rec.get("total_memory") or 1
        held = f"it held {rss / GiB:.1f} GiB of the machine's {total / GiB:.1f} GiB when last seen"
        if rss >= OOM_SHARE * total:
            why = f"likely out of memory at stage {stage}: {held}"
        else:
            why = f"at stage {stage}, {held}, so perhaps not for memory"
        return (f"[ufo-rl] the previous run of this job was killed ({why}); it restarts from what was saved; "
                "set model.memory_gb below the memory free for this job if it was killed for memory")

    def start(self, stage: str = "start") -> None:
        import os
        import threading

        import psutil

        proc = psutil.Process()
        self.record = {"pid": os.getpid(), "create_time": proc.create_time(), "stage": stage,
                       "total_memory": psutil.virtual_memory().total, "peak_rss": proc.memory_info().rss}
        self._write()
        self._thread = threading.Thread(target=self._watch, args=(proc,), daemon=True, name="ufo-rl-stage-marker")
        self._thread.start()

    def stage(self, name: str) -> None:
        self.record["stage"] = name
        self._write()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.path.unlink(missing_ok=True)

    def _watch(self, proc) -> None:
        while not self._stop.wait(self.every):
            rss = _process_tree_rss(proc)
            if rss > self.record["peak_rss"]:
                self.record["peak_rss"] = rss
                self._write()

    def _write(self) -> None:
        import json
        import os

        with self._lock:
            if self._stop.is_set() and self._thread is not None:
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(self.record))
            os.replace(tmp, self.path)


def read_marker(path: Path) -> dict | None:
    import json

    try:
        rec = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return rec if isinstance(rec, dict) else None


class MarkedStages:
    """A job's progress lines (ufo_rl/progress.py: JobProgress) that also move a
    :class:`StageMarker` at each stage boundary."""

    def __init__(self, lines, marker: StageMarker):
        self._lines, self._marker = lines, marker

    def stage(self, name: str, *args, **kwargs):
        self._marker.stage(name)
        return self._lines.stage(name, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._lines, name)


@contextmanager
def marked_stages(job, marker: StageMarker | None):
    """Run a job's stages under ``marker`` (None: unmarked, e.g. on ranks other than 0): its
    progress lines move the marker, which is removed however the block ends in Python."""
    if marker is None:
        yield
        return
    marker.start(getattr(job.lines, "stage_name", None) or "start")
    lines, job.lines = job.lines, MarkedStages(job.lines, marker)
    try:
        yield
    finally:
        job.lines = lines
        marker.close()
