"""Prompts: the only trainable input-side modules; the backbone is never changed.

Four kinds, each one config dataclass (validated in ``__post_init__``) and one
small ``nn.Module``:

* :class:`SoftPrompt` (``soft_prompt``): ``n_tokens`` learned embeddings
  [n, dim] for a text backbone, initialised at random, from sampled vocabulary
  rows, or from the embeddings of a text.  Used for the task prompt
  (prepended), for FairIJ's repaired prompt and for text fairness triggers
  (appended).
* :class:`ConditionalPrompt` (``conditional_prompt``): ``n_tokens`` embeddings
  written per input by a small generator (attention pooling over the input's
  embeddings, a bottleneck) on top of a static soft prompt; FairReprogram's
  ``conditional`` text trigger.
* :class:`PixelBorder` (``pixel_border``): the image is resized into the
  centre of a square and a learned frame of ``width`` pixels fills the margin.
* :class:`PixelPatch` (``pixel_patch``): a learned k x k patch overwrites one
  corner of the image.

Pixel prompts keep their values in [0, 1] by storing logits and rendering
``sigmoid(logits)``; ``render()`` gives the trigger as a uint8 image for reports.

Insertion rule (:func:`insert_tokens`, shared by every text prompt):
``prepend`` puts the tokens first; ``append`` needs right-padded batches and
puts each row's tokens after its last real token and, with
``before_last=True``, before its closing special token (BERT's ``[SEP]``);
padding stays at the end, masked; left padding is refused.

Every prompt saves as ``<stem>.safetensors`` + ``<stem>.json`` with ``save``;
:func:`load_prompt` reads either back (checked: kind, config, sha256, shapes),
and :func:`check_fits` refuses a prompt that does not fit a backbone.
"""

from __future__ import annotations

from fairprompt.prompts.artifact import PROMPT_KINDS, check_fits, load_prompt, prompt_paths, save_prompt
from fairprompt.prompts.base import PromptModule
from fairprompt.prompts.conditional import ConditionalPrompt, ConditionalPromptConfig, conditional_parameters
from fairprompt.prompts.insert import InsertedInputs, insert_tokens
from fairprompt.prompts.pixel import PixelBorder, PixelBorderConfig, PixelPatch, PixelPatchConfig
from fairprompt.prompts.soft import SoftPrompt, SoftPromptConfig

__all__ = [
    "PROMPT_KINDS",
    "ConditionalPrompt",
    "ConditionalPromptConfig",
    "InsertedInputs",
    "PixelBorder",
    "PixelBorderConfig",
    "PixelPatch",
    "PixelPatchConfig",
    "PromptModule",
    "SoftPrompt",
    "SoftPromptConfig",
    "check_fits",
    "conditional_parameters",
    "insert_tokens",
    "load_prompt",
    "prompt_paths",
    "save_prompt",
]
