"""A run's identity: the hash of everything in its config that can change its results.

Two jobs with the same identity compute the same thing, so a finished folder can be reused;
two jobs that differ in any such key (fraction, target, dataset, model, budget, ...) must not
share a folder. Keys that cannot change results (batch sizes, progress bars, output and cache
paths, thread counts, how often to log or checkpoint and to which tracker, the stage, the
experiment tag) are left out, so moving from ``stage=select`` to the whole job, or rerunning
with a bigger batch, finds the same folder.

The run folder is ``<selector>-<rule>-seed<seed>-<identity[:8]>``. Hydra names it through the
resolvers of ufo_rl/hydra_conf.py, which also note here whether the folder existed before Hydra
created it: a job that fails on bad input removes its folder only if the folder is its own
(:func:`remove_new_folders`).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict

# dotted keys of RunConfig that cannot change a run's results
NON_RESULT_KEYS = frozenset({
    "run_dir", "results_dir", "cache_dir", "progress", "report", "stage", "experiment",
    "model.cache_dir", "model.threads", "model.vllm_gpu_memory_utilization", "model.vllm_kv_cache_gb",
    "model.memory_gb",
    "selector.batch_size", "selector.bucket", "selector.share_prefix", "eval.batch_size",
    "trainer.save_steps", "trainer.logging_steps", "trainer.report_to",
})
SHORT = 8
# options added after run folders were first written, with the value that keeps the older
# behaviour: left out of the identity at that value, so a folder written before the option
# existed keeps its name and is still reused
ADDED_KEYS = {"model.tiny.slip_levels": None, "selector.bin_min_share": 0.05, "launch.world_size": 1,
              "selector.calibration_share": 0.05, "selector.calibration_seed": 0}


def launch_world_size() -> int:
    """How many processes run the job (``accelerate launch``, torchrun): under ``budget=steps``
    each step's global batch grows with them (ufo_rl/budget.py), so it changes the results.
    accelerate is asked only under a launch (``WORLD_SIZE`` set above 1), so that naming a
    single-process job starts nothing."""
    try:
        if int(os.environ.get("WORLD_SIZE", "1") or "1") <= 1:
            return 1
    except ValueError:
        return 1
    from ufo_rl import dist

    return dist.world_size()


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and key != "eval.benchmarks" and key != "trainer.extra":
            out.update(_flat(v, f"{key}."))
        else:
            out[key] = v
    return out


def identity_fields(cfg) -> dict:
    """The result-relevant keys of a RunConfig, flattened (``{"selector.fraction": 0.1, ...}``),
    and the number of processes of the launch (``launch.world_size``, left out at 1)."""
    flat = {**_flat(asdict(cfg)), "launch.world_size": launch_world_size()}
    return {k: v for k, v in flat.items()
            if k not in NON_RESULT_KEYS and not (k in ADDED_KEYS and v == ADDED_KEYS[k])}


def identity_hash(fields: dict) -> str:
    """sha256 (hex) of an :func:`identity_fields` record."""
    return hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()


def run_identity(cfg) -> str:
    return identity_hash(identity_fields(cfg))


def differing_keys(a: dict, b: dict) -> list[str]:
    """Keys whose values differ between two :func:`identity_fields` records."""
    return sorted(k for k in set(a) | set(b) if json.dumps(a.get(k), default=str) != json.dumps(b.get(k), default=str))


def job_name(cfg) -> str:
    from ufo_rl.scorers import default_rule

    rule = default_rule(cfg.selector.name, cfg.selector.rule)
    if rule in ("bin", "value_bin"):
        rule = f"{rule.replace('_', '')}{cfg.selector.bin_index}"
    return f"{cfg.selector.name}-{rule}-seed{cfg.seed}-{run_identity(cfg)[:SHORT]}"


# absolute run folder -> the folders of its path that did not exist when Hydra named it
_NEW: dict[str, list[str]] = {}


def new_folders(path) -> list[str]:
    """The folders of ``path`` (itself first, then its parents) that did not exist when Hydra
    named it: the ones Hydra created for this job. Empty when unknown: then none is removed."""
    return _NEW.get(os.path.abspath(path), [])


def note_existing(path) -> None:
    path = os.path.abspath(path)
    if path in _NEW:
        return
    new, p = [], path
    while not os.path.exists(p) and os.path.dirname(p) != p:
        new.append(p)
        p = os.path.dirname(p)
    _NEW[path] = new


def remove_new_folders(path) -> None:
    """Remove the folders Hydra created for a job that wrote nothing, innermost first, each only
    while empty: a job never removes a folder it did not create, nor anything inside one."""
    for p in new_folders(path):
        try:
            os.rmdir(p)
        except OSError:
            return
