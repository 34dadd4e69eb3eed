"""Bad input through the real CLI: one ``error:`` line, exit status 2, and nothing left behind.

Every case runs ``python bench/run.py ...`` in a fresh temporary folder that already holds files
(a results folder with a file and a finished-looking run folder, a regular file ``afile``, the
input files of the cases) and asserts that the job:

- exits with status 2 and prints exactly one non-blank line on stderr, ``error: ...``, naming the
  culprit (a file and line, a key or a value);
- prints no traceback;
- leaves the folder tree (cache folder included) exactly as it found it: nothing new, nothing
  removed, every file byte-identical.

Most cases are ``stage=plan`` or fail in validation before a model is loaded; the few that need a
model use a random micro model with ``stage=select``.

Beside the battery: Ctrl-C (SIGINT) in a running job ends in the one line ``interrupted; rerun the
same command to resume`` and exit status 130, with no finished-looking or empty run folder, and
the rerun resumes; a sweep given ``hydra.sweep.dir`` elsewhere reports the folders it wrote.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import save_random_model

PROJECT_ROOT = Path(__file__).resolve().parents[1]

GOOD_ROWS = [{"question": f"What is {i} + {i}?", "answer": str(2 * i)} for i in range(1, 4)]
# the finished job in an explicit folder that the "holds another run" case aims at
PRIOR_RUN = ["stage=select", "selector.fraction=0.2", "dataset.n_pool=20", "dataset.n_test=5", "progress=false"]


@pytest.fixture(scope="module")
def micro_model(tmp_path_factory):
    return save_random_model(tmp_path_factory.mktemp("m") / "micro")


def cli(tmp: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "bench" / "run.py"), *args],
        capture_output=True, text=True, cwd=tmp, timeout=300,
    )


def snapshot(root: Path) -> dict[str, str]:
    """Every path under ``root`` -> "dir" or the sha256 of the file's bytes."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if p.is_symlink():
            out[rel] = f"link:{p.readlink()}"
        elif p.is_dir():
            out[rel] = "dir"
        else:
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def build_inputs(tmp: Path, model: Path) -> None:
    """The files the cases read, and pre-existing files that must survive every case."""
    inp = tmp / "in"
    inp.mkdir()
    jsonl(inp / "good.jsonl", GOOD_ROWS)
    good = json.dumps(GOOD_ROWS[0])
    (inp / "latin1.jsonl").write_bytes(
        (good + "\n").encode() + '{"question": "Combien coûte un café?", "answer": "2"}\n'.encode("latin-1"))
    import pandas as pd

    pd.DataFrame(GOOD_ROWS).to_parquet(inp / "pool.parquet", index=False)
    (inp / "empty.jsonl").write_text("")
    jsonl(inp / "malformed.jsonl", [good, good, '{"question": "1+1", "answer": }'])
    jsonl(inp / "noanswer.jsonl", [good, '{"question": "1+1", "solution": "2"}'])
    jsonl(inp / "nullanswer.jsonl", [good, '{"question": "1+1", "answer": null}'])
    jsonl(inp / "nananswer.jsonl", [good, '{"question": "1+1", "answer": NaN}'])
    jsonl(inp / "boolanswer.jsonl", [good, '{"question": "1+1", "answer": true}'])
    jsonl(inp / "notobject.jsonl", [good, "[1, 2]"])
    jsonl(inp / "allbad.jsonl", ['{"question": "1+1", "answer": null}', '{"question": "2+2", "answer": null}'])
    import gzip

    (inp / "pool.jsonl.gz").write_bytes(gzip.compress((good + "\n").encode()))
    (inp / "notok").mkdir()  # a model folder with a config but no tokenizer
    shutil.copy(model / "config.json", inp / "notok" / "config.json")
    (inp / "noconfig").mkdir()  # a model folder with a tokenizer but no config
    shutil.copy(model / "tokenizer.json", inp / "noconfig" / "tokenizer.json")
    (tmp / "afile").write_text("a regular file, not a folder\n")
    res = tmp / "res"
    (res / "runs" / "default" / "old-run").mkdir(parents=True)
    (res / "keep.txt").write_text("written before the job\n")
    (res / "runs" / "default" / "old-run" / "meta.json").write_text('{"status": "running"}\n')
    foreign = tmp / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("somebody else's folder\n")


def setup_prior_run(tmp: Path, model: Path) -> None:
    """A finished stage=select job in an explicit folder (and its score cache)."""
    r = cli(tmp, *PRIOR_RUN, f"model.name_or_path={model}", f"results_dir={tmp / 'res'}",
            f"cache_dir={tmp / 'cache'}", f"hydra.run.dir={tmp / 'prior'}")
    assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp / "prior" / "meta.json").is_file()


JL = ["dataset=jsonl"]
SELECT = ["stage=select", "{model}", "dataset.n_pool=20", "dataset.n_test=5", "progress=false"]

# (case id, arguments, substrings of the error line); {tmp} is the case's folder, {in} its inputs,
# {model} becomes model.name_or_path=<micro model>. stage=plan unless the arguments set a stage.
CASES = [
    # ---- data files
    ("pool-not-utf8", [*JL, "dataset.path={in}/latin1.jsonl"], ["latin1.jsonl line 2", "not valid UTF-8"]),
    ("parquet-as-jsonl", [*JL, "dataset.path={in}/pool.parquet"], ["pool.parquet", "dataset.kind=parquet"]),
    ("jsonl-as-parquet", ["dataset=parquet", "dataset.path={in}/good.jsonl"], ["good.jsonl", "dataset.kind=jsonl"]),
    ("gzip-as-jsonl", [*JL, "dataset.path={in}/pool.jsonl.gz"], ["pool.jsonl.gz", "gzip"]),
    ("pool-is-folder", [*JL, "dataset.path={in}"], ["is a folder"]),
    ("pool-missing", [*JL, "dataset.path={in}/nope.jsonl"], ["nope.jsonl"]),
    ("pool-path-unset", [*JL], ["dataset.path is not set"]),
    ("pool-empty", [*JL, "dataset.path={in}/empty.jsonl"], ["empty.jsonl holds no rows"]),
    ("malformed-json-line", [*JL, "dataset.path={in}/malformed.jsonl"], ["malformed.jsonl line 3", "malformed JSON"]),
    ("line-not-an-object", [*JL, "dataset.path={in}/notobject.jsonl"], ["notobject.jsonl line 2", "JSON object"]),
    ("missing-answer-field", [*JL, "dataset.path={in}/noanswer.jsonl"], ["noanswer.jsonl line 2", "'answer'"]),
    ("null-answer", [*JL, "dataset.path={in}/nullanswer.jsonl"], ["nullanswer.jsonl line 2", "is null"]),
    ("nan-answer", [*JL, "dataset.path={in}/nananswer.jsonl"], ["nananswer.jsonl line 2", "NaN"]),
    ("boolean-answer", [*JL, "dataset.path={in}/boolanswer.jsonl"], ["boolanswer.jsonl line 2", "boolean"]),
    ("every-row-skipped", [*JL, "dataset.path={in}/allbad.jsonl", "dataset.on_bad_answer=skip"], ["no rows left"]),
    ("limit-over-rows", [*JL, "dataset.path={in}/good.jsonl", "dataset.limit=10"], ["dataset.limit=10"]),
    ("pool-is-a-device", [*JL, "dataset.path=/dev/null"], ["/dev/null is not a regular file", "character device"]),
    ("limit-zero", ["dataset.limit=0"], ["dataset.limit=0"]),
    ("unknown-kind", ["dataset.kind=csv"], ["dataset.kind 'csv'"]),
    ("unknown-answer-extraction", ["dataset.answer_extraction=regex"], ["answer_extraction 'regex'"]),
    ("unknown-on-bad-answer", ["dataset.on_bad_answer=ignore"], ["on_bad_answer 'ignore'"]),
    ("template-positional-field", [*JL, "dataset.path={in}/good.jsonl", "dataset.question_template='Q: {0}'"],
     ["question_template", "positional field {0}"]),
    ("template-unknown-field", [*JL, "dataset.path={in}/good.jsonl", "dataset.question_template='{body} {question}'"],
     ["missing field 'body'", "question_template"]),
    ("unknown-embedded-split", ["dataset.split=train"], ["split 'train'"]),
    ("empty-embedded-pool", ["dataset.n_pool=0"], ["dataset.n_pool=0"]),
    ("max-prompt-tokens-zero", ["dataset.max_prompt_tokens=0"], ["dataset.max_prompt_tokens must be >= 1"]),
    ("unknown-on-long-prompt", ["dataset.on_long_prompt=maybe"], ["on_long_prompt 'maybe'"]),
    ("prompt-over-cap", [*SELECT, "dataset.max_prompt_tokens=5"], ["over dataset.max_prompt_tokens=5"]),
    # ---- config keys, types and values
    ("plus-unknown-selector-key", ["+selector.unknown=1"], ["selector.unknown"]),
    ("unknown-model-key", ["model.colour=red"], ["model.colour"]),
    ("unknown-top-level-key", ["+colour=red"], ["colour"]),
    ("wrong-type", ["trainer.max_steps=many"], ["trainer.max_steps", "'many'"]),
    ("override-syntax", ["selector.fraction=[1"], ["'[1'"]),
    # an unquoted value with spaces, non-ASCII letters or brackets: the override, and how to quote it
    ("override-value-with-spaces", [*JL, "dataset.path={in}/my  file (1).jsonl"],
     ["cannot parse the override", "my  file (1).jsonl'", "quote", 'my  file (1).jsonl"\'']),
    ("override-value-non-ascii", [*JL, "dataset.path={in}/über.jsonl"],
     ["cannot parse the override", "unexpected character 'ü'", "quote", '/über.jsonl"\'']),
    ("override-split-by-the-shell", [*JL, "dataset.path={in}/my", "file.jsonl"],
     ["cannot parse the override 'file.jsonl'", "quote", '/my file.jsonl"\'']),
    ("unknown-group-option", ["model=gpt9"], ["model/gpt9"]),
    ("negative-seed", ["seed=-5"], ["seed must be >= 0, got -5"]),
    ("unknown-stage", ["stage=bogus"], ["unknown stage 'bogus'"]),
    ("unknown-selector", ["selector.name=oracle"], ["unknown selector 'oracle'"]),
    ("unknown-rule", ["selector.rule=median"], ["selector.rule 'median'"]),
    ("unknown-target", ["selector.target=question"], ["selector.target 'question'"]),
    ("fraction-zero", ["selector.fraction=0"], ["selector.fraction must be in (0, 1], got 0"]),
    ("fraction-over-one", ["selector.fraction=1.5"], ["selector.fraction must be in (0, 1], got 1.5"]),
    ("fraction-keeps-nothing", ["dataset.n_pool=5", "selector.fraction=0.01"],
     ["selector.fraction=0.01", "keeps no prompt"]),
    ("samples-zero", ["selector=multisample", "selector.k=0"], ["selector.k must be >= 1, got 0"]),
    ("bin-index-out-of-range", ["selector=multisample_bin", "selector.bin_index=10"], ["selector.bin_index", "got 10"]),
    ("bins-over-pool", ["selector=multisample", "selector.rule=bin", "dataset.n_pool=5"],
     ["pool of 5", "selector.n_bins"]),
    ("subset-under-one-step", ["stage=all", "dataset.n_pool=50"],
     ["keeps 5 of 50 prompts", "one optimizer step takes (8)"]),
    ("one-generation", ["trainer.num_generations=1"], ["trainer.num_generations must be >= 2, got 1"]),
    ("unknown-budget", ["trainer.budget=forever"], ["trainer.budget 'forever'"]),
    ("eval-k-negative", ["eval.k=-1"], ["eval.k must be >= 0, got -1"]),
    ("unknown-dtype", ["model.dtype=float8"], ["model.dtype 'float8'"]),
    ("unknown-generation-backend", ["model.generation_backend=magic"], ["generation_backend 'magic'"]),
    ("threads-negative", [*SELECT, "model.threads=-1"], ["model.threads must be >= 1", "got -1"]),
    ("threads-zero", ["model.threads=0"], ["model.threads must be >= 1", "got 0"]),
    # ---- model folders
    ("hf-without-model-path", ["model=hf"], ["model.name_or_path is mandatory"]),
    ("model-folder-missing", ["model.name_or_path={tmp}/no-such-model"], ["no-such-model does not exist"]),
    ("model-path-is-file", ["model.name_or_path={tmp}/afile"], ["afile is a file"]),
    ("model-folder-no-tokenizer", ["model.name_or_path={in}/notok"], ["notok has no tokenizer"]),
    ("model-folder-no-config", ["model.name_or_path={in}/noconfig"], ["noconfig has no config.json"]),
    # ---- output folders
    ("results-dir-empty", [*SELECT, "results_dir="], ["results_dir is empty", "set it to a folder"]),
    ("results-dir-empty-sweep", ["-m", *SELECT, "results_dir="], ["results_dir is empty", "set it to a folder"]),
    ("results-dir-blank", ["results_dir=' '"], ["results_dir is empty"]),
    ("results-under-a-file", ["results_dir={tmp}/afile/x"], ["afile"]),
    ("results-under-proc", ["results_dir=/proc/ufo-rl-results"], ["/proc"]),
    ("cache-under-a-file", [*SELECT, "cache_dir={tmp}/afile/cache"], ["cache_dir", "afile"]),
    ("cache-under-proc", [*SELECT, "cache_dir=/proc/ufo-rl-cache"], ["cache_dir", "/proc"]),
    ("run-dir-is-a-file", ["hydra.run.dir={tmp}/afile"], ["afile is an existing file"]),
    ("run-dir-foreign-folder", [*SELECT, "hydra.run.dir={tmp}/foreign"], ["foreign is not empty", "holds no run"]),
    ("run-dir-holds-another-run", [*PRIOR_RUN, "{model}", "selector.fraction=0.3", "hydra.run.dir={tmp}/prior"],
     ["prior holds another run", "selector.fraction"]),
    ("new-run-dir-removed", ["seed=-1", "hydra.run.dir={tmp}/new/run/dir"], ["seed must be >= 0"]),
]


def test_battery_is_large_and_distinct():
    ids = [c[0] for c in CASES]
    assert len(ids) >= 40 and len(set(ids)) == len(ids)
    assert len({tuple(c[1]) for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case,args,needles", CASES, ids=[c[0] for c in CASES])
def test_bad_input(tmp_path, micro_model, case, args, needles):
    build_inputs(tmp_path, micro_model)
    if case == "run-dir-holds-another-run":
        setup_prior_run(tmp_path, micro_model)
    subs = {"{tmp}": str(tmp_path), "{in}": str(tmp_path / "in")}
    argv = []
    for a in args:
        if a == "{model}":
            a = f"model.name_or_path={micro_model}"
        for k, v in subs.items():
            a = a.replace(k, v)
        argv.append(a)
    defaults = {"stage": "plan", "results_dir": tmp_path / "res", "cache_dir": tmp_path / "cache"}
    flags = [a for a in argv if a.startswith("-")]  # -m: before the overrides, where Hydra takes it
    argv = flags + [f"{k}={v}" for k, v in defaults.items() if not any(a.startswith(f"{k}=") for a in argv)] \
        + [a for a in argv if a not in flags]
    before = snapshot(tmp_path)
    # an empty results_dir would have put the run under the filesystem root
    root_runs = Path("/runs").exists()

    r = cli(tmp_path, *argv)

    assert r.returncode == 2, f"exit {r.returncode}\nstdout: {r.stdout[-2000:]}\nstderr: {r.stderr[-3000:]}"
    assert "Traceback" not in r.stdout + r.stderr, r.stderr[-3000:]
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr[-3000:]
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert Path("/runs").exists() == root_runs, "the job wrote to /runs"
    after = snapshot(tmp_path)
    assert after == before, {
        "new": sorted(set(after) - set(before)),
        "removed": sorted(set(before) - set(after)),
        "changed": sorted(k for k in set(before) & set(after) if before[k] != after[k]),
    }


# ---- Ctrl-C -----------------------------------------------------------------------------------
INTERRUPTED = "interrupted; rerun the same command to resume"


def _sigint_when(tmp: Path, args: list[str], marker, timeout: float = 180) -> tuple[int, str]:
    """Start the job, send SIGINT (what Ctrl-C sends) the moment ``marker()`` holds; (exit status,
    stderr). SIGINT is set back to its default in the child: a shell that runs a job in the
    background hands it down ignored, and Python then never raises KeyboardInterrupt."""
    import signal
    import time

    with open(tmp / "out.log", "w") as out, open(tmp / "err.log", "w") as err:
        proc = subprocess.Popen([sys.executable, str(PROJECT_ROOT / "bench" / "run.py"), *args], cwd=tmp,
                                stdout=out, stderr=err, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    t0 = time.perf_counter()
    try:
        while not marker():
            assert proc.poll() is None, f"the job ended (rc {proc.returncode}) before the marker:\n" \
                + (tmp / "err.log").read_text()[-3000:]
            assert time.perf_counter() - t0 < timeout, "the marker never appeared"
            time.sleep(0.01)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, (tmp / "err.log").read_text()


def _assert_one_interrupted_line(rc: int, stderr: str) -> None:
    assert rc == 130, f"exit {rc}\n{stderr[-3000:]}"
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr[-3000:]
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert lines[-1] == INTERRUPTED and sum(INTERRUPTED in ln for ln in lines) == 1, stderr[-3000:]


def _run_folders(results: Path) -> list[Path]:
    return sorted((results / "runs" / "default").glob("*-seed0-*"))


def test_ctrl_c_in_scoring_is_one_line_and_the_rerun_resumes(tmp_path, micro_model):
    """SIGINT after the first of four score-cache chunks: one line, exit 130, no finished run; the
    same command then resumes the scoring from the chunks kept."""
    results, cache = tmp_path / "res", tmp_path / "cache"
    args = [f"model.name_or_path={micro_model}", f"results_dir={results}", f"cache_dir={cache}", "progress=false",
            "stage=select", "dataset.n_pool=2000", "dataset.n_test=10"]
    rc, stderr = _sigint_when(tmp_path, args, lambda: any(cache.glob("ufo-*/chunk-00000.json")))
    _assert_one_interrupted_line(rc, stderr)
    [entry] = cache.glob("ufo-*")
    assert not (entry / "chunk-00003.json").exists(), "the interrupt came after scoring had finished"
    for folder in _run_folders(results):  # nothing claims to be done
        assert not (folder / "meta.json").exists()

    r = cli(tmp_path, *args)
    assert r.returncode == 0, r.stderr[-3000:]
    [folder] = _run_folders(results)
    assert json.loads((folder / "scoring.json").read_text())["resumed_chunks"] >= 1
    assert json.loads((folder / "meta.json").read_text())["status"] == "done"


def test_ctrl_c_before_anything_is_written_leaves_no_empty_run_folder(tmp_path, micro_model):
    """SIGINT while the job loads (Hydra has made its run folder, the job has written nothing):
    the empty folder goes with the job."""
    results, cache = tmp_path / "res", tmp_path / "cache"
    args = [f"model.name_or_path={micro_model}", f"results_dir={results}", f"cache_dir={cache}", "progress=false",
            "stage=select", "dataset.n_pool=2000", "dataset.n_test=10"]
    rc, stderr = _sigint_when(tmp_path, args, lambda: "| load" in (tmp_path / "out.log").read_text())
    _assert_one_interrupted_line(rc, stderr)
    for folder in _run_folders(results):
        assert any(folder.iterdir()), f"an empty run folder was left: {folder}"
        assert not (folder / "meta.json").exists()


# ---- a sweep written elsewhere ----------------------------------------------------------------


def test_a_sweep_in_another_folder_reports_the_folders_it_wrote(tmp_path):
    """hydra.sweep.dir outside <results_dir>/runs: the report reads the sweep's own folders and
    writes its tables there, leaving results_dir alone."""
    results, sweep = tmp_path / "res", tmp_path / "elsewhere" / "sweep"
    r = cli(tmp_path, "-m", "selector=random,full", "stage=select", "dataset.n_pool=20", "dataset.n_test=5",
            "progress=false", f"results_dir={results}", f"cache_dir={tmp_path / 'cache'}", f"hydra.sweep.dir={sweep}")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "report failed" not in r.stdout + r.stderr, (r.stdout + r.stderr)[-3000:]
    assert "[ufo-rl] report: " in r.stdout and f"files in {sweep}/tables" in r.stdout, r.stdout[-2000:]
    import pandas as pd

    runs = pd.read_csv(sweep / "tables" / "runs.csv")
    assert sorted(runs["selector"]) == ["full", "random"]
    assert not (results / "tables").exists()


def test_the_report_reads_results_runs_when_the_sweep_is_inside_it(tmp_path):
    from ufo_rl.hydra_callbacks import report_folders

    res = tmp_path / "res"
    assert report_folders(res, res / "runs" / "default", sweep=True) == (res / "runs", res)
    assert report_folders(res, res / "runs" / "default" / "ufo-x", sweep=False) == (res / "runs", res)
    assert report_folders(res, tmp_path / "other", sweep=True) == (tmp_path / "other", tmp_path / "other")
    assert report_folders(res, tmp_path / "other" / "run", sweep=False) is None
    assert report_folders(res, tmp_path / "res-runs", sweep=True) == (tmp_path / "res-runs", tmp_path / "res-runs")
