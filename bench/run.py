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
unexpected error keeps its traceback, since that is a bug.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from ufo_rl.hydra_conf import register_configs, to_run_config
from ufo_rl.errors import UserError

_job_started = False


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
                print(f"error: {_config_error_line(e)}", file=sys.stderr)
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


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> None:
    global _job_started
    _job_started = True
    run_job(cfg)


if __name__ == "__main__":
    _one_line_config_errors()
    main()
