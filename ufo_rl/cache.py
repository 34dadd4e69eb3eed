"""Score cache with resume.

The key is a hash of what determines the scores: the model's content fingerprint, the pool's
content fingerprint, the scorer's name and the config fields that change its values, and the
prompt format (system prompt, answer prefix, generation cap). A sweep over selectors and seeds
therefore scores each pool once per method. The pool is scored in chunks; each finished chunk
is written atomically (values, then its cost record as the completion marker), so an
interrupted run resumes at the first missing chunk and the summed cost stays the true cost.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from ufo_rl.problems import Problem
from ufo_rl.scorers import ScoreChunk, Scorer


def cache_key(scorer: Scorer, selector_cfg, model_cfg, model_fp: str, data_fp: str) -> str:
    material = {
        "scorer": scorer.name,
        "fields": {f: getattr(selector_cfg, f) for f in scorer.key_fields},
        "model": model_fp,
        "data": data_fp,
        "system_prompt": model_cfg.system_prompt,
        "answer_prefix": model_cfg.answer_prefix,
        "max_new_tokens": model_cfg.max_new_tokens,
        "stop": list(model_cfg.stop),
        "dtype": model_cfg.dtype,
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()[:16]


def _atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    write(tmp)
    os.replace(tmp, path)


def score_with_cache(
    folder: Path,
    problems: Sequence[Problem],
    score_chunk: Callable[[Sequence[Problem]], ScoreChunk],
    chunk_size: int = 512,
    progress: bool = True,
) -> tuple[pd.DataFrame, dict, list[dict], dict]:
    """Score ``problems`` chunk by chunk into ``folder``; returns (columns, cost, samples, status).

    ``status`` says whether every chunk came from the cache (``cached``) and how many chunks
    were resumed from an earlier, interrupted run (``resumed_chunks``).
    """
    folder.mkdir(parents=True, exist_ok=True)
    chunks = [problems[i : i + chunk_size] for i in range(0, len(problems), chunk_size)]
    frames, samples = [], []
    cost = {"scoring_seconds": 0.0, "forward_tokens": 0, "generated_tokens": 0}
    found = 0
    bar = tqdm(total=len(problems), desc="scoring", disable=not progress)
    for i, chunk in enumerate(chunks):
        vals, meta, samp = (folder / f"chunk-{i:05d}{ext}" for ext in (".parquet", ".json", ".samples.jsonl"))
        if meta.exists():
            found += 1
            rec = json.loads(meta.read_text())
        else:
            out = score_chunk(chunk)
            df = pd.DataFrame(out.columns)
            df.insert(0, "id", [p.id for p in chunk])
            rec = {"seconds": out.seconds, "forward_tokens": out.forward_tokens,
                   "generated_tokens": out.generated_tokens, "n": len(chunk)}
            lines = "".join(json.dumps(s) + "\n" for s in out.samples)
            _atomic_write(vals, lambda t, df=df: df.to_parquet(t, index=False))
            _atomic_write(samp, lambda t, lines=lines: t.write_text(lines))
            _atomic_write(meta, lambda t, rec=rec: t.write_text(json.dumps(rec)))  # marks the chunk done
        frames.append(pd.read_parquet(vals))
        samples.extend(json.loads(line) for line in samp.read_text().splitlines() if line)
        cost["scoring_seconds"] += rec["seconds"]
        cost["forward_tokens"] += rec["forward_tokens"]
        cost["generated_tokens"] += rec["generated_tokens"]
        bar.update(len(chunk))
    bar.close()
    df = pd.concat(frames, ignore_index=True)
    if list(df["id"]) != [p.id for p in problems]:  # a stale or foreign chunk: refuse it
        raise RuntimeError(f"score cache {folder} does not match the pool; delete it and rerun")
    status = {"cached": found == len(chunks), "resumed_chunks": found if 0 < found < len(chunks) else 0}
    return df, cost, samples, status
