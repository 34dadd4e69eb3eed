"""Score cache with resume.

The key is a hash of what determines the scores: the model's content fingerprint, the pool's
content fingerprint, the scorer's name and the config fields that change its values, and the
prompt format (system prompt, answer prefix, generation cap). A sweep over selectors and seeds
therefore scores each pool once per method. The pool is scored in chunks; each finished chunk
is written atomically (values, then its cost record as the completion marker), so an
interrupted run resumes at the first missing chunk and the summed cost stays the true cost.
The cost record carries the row count and the sha256 of the chunk's files: a chunk that does
not match them (truncated, torn, from another pool) is recomputed, with a one-line warning.

Under a multi-process launch (:func:`score_sharded`, ufo_rl/dist.py) the chunks stay the same
512-prompt slices of the pool: rank 0 finds the missing ones, every rank scores every
``world``-th of them, rank 0 gathers the results and writes them as one process would, and every
rank gets the whole table. A chunk is scored by the same code on the same rows whichever rank
scores it, so the scores, and the selection, are those of a single process.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from ufo_rl.io import atomic_write, ensure_dir, write_text
from ufo_rl.problems import Problem
from ufo_rl.scorers import ScoreChunk, Scorer


def cache_key(scorer: Scorer, selector_cfg, model_cfg, model_fp: str, data_fp: str) -> str:
    fields = {f: getattr(selector_cfg, f) for f in scorer.key_fields}
    if "tokenization" in fields:  # the resolved value: auto means joint or split by model
        from ufo_rl.scorers import tokenization_for_key

        fields["tokenization"] = tokenization_for_key(selector_cfg, model_cfg)
    material = {
        "scorer": scorer.name,
        "fields": fields,
        "model": model_fp,
        "data": data_fp,
        "system_prompt": model_cfg.system_prompt,
        "answer_prefix": model_cfg.answer_prefix,
        "max_new_tokens": model_cfg.max_new_tokens,
        "stop": list(model_cfg.stop),
        "dtype": model_cfg.dtype,
    }
    if scorer.samples and model_cfg.generation_backend != "hf":
        # another engine draws other samples (and costs other seconds): its own entry; hf keeps
        # the key it had before the backend was part of it
        material["generation_backend"] = model_cfg.generation_backend
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()[:16]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _read_chunk(vals: Path, meta: Path, samp: Path, chunk: Sequence[Problem]):
    """(values, samples, cost record) of a finished chunk, or a reason why it cannot be used."""
    try:
        rec = json.loads(meta.read_text())
        if rec.get("n") != len(chunk):
            return f"holds {rec.get('n')} rows, not {len(chunk)}"
        for path, key in ((vals, "sha256"), (samp, "samples_sha256")):
            if key in rec and _digest(path) != rec[key]:
                return f"{path.name} does not match its checksum"
        df = pd.read_parquet(vals)
        samples = [json.loads(line) for line in samp.read_text().splitlines() if line]
    except (OSError, ValueError) as e:  # absent, torn, not JSON, not parquet
        return f"unreadable ({type(e).__name__})"
    if list(df["id"]) != [p.id for p in chunk]:
        return "holds other problems"
    return df, samples, rec


CHUNK_SIZE = 512


def split(problems: Sequence[Problem], chunk_size: int = CHUNK_SIZE) -> list[Sequence[Problem]]:
    """The pool's chunks: consecutive slices of ``chunk_size`` (the last one shorter)."""
    return [problems[i : i + chunk_size] for i in range(0, len(problems), chunk_size)]


def _paths(folder: Path, i: int) -> tuple[Path, Path, Path]:
    """(values, cost record, samples) of chunk ``i``."""
    return tuple(folder / f"chunk-{i:05d}{ext}" for ext in (".parquet", ".json", ".samples.jsonl"))


def missing_chunks(folder: Path, chunks: Sequence[Sequence[Problem]]) -> list[int]:
    """Indices of the chunks the cache cannot give back (absent, unfinished or damaged)."""
    return [i for i, chunk in enumerate(chunks)
            if not _paths(folder, i)[1].exists() or isinstance(_read_chunk(*_paths(folder, i), chunk), str)]


def score_with_cache(
    folder: Path,
    problems: Sequence[Problem],
    score_chunk: Callable[[Sequence[Problem]], ScoreChunk],
    chunk_size: int = CHUNK_SIZE,
    progress: bool = True,
    report: Callable[[int, int, bool], None] | None = None,
) -> tuple[pd.DataFrame, dict, list[dict], dict]:
    """Score ``problems`` chunk by chunk into ``folder``; returns (columns, cost, samples, status).

    ``status`` says whether every chunk came from the cache (``cached``), how many chunks were
    resumed from an earlier, interrupted run (``resumed_chunks``) and how many damaged chunks
    were recomputed (``repaired_chunks``). ``report(done, total, fresh)`` is called after each
    chunk, ``fresh`` false for a chunk read from the cache (ufo_rl/progress.py).
    """
    ensure_dir(folder)
    chunks = split(problems, chunk_size)
    frames, samples = [], []
    cost = {"scoring_seconds": 0.0, "forward_tokens": 0, "generated_tokens": 0}
    found = repaired = 0
    bar = tqdm(total=len(problems), desc="scoring", disable=not progress)
    for i, chunk in enumerate(chunks):
        vals, meta, samp = _paths(folder, i)
        got = _read_chunk(vals, meta, samp, chunk) if meta.exists() else None
        if isinstance(got, str):
            print(f"warning: score cache chunk {meta} {got}; recomputing it", file=sys.stderr)
            repaired += 1
            got = None
        fresh = got is None
        if got is not None:
            found += 1
            df, samp_rows, rec = got
        else:
            out = score_chunk(chunk)
            df = pd.DataFrame(out.columns)
            df.insert(0, "id", [p.id for p in chunk])
            samp_rows = out.samples
            atomic_write(vals, lambda t, df=df: df.to_parquet(t, index=False))
            write_text(samp, "".join(json.dumps(s) + "\n" for s in samp_rows))
            rec = {"seconds": out.seconds, "forward_tokens": out.forward_tokens,
                   "generated_tokens": out.generated_tokens, "n": len(chunk),
                   "sha256": _digest(vals), "samples_sha256": _digest(samp)}
            write_text(meta, json.dumps(rec))  # written last: marks the chunk done
        frames.append(df)
        samples.extend(samp_rows)
        cost["scoring_seconds"] += rec["seconds"]
        cost["forward_tokens"] += rec["forward_tokens"]
        cost["generated_tokens"] += rec["generated_tokens"]
        bar.update(len(chunk))
        if report is not None:
            report(bar.n, len(problems), fresh)
    bar.close()
    df = pd.concat(frames, ignore_index=True)
    status = {"cached": found == len(chunks), "resumed_chunks": found if 0 < found < len(chunks) else 0,
              "repaired_chunks": repaired}
    return df, cost, samples, status


def score_sharded(
    folder: Path,
    problems: Sequence[Problem],
    score_chunk: Callable[[Sequence[Problem]], ScoreChunk],
    chunk_size: int = CHUNK_SIZE,
    progress: bool = True,
    report: Callable[[int, int, bool], None] | None = None,
) -> tuple[pd.DataFrame, dict, list[dict], dict]:
    """:func:`score_with_cache` with the missing chunks shared out among the processes of a launch.

    Only rank 0 reads and writes ``folder``; every rank returns the same (columns, cost, status),
    and the samples on rank 0 only (no other rank writes them). Under one process this is
    :func:`score_with_cache` itself.
    """
    from ufo_rl import dist

    if dist.world_size() == 1:
        return score_with_cache(folder, problems, score_chunk, chunk_size, progress, report)
    chunks = split(problems, chunk_size)
    main = dist.is_main_process()
    todo = dist.broadcast(missing_chunks(folder, chunks) if main else None)
    mine = {i: score_chunk(chunks[i]) for i in dist.shard(todo, dist.rank(), dist.world_size())}
    scored = {_ids(chunks[i]): out for part in dist.gather(mine) for i, out in part.items()}
    result, samples = None, []
    if main:  # what the ranks scored stands in for the scorer; a chunk damaged since is redone here
        df, cost, samples, status = score_with_cache(
            folder, problems, lambda chunk: scored.get(_ids(chunk)) or score_chunk(chunk), chunk_size, progress,
            report)
        result = (df, cost, status)
    df, cost, status = dist.broadcast(result)
    return df, cost, samples, status


def _ids(chunk: Sequence[Problem]) -> tuple[str, ...]:
    return tuple(p.id for p in chunk)
