"""Hydra glue: the schema of ``ufo_rl/config.py`` registered for composition, the one conversion
of a composed config into it, and the resolvers that name run folders.

Kept apart from the schema so that the dataclasses import nothing of the project: the resolvers
need the run identity (``ufo_rl/identity.py``), which asks the scorer registry for a selector's
own rule, and the registry's scorers load models whose options are those dataclasses.
"""

from __future__ import annotations

import os

from omegaconf import MISSING, OmegaConf

from ufo_rl.config import RunConfig, config_problem
from ufo_rl.identity import job_name, note_existing


def register_configs(conf_dir=None) -> None:
    """Register the schema Hydra composes onto, with the group options' mandatory values.

    OmegaConf keeps the schema's default when ``???`` is merged onto it, so ``model=hf`` without
    ``model.name_or_path`` would quietly run the tiny model. The registered schema therefore
    carries ``???`` at every key that some option file of ``conf_dir`` (default: the project's
    ``conf/``) leaves mandatory; every other option of that group sets the key itself.
    """
    from pathlib import Path

    from hydra.core.config_store import ConfigStore

    conf_dir = Path(conf_dir) if conf_dir else Path(__file__).resolve().parents[1] / "conf"
    schema = OmegaConf.structured(RunConfig)

    def walk(node: dict, prefix: str) -> None:
        for key, value in node.items():
            if isinstance(value, dict):
                walk(value, f"{prefix}{key}.")
            elif value == MISSING and OmegaConf.select(schema, f"{prefix}{key}", default=None) is not None:
                OmegaConf.update(schema, f"{prefix}{key}", MISSING)

    for path in sorted(conf_dir.glob("*/*.yaml")):
        group = path.parent.name
        if group in schema and OmegaConf.is_dict(schema[group]):
            walk(OmegaConf.to_container(OmegaConf.load(path), resolve=False), f"{group}.")
    ConfigStore.instance().store(name="base_config", node=schema)


def to_run_config(cfg) -> RunConfig:
    """Convert a composed DictConfig once; raises UserError on unknown, missing or mistyped values,
    and on a value out of its range (:func:`ufo_rl.config.config_problem`).

    The composed config is flattened to plain containers first, so a key that Hydra let through
    with ``+key=value`` is still checked against the schema here, and a mandatory value left
    unset (``???``, e.g. ``model=hf`` without ``model.name_or_path``) fails instead of quietly
    keeping the schema's default.
    """
    from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

    from ufo_rl.errors import UserError

    try:
        plain = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
        rc = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(RunConfig), plain))
    except MissingMandatoryValue as e:
        key = e.full_key or "a key"
        raise UserError(f"{key} is mandatory and not set; give it on the command line ({key}=...)") from e
    except OmegaConfBaseException as e:
        msg = str(e).splitlines()[0]
        where = f" ({e.full_key})" if getattr(e, "full_key", None) else ""
        raise UserError(f"invalid config{where}: {msg}; check the key's name and type "
                        "(python bench/run.py --cfg job prints the config)") from e
    problem = config_problem(rc)  # a value out of its range (ufo_rl/config.py)
    if problem:
        raise UserError(problem)
    return rc


# ---- Hydra resolvers ---------------------------------------------------------------------------
# Hydra names run folders through these (conf/config.yaml): ``<selector>-<rule>-seed<seed>-<identity>``
# of the job's own config (ufo_rl/identity.py). Registered on import, so that a launcher's worker
# process, which imports this module to run a job, has them too.

def _name_from_root(root) -> str:
    plain = OmegaConf.to_container(root, resolve=False)
    plain.pop("hydra", None)
    plain["run_dir"] = "."
    try:
        return job_name(to_run_config(OmegaConf.create(plain)))
    except Exception:  # the job reports what is wrong with the config in one line
        return "invalid-config"


def _run_dir(base: str, *, _root_) -> str:
    path = os.path.join(base, _name_from_root(_root_))
    note_existing(path)
    return path


def _subdir(base: str, *, _root_) -> str:
    name = _name_from_root(_root_)
    note_existing(os.path.join(base, name))
    return name


def register_resolvers() -> None:
    OmegaConf.register_new_resolver("ufo_rl.run_dir", _run_dir, replace=True)
    OmegaConf.register_new_resolver("ufo_rl.subdir", _subdir, replace=True)


register_resolvers()
