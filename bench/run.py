"""The front door: ``python bench/run.py [-m] [group=option ...] [key=value ...]``.

Examples::

    python bench/run.py --cfg job                               # print the resolved config
    python bench/run.py stage=plan experiment=table5_selection  # validate, load nothing
    python bench/run.py stage=select selector=ufo               # score + select only
    python bench/run.py -m selector=ufo,multisample,random      # the main sweep + report

Each job writes its own folder under ``results/runs/<experiment>/``, named by its identity
(``ufo_rl/identity.py``); after a sweep the report callback rebuilds ``results/tables`` and
``results/figures`` from every finished folder. Bad input ends in one line on stderr and exit
status 2, and the job takes back every file and folder it created (``ufo_rl/io.py``); an
unexpected error keeps its traceback, since that is a bug. Ctrl-C (SIGINT) ends in the one line
``interrupted; rerun the same command to resume`` and exit status 130: what the job finished
stays (score cache chunks, training checkpoints, written files), a folder it left empty goes, and
``meta.json`` says ``done`` only once the whole job is, so the same command picks up from there.
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from ufo_rl.errors import UserError
from ufo_rl.hydra_conf import register_configs, to_run_config

_job_started = False
INTERRUPTED = "interrupted; rerun the same command to resume"
INTERRUPTED_STATUS = 130  # 128 + SIGINT, what a shell reports for a command stopped by Ctrl-C


def _config_error_line(e: BaseException) -> str:
    """Hydra's several-line report of a bad override as one line."""
    from omegaconf.errors import OmegaConfBaseException

    text = str(e) + (f"\n{e.__cause__}" if isinstance(e.__cause__, OmegaConfBaseException) else "")
    parts = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("Config search path:"):
            break
        if line and not line.startswith(("full_key:", "reference_type=", "object_type=", "See https://")):
            parts.append(line.rstrip("."))
    return "; ".join(parts).replace(":; ", ": ")


def _quote_example(override: str, argv: list[str]) -> str:
    """The override as it should be typed: its value quoted, the whole argument in shell quotes.

    A value that the shell split at a space arrives as ``key=first`` followed by an argument
    without ``=``; the example then joins them again.

    >>> print(_quote_example("dataset.path=über.jsonl", []))
    'dataset.path="über.jsonl"'
    >>> print(_quote_example("file.jsonl", ["stage=plan", "dataset.path=my", "file.jsonl"]))
    'dataset.path="my file.jsonl"'
    """
    if "=" not in override and override in argv:
        i = argv.index(override)
        if i > 0 and "=" in argv[i - 1]:
            override = f"{argv[i - 1]} {override}"
    if "=" not in override:
        return shlex.quote('key="value with spaces"')
    key, value = override.split("=", 1)
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        value = value[1:-1]
    quote = "'" if '"' in value else '"'
    return shlex.quote(f"{key}={quote}{value}{quote}")


def _parse_reason(e) -> str:
    """What Hydra's override grammar stumbled on, short: a lexer error names the character."""
    lines = str(e).splitlines()
    prefix = "LexerNoViableAltException: "
    if lines[0].startswith(prefix) and len(lines) > 1 and "^" in lines[1]:
        at = lines[1].index("^") - len(prefix)  # Hydra puts the caret under the character
        if 0 <= at < len(e.override):
            return f"unexpected character {e.override[at]!r} at position {at + 1}"
    reason = _config_error_line(e)
    head = f"Error parsing override '{e.override}'; "
    return reason[len(head):] if reason.startswith(head) else reason


def _override_parse_line(e) -> str:
    """Hydra's lexer or parser error for one override (spaces, non-ASCII, brackets in an unquoted
    value) as one line naming the override and showing it quoted."""
    reason = _parse_reason(e)
    return (f"cannot parse the override {e.override!r} ({reason}); quote a value that holds spaces, "
            f"non-ASCII letters or brackets, e.g. {_quote_example(e.override, sys.argv[1:])}")


def _one_line_config_errors() -> None:
    """A bad override (unknown key or option, wrong type, bad syntax) is bad input like any other:
    one ``error:`` line and exit status 2, not Hydra's report over several lines and status 1.
    Only errors raised before the job starts are converted; a job's own error keeps Hydra's report."""
    import hydra._internal.utils as hydra_utils
    from hydra.errors import ConfigCompositionException, OverrideParseException

    original = hydra_utils.run_and_report

    def run_and_report(func):
        def guarded():
            try:
                return func()
            except (ConfigCompositionException, OverrideParseException) as e:
                if _job_started or hydra_utils._is_env_set("HYDRA_FULL_ERROR"):
                    raise
                line = _override_parse_line(e) if isinstance(e, OverrideParseException) else _config_error_line(e)
                print(f"error: {line}", file=sys.stderr)
                sys.exit(2)

        return original(guarded)

    hydra_utils.run_and_report = run_and_report


register_configs()


def run_job(cfg: DictConfig) -> dict:
    from hydra.core.hydra_config import HydraConfig

    from ufo_rl.identity import remove_new_folders
    from ufo_rl.io import LEDGER
    from ufo_rl.pipeline import Job

    LEDGER.reset()
    run_dir = Path(HydraConfig.get().runtime.output_dir) if HydraConfig.initialized() else None
    try:
        rc = to_run_config(cfg)
        run_dir = Path(rc.run_dir)
        out = Job(rc).run()
        if rc.stage == "plan":
            print(json.dumps(out["plan"], indent=2))
            remove_new_folders(run_dir)  # a plan writes nothing: only Hydra's empty folder goes
        else:
            print(f"[ufo-rl] done: {run_dir}")
        return out
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        LEDGER.rollback()  # what this job wrote, and nothing else
        if run_dir is not None:
            remove_new_folders(run_dir)
        sys.exit(2)
    except KeyboardInterrupt:
        # what the job wrote is kept for the rerun to resume from; a folder it left empty goes
        if run_dir is not None:
            remove_new_folders(run_dir)
        raise


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> None:
    global _job_started
    _job_started = True
    run_job(cfg)


def interrupted() -> None:
    """Ctrl-C: one line and exit status 130, not the traceback of wherever the job was."""
    sys.stderr.flush()
    print(INTERRUPTED, file=sys.stderr)
    sys.exit(INTERRUPTED_STATUS)


if __name__ == "__main__":
    _one_line_config_errors()
    try:
        main()
    except KeyboardInterrupt:
        interrupted()
