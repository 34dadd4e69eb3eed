"""The front door: ``python bench/run.py [-m] [group=option ...] [key=value ...]``.

Examples::

    python bench/run.py --cfg job                               # print the resolved config
    python bench/run.py stage=plan experiment=table5_selection  # validate, load nothing
    python bench/run.py stage=select selector=ufo               # score + select only
    python bench/run.py -m selector=ufo,multisample,random      # the main sweep + report

Each job writes its own folder under ``results/runs/<experiment>/``; after a sweep the report
callback rebuilds ``results/tables`` and ``results/figures`` from every finished folder.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from ufo_rl.config import register_configs, to_run_config
from ufo_rl.errors import UserError

register_configs()


def run_job(cfg: DictConfig) -> dict:
    from ufo_rl.pipeline import Job

    run_dir = None
    try:
        rc = to_run_config(cfg)
        run_dir = Path(rc.run_dir)
        out = Job(rc).run()
        if rc.stage == "plan":
            print(json.dumps(out["plan"], indent=2))
            _discard_unfinished(run_dir)  # a plan writes nothing
        else:
            print(f"[ufo-rl] done: {run_dir}")
        return out
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        _discard_unfinished(run_dir)  # leave no half-written results
        sys.exit(2)


def _discard_unfinished(run_dir: Path | None) -> None:
    """Remove this job's folder unless it holds a finished run or checkpoints to resume from."""
    if run_dir is not None and run_dir.exists() and not (run_dir / "meta.json").exists() \
            and not (run_dir / "checkpoints").exists():
        shutil.rmtree(run_dir, ignore_errors=True)


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> None:
    run_job(cfg)


if __name__ == "__main__":
    main()
