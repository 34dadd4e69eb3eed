"""Model I/O in one place: resolve a name, load model and tokenizer, build chat prompts."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import torch

from ufo_rl.config import ModelConfig
from ufo_rl.errors import UserError

TINY = "tiny"
SMOLLM2 = "smollm2"


def resolve_model_path(cfg: ModelConfig, progress: bool = True) -> str:
    """A loadable name: the built tiny model's folder, the converted SmolLM2 folder, an absolute
    local folder, or a hub id."""
    if cfg.name_or_path == TINY:
        from ufo_rl.tiny_model import ensure_tiny_model

        return str(ensure_tiny_model(cfg.tiny, cfg.cache_dir, progress=progress, shipped=cfg.shipped_tiny,
                                     device=str(resolve_device(cfg))))
    if cfg.name_or_path == SMOLLM2:
        from ufo_rl.smollm2 import ensure_smollm2

        return str(ensure_smollm2(cfg.cache_dir))
    p = Path(cfg.name_or_path).expanduser()
    if p.exists():
        if not (p / "config.json").exists():
            raise UserError(f"model folder {p} has no config.json; point model.name_or_path at a "
                            "Hugging Face checkpoint folder")
        return str(p.resolve())
    if cfg.name_or_path.startswith(("/", ".", "~")):
        raise UserError(f"model folder {cfg.name_or_path} does not exist; check model.name_or_path")
    return cfg.name_or_path  # a hub id; from_pretrained reports if it cannot be had


def model_fingerprint(path: str) -> str:
    """Content hash of a local checkpoint (config + weight files), or the hub id as given."""
    p = Path(path)
    if not p.is_dir():
        return f"hub:{path}"
    h = hashlib.sha256()
    for f in sorted(p.iterdir()):
        if f.suffix in {".json", ".safetensors", ".bin", ".jinja", ".model"} and f.is_file():
            h.update(f.name.encode())
            with open(f, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
    return h.hexdigest()[:16]


def resolve_device(cfg: ModelConfig) -> torch.device:
    """``model.device``; ``auto`` is this process's own device under a multi-process launch
    (``cuda:<local rank>``, ufo_rl/dist.py), else CUDA when visible, else the CPU."""
    if cfg.device == "auto":
        from ufo_rl import dist

        if dist.world_size() > 1:
            return dist.device()
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if cfg.device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"model.device={cfg.device} but no CUDA device is visible; use model.device=cpu")
    return torch.device(cfg.device)


def resolve_dtype(cfg: ModelConfig, device: torch.device) -> torch.dtype:
    names = {"float32": torch.float32, "fp32": torch.float32, "float16": torch.float16,
             "fp16": torch.float16, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}
    if cfg.dtype == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    if cfg.dtype not in names:
        raise UserError(f"unknown model.dtype {cfg.dtype!r}; use one of auto, {', '.join(names)}")
    return names[cfg.dtype]


def load_tokenizer(path: str, cfg: ModelConfig):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path, trust_remote_code=cfg.trust_remote_code)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    return tok


def apply_threads(cfg: ModelConfig) -> None:
    """Set torch's CPU thread count to ``model.threads`` when the model runs on the CPU (null:
    leave torch's default).

    On a GPU the setting is left alone: the knob sizes the CPU's matrix work, and one thread
    there only slows the host side. On an H200 with the tiny model, GRPO's first four steps took
    22.3 s with one thread against 13.2 s with 16, the warm steps alike (README, "On a GPU").
    """
    if cfg.threads and resolve_device(cfg).type == "cpu":
        torch.set_num_threads(cfg.threads)


def load_model(cfg: ModelConfig, progress: bool = True):
    """Load (model, tokenizer, info) in eval mode; ``info`` holds path, fingerprint, load seconds."""
    from transformers import AutoModelForCausalLM

    apply_threads(cfg)
    path = resolve_model_path(cfg, progress)
    device = resolve_device(cfg)
    dtype = resolve_dtype(cfg, device)
    t0 = time.perf_counter()
    try:
        tok = load_tokenizer(path, cfg)
        model = AutoModelForCausalLM.from_pretrained(
            path, dtype=dtype, trust_remote_code=cfg.trust_remote_code
        ).to(device)
    except OSError as e:
        raise UserError(f"cannot load model {path!r}: {str(e).splitlines()[0]} "
                        "(offline? give a local folder in model.name_or_path)") from e
    model.eval()
    if device.type == "cuda":
        torch.cuda.synchronize()
    info = {
        "model": path,
        "model_fingerprint": model_fingerprint(path),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "dtype": str(dtype).replace("torch.", ""),
        "torch_threads": torch.get_num_threads(),
        "load_seconds": time.perf_counter() - t0,
    }
    return model, tok, info


def _messages(question: str, system_prompt: str | None) -> list[dict]:
    return ([{"role": "system", "content": system_prompt}] if system_prompt else []) + [
        {"role": "user", "content": question}
    ]


def template_keeps_system(tok) -> bool:
    """Whether the tokenizer has a chat template that renders a system message (the tiny
    model's drops it; a template that refuses the role counts as not keeping it)."""
    if not getattr(tok, "chat_template", None):
        return False
    mark = "ufo-rl system probe 7f3a"
    try:
        text = tok.apply_chat_template(_messages("q", mark), tokenize=False, add_generation_prompt=True)
    except Exception:  # e.g. a template that raises on a system role
        return False
    return mark in text


def build_continuation(tok, question: str, system_prompt: str | None, assistant_text: str) -> str:
    """The chat up to and including ``assistant_text`` as the start of the assistant's turn, with
    no end-of-turn after it (``continue_final_message``: the authors' scoring string). The
    template strips the assistant text's trailing whitespace."""
    msgs = _messages(question, system_prompt) + [{"role": "assistant", "content": assistant_text}]
    try:
        return tok.apply_chat_template(msgs, tokenize=False, continue_final_message=True)
    except ValueError as e:
        raise UserError(f"the chat template cannot continue an assistant message ({str(e).splitlines()[0]}); "
                        "use selector.tokenization=split") from e


def build_prompt(tok, question: str, system_prompt: str | None = None) -> str:
    """The chat-formatted prompt that ends where the assistant starts to write."""
    msgs = _messages(question, system_prompt)
    if getattr(tok, "chat_template", None):
        return tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    sys = f"{system_prompt}\n\n" if system_prompt else ""
    return f"{sys}Question: {question}\nAnswer: "
