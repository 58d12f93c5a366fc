"""The image side: colored_digits, users' image folders, the frozen image classifier and its fixture."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from fairprompt.datasets.colored_digits import PALETTE, ColoredDigits, generate
from fairprompt.datasets.images import ImageTable, load_image_folder
from fairprompt.errors import FairpromptError
from fairprompt.models.frozen import state_sha256, trainable_parameters
from fairprompt.models.image import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    FrozenImageClassifier,
    fixture_cnn,
    from_torchvision,
    images_to_tensor,
    load_classifier,
    save_classifier,
)
from fairprompt.models.image_fixture import fixture_classifier

PIL = pytest.importorskip("PIL.Image")


@pytest.fixture(scope="module")
def digits() -> ColoredDigits:
    return generate()


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv("FAIRPROMPT_CACHE", str(root))
    return root


# --------------------------------------------------------------------------- colored_digits


def test_colored_digits_shape_and_roles(digits: ColoredDigits) -> None:
    assert digits.images.shape == (1797, 32, 32, 3) and digits.images.dtype == np.uint8
    assert list(digits.frame.columns) == ["label", "digit", "group", "split", "source_index"]
    np.testing.assert_array_equal(digits.y, (digits.frame["digit"] >= 5).astype(int))
    assert set(digits.frame["group"]) == {"red", "green"} and digits.groups == ("red", "green")
    assert (digits.label, digits.favourable_label, digits.sensitive) == ("label", 1, ("group",))
    assert len(digits.sha256) == 64


def test_colored_digits_deterministic(digits: ColoredDigits) -> None:
    again = generate()
    assert again.sha256 == digits.sha256
    np.testing.assert_array_equal(again.images, digits.images)
    pd.testing.assert_frame_equal(again.frame, digits.frame)
    other = generate(seed=1)
    assert other.sha256 != digits.sha256
    assert not np.array_equal(other.images, digits.images)
    assert generate(correlation=0.8).sha256 != digits.sha256


def test_colored_digits_split_sizes_stratified(digits: ColoredDigits) -> None:
    counts = digits.frame["split"].value_counts().to_dict()
    assert counts == {"train": 1078, "validation": 359, "test": 179, "final": 181}
    per_digit = pd.crosstab(digits.frame["digit"], digits.frame["split"])
    total = per_digit.sum(axis=1)
    for name, share in (("train", 0.6), ("validation", 0.2), ("test", 0.1), ("final", 0.1)):
        assert ((per_digit[name] - share * total).abs() <= 1.5).all(), name
    assert len(digits.split("train")) == 1078 and set(digits.split("test").frame["split"]) == {"test"}
    assert len(digits.split("final")) == 181
    with pytest.raises(FairpromptError, match="did you mean 'test'"):
        digits.split("tset")  # type: ignore[arg-type]


def _split_digest(frame: pd.DataFrame) -> str:
    import hashlib

    return hashlib.sha256(("|".join(frame["split"]) + "#" + "|".join(frame["group"])).encode()).hexdigest()


def test_colored_digits_final_split_holds_its_own_source_images(digits: ColoredDigits) -> None:
    """Split by source image: each of the 1,797 digits is one row, so no source image is in two splits; seeded."""
    frame = digits.frame
    assert frame["source_index"].is_unique and sorted(frame["source_index"]) == list(range(1797))
    sources = {name: set(frame.loc[frame["split"] == name, "source_index"]) for name in ("train", "validation", "test", "final")}
    for a in sources:
        for b in sources:
            assert a == b or not sources[a] & sources[b], (a, b)
    assert sum(map(len, sources.values())) == 1797
    assert _split_digest(generate().frame) == _split_digest(frame)
    assert sources["final"] != set(generate(seed=1).split("final").frame["source_index"])
    # a new draw, not the old split cut further: the final images come from every old split (the old test split's
    # results were published), about in proportion
    old = generate(fractions=(0.6, 0.2, 0.2)).frame["split"].to_numpy()
    was = pd.Series(old[sorted(sources["final"])]).value_counts(normalize=True)
    assert was["test"] < 0.35 and was["train"] > 0.45


def test_colored_digits_three_fractions_give_the_split_made_before_final() -> None:
    """Without a final split the generator gives, row for row and tint for tint, the split it gave before final
    existed (digests recorded from that code)."""
    old = generate(fractions=(0.6, 0.2, 0.2))
    assert old.frame["split"].value_counts().to_dict() == {"train": 1078, "test": 360, "validation": 359}
    assert _split_digest(old.frame) == "c5babe087fb49a7951085d8d198d0472a8bf9368ada68919cb31311feedb70c9"
    three = generate(groups=("red", "green", "blue"), seed=2, fractions=[0.6, 0.2, 0.2])
    assert _split_digest(three.frame) == "4f49b5a04b34363d4ca90843a1c46cafc87b2fb9eee6f20500e072be9735fdc1"


def _p(frame: pd.DataFrame, group: str, label: int) -> float:
    rows = frame[frame["label"] == label]
    return float((rows["group"] == group).mean())


@pytest.mark.parametrize("correlation", [0.9, 0.75])
def test_colored_digits_correlation_train_only(correlation: float) -> None:
    data = generate(correlation=correlation, seed=3)
    train = data.split("train").frame
    assert _p(train, "red", 1) == pytest.approx(correlation, abs=1.0 / 500)
    assert _p(train, "green", 0) == pytest.approx(correlation, abs=1.0 / 500)
    for name in ("validation", "test", "final"):
        frame = data.split(name).frame
        # independent of the label (and of the digit), and balanced
        assert _p(frame, "red", 1) == pytest.approx(0.5, abs=0.03)
        assert _p(frame, "red", 0) == pytest.approx(0.5, abs=0.03)
        by_digit = pd.crosstab(frame["digit"], frame["group"])
        assert ((by_digit["red"] - by_digit["green"]).abs() <= 1).all()
        corr = np.corrcoef(frame["label"], frame["group"] == "red")[0, 1]
        assert abs(corr) < 0.05


def test_colored_digits_options_and_errors() -> None:
    three = generate(groups=("red", "green", "blue"), image_size=16)
    assert three.images.shape == (1797, 16, 16, 3)
    train = three.split("train").frame
    assert set(train["group"]) == {"red", "green", "blue"}
    assert _p(train, "red", 1) == pytest.approx(0.9, abs=0.002)
    test = three.split("test").frame["group"].value_counts()
    assert test.max() - test.min() <= 10
    with pytest.raises(FairpromptError, match="did you mean 'green'"):
        generate(groups=("red", "gren"))
    with pytest.raises(FairpromptError, match="correlation"):
        generate(correlation=1.5)
    with pytest.raises(FairpromptError, match="image_size"):
        generate(image_size=4)
    for fractions in ((0.5, 0.5), (0.4, 0.2, 0.2, 0.1, 0.1), (0.5, 0.2, 0.2, 0.2), (0.6, 0.2, 0.2, 0.0)):
        with pytest.raises(FairpromptError, match=r"option 'fractions' must be four positive shares"):
            generate(fractions=fractions)
    assert set(PALETTE) >= {"red", "green"}


def test_colored_digits_every_tint_adds_counterfactual_copies(digits: ColoredDigits) -> None:
    """Each source image of the named splits comes once in every tint; the copies differ from their source in
    the tint alone, and the rows without copies stay byte for byte as without the option."""
    copied = generate(groups=("red", "green", "blue"), every_tint=["test", "final"])
    plain = generate(groups=("red", "green", "blue"))
    n = len(plain)
    assert np.array_equal(copied.images[:n], plain.images) and copied.frame.iloc[:n].equals(plain.frame)
    assert copied.sha256 != plain.sha256 and copied.settings["every_tint"] == ("test", "final")
    assert "every_tint" not in digits.settings and digits.sha256 == generate().sha256
    before = plain.frame["split"].value_counts().to_dict()
    assert copied.frame["split"].value_counts().to_dict() == {**before, "test": 3 * before["test"],
                                                              "final": 3 * before["final"]}
    for name in ("test", "final"):
        frame = copied.split(name).frame
        assert (frame.groupby("source_index")["group"].agg(lambda g: tuple(sorted(g)))
                == ("blue", "green", "red")).all()
        assert (frame.groupby("source_index")[["label", "digit"]].nunique() == 1).all().all()
    # a copy: the same strokes, background and noise in another tint
    row = n + 5
    source = int(copied.frame["source_index"].iloc[row])
    base, other = plain.images[source].astype(float), copied.images[row].astype(float)
    background = base.max(axis=2) < 40
    assert copied.frame["group"].iloc[row] != plain.frame["group"].iloc[source]
    assert np.mean(base[background] == other[background]) > 0.7  # off the strokes (faint edges aside) the same pixels
    assert np.abs(base[~background] - other[~background]).max() > 60
    assert len(generate(every_tint="validation").split("validation")) == 2 * len(digits.split("validation"))
    with pytest.raises(FairpromptError, match=r"option 'every_tint' takes held-out splits .*got 'train'"):
        generate(every_tint=["train"])
    with pytest.raises(FairpromptError, match="did you mean 'test'"):
        generate(every_tint=["tset"])


def test_colored_digits_tint_is_the_group_signal(digits: ColoredDigits) -> None:
    images = digits.images.astype(float)
    stroke = images.max(axis=3) > 100
    red = (digits.frame["group"] == "red").to_numpy()
    # strokes: red dominates for red, green for green
    mean_rgb = lambda rows: images[rows][stroke[rows]].mean(axis=0)  # noqa: E731
    assert mean_rgb(red)[0] > 2 * mean_rgb(red)[1]
    assert mean_rgb(~red)[1] > 2 * mean_rgb(~red)[0]
    # background (the corner, where the source digit has no ink): the same for both groups
    from sklearn.datasets import load_digits

    raw = load_digits().images[digits.frame["source_index"].to_numpy()]
    blank = raw[:, :2, :2].sum(axis=(1, 2)) == 0
    corner = images[:, :6, :6].reshape(len(images), -1, 3)
    for rows in (blank & red, blank & ~red):
        assert rows.sum() > 500
    np.testing.assert_allclose(corner[blank & red].mean(axis=(0, 1)), corner[blank & ~red].mean(axis=(0, 1)), atol=0.5)


def test_colored_digits_select_and_dataset(digits: ColoredDigits) -> None:
    sub = digits.select(np.arange(10))
    assert len(sub) == 10 and sub.sha256 != digits.sha256
    np.testing.assert_array_equal(sub.images, digits.images[:10])
    ds = digits.as_dataset()
    assert ds.label == "label" and ds.sensitive == ("group",) and ds.sha256 == digits.sha256
    np.testing.assert_array_equal(ds.y, digits.y)


# --------------------------------------------------------------------------- image folders


def _write_folder(root: Path, n: int = 5) -> Path:
    from PIL import Image

    (root / "img" / "sub").mkdir(parents=True)
    rows = []
    rng = np.random.default_rng(0)
    for i in range(n):
        size = (20 + i, 12 + 2 * i)
        mode = ["RGB", "RGBA", "L", "RGB", "P"][i % 5]
        pixels = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
        image = Image.fromarray(pixels).convert(mode)
        rel = f"img/sub/{i}.png" if i % 2 else f"img/{i}.png"
        image.save(root / rel)
        rows.append({"path": rel, "label": i % 2, "group": "a" if i < 3 else "b", "age": 20 + i})
    pd.DataFrame(rows).to_csv(root / "metadata.csv", index=False)
    return root / "metadata.csv"


def test_image_folder_happy_path(tmp_path: Path) -> None:
    meta = _write_folder(tmp_path)
    table = load_image_folder(metadata=meta, label_column="label", sensitive=["group"], image_size=24)
    assert isinstance(table, ImageTable) and len(table) == 5
    images = table.images()
    assert images.shape == (5, 24, 24, 3) and images.dtype == np.uint8
    np.testing.assert_array_equal(table.y, [0, 1, 0, 1, 0])
    assert table.sensitive == ("group",) and table.root == tmp_path
    lazy = load_image_folder(metadata=meta, sensitive="group", image_size=(24, 24), decode="lazy")
    assert lazy.sha256 == table.sha256
    np.testing.assert_array_equal(lazy.load([3, 1]), images[[3, 1]])
    np.testing.assert_array_equal(lazy.images(), images)
    # a different root, and absolute paths
    frame = pd.read_csv(meta)
    frame["path"] = [str(tmp_path / p) for p in frame["path"]]
    frame.to_csv(tmp_path / "elsewhere.csv", index=False)
    absolute = load_image_folder(metadata=tmp_path / "elsewhere.csv", image_size=24, root=tmp_path / "img")
    np.testing.assert_array_equal(absolute.images(), images)
    # sha256 follows the image bytes
    from PIL import Image

    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "img" / "0.png")
    assert load_image_folder(metadata=meta, image_size=24, decode="lazy").sha256 != table.sha256
    # favourable label on a text label
    frame["label"] = np.where(frame["label"] == 1, "yes", "no")
    frame.to_csv(tmp_path / "text.csv", index=False)
    text = load_image_folder(metadata=tmp_path / "text.csv", favourable_label="yes", image_size=8)
    np.testing.assert_array_equal(text.y, [0, 1, 0, 1, 0])


def test_spec_relative_image_table_and_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """data.dataset, data.images.root and model.backbone of a frozen_image spec start from the spec's folder."""
    from fairprompt.spec import load_spec
    from fairprompt.tasks import ImageTask, load_task

    folder = tmp_path / "specs"
    meta = _write_folder(folder / "pictures", n=40)
    frame = pd.read_csv(meta)
    frame["split"] = ["train"] * 20 + ["validation"] * 10 + ["test"] * 10
    frame.to_csv(folder / "table.csv", index=False)  # beside the spec: its paths start from the images root
    (folder / "classifier").mkdir()
    (folder / "spec.yaml").write_text(
        "name: rel\ndata: {dataset: table.csv, label: label, sensitive: [group], images: {root: pictures, image_size: 8}}\n"
        "model: {kind: frozen_image, backbone: classifier}\n", encoding="utf-8")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    task = load_task(load_spec(folder / "spec.yaml"))
    assert isinstance(task, ImageTask) and task.images.shape == (40, 8, 8, 3)
    assert task.dataset.source == str(folder / "table.csv") and task.backbone == str(folder / "classifier")


def test_image_folder_missing_metadata(tmp_path: Path) -> None:
    with pytest.raises(FairpromptError, match=r"image metadata file '.*nope\.csv' does not exist"):
        load_image_folder(metadata=tmp_path / "nope.csv")


def test_image_folder_empty_metadata(tmp_path: Path) -> None:
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(FairpromptError, match="empty.csv' is empty"):
        load_image_folder(metadata=tmp_path / "empty.csv")
    (tmp_path / "header.csv").write_text("path,label,group\n")
    with pytest.raises(FairpromptError, match="no data rows"):
        load_image_folder(metadata=tmp_path / "header.csv")


def test_image_folder_missing_column(tmp_path: Path) -> None:
    meta = _write_folder(tmp_path)
    with pytest.raises(FairpromptError, match=r"no sensitive column 'grup'; did you mean 'group'\?"):
        load_image_folder(metadata=meta, sensitive=["grup"])
    with pytest.raises(FairpromptError, match=r"no path column 'file'"):
        load_image_folder(metadata=meta, path_column="file")
    with pytest.raises(FairpromptError, match=r"no label column 'lable'; did you mean 'label'\?"):
        load_image_folder(metadata=meta, label_column="lable")


def test_image_folder_missing_files(tmp_path: Path) -> None:
    meta = _write_folder(tmp_path)
    (tmp_path / "img" / "sub" / "1.png").unlink()
    (tmp_path / "img" / "sub" / "3.png").unlink()
    with pytest.raises(FairpromptError, match=r"2 of 5 rows of .* point at missing image files \(first: '.*sub/1\.png'\)"):
        load_image_folder(metadata=meta)
    with pytest.raises(FairpromptError, match="image root folder"):
        load_image_folder(metadata=meta, root=tmp_path / "nowhere")


def test_image_folder_undecodable(tmp_path: Path) -> None:
    meta = _write_folder(tmp_path)
    (tmp_path / "img" / "2.png").write_bytes(b"this is not a png")
    with pytest.raises(FairpromptError, match=r"image '.*2\.png' could not be decoded"):
        load_image_folder(metadata=meta)
    lazy = load_image_folder(metadata=meta, decode="lazy")
    assert lazy.load([0, 1]).shape == (2, 32, 32, 3)
    with pytest.raises(FairpromptError, match=r"image '.*2\.png' could not be decoded"):
        lazy.images()
    truncated = (tmp_path / "img" / "0.png").read_bytes()[:60]
    (tmp_path / "img" / "2.png").write_bytes(truncated)
    with pytest.raises(FairpromptError, match=r"2\.png' could not be decoded"):
        load_image_folder(metadata=meta)


# --------------------------------------------------------------------------- FrozenImageClassifier


class AddBias(nn.Module):
    """A tiny trainable input-side prompt: adds a learned per-channel bias."""

    def __init__(self) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.bias


class Pad(nn.Module):
    """A prompt that changes the image size (like a pixel border)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.pad(x, (4, 4, 4, 4), value=0.5)


def test_backbone_frozen_through_prompt_training() -> None:
    model = from_torchvision(name="resnet18", num_classes=2, input_size=32, prompts=[AddBias(), Pad()])
    assert all(not p.requires_grad for p in model.backbone.parameters())
    assert trainable_parameters(model) == 3
    before = state_sha256(model.backbone)
    model.train()  # must not put batch norm into training mode
    assert not model.backbone.training and model.training
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    images = torch.rand(4, 3, 28, 28)
    loss = torch.nn.functional.cross_entropy(model(images), torch.tensor([0, 1, 0, 1]))
    loss.backward()
    optimizer.step()
    assert model.prompts[0].bias.grad is not None and model.prompts[0].bias.abs().sum() > 0
    assert all(p.grad is None for p in model.backbone.parameters())
    assert state_sha256(model.backbone) == before == model.backbone_sha256
    model.requires_grad_(True)
    assert trainable_parameters(model) == 3


def test_predict_proba_shape_range_and_inputs() -> None:
    torch.manual_seed(0)
    model = FrozenImageClassifier(backbone=fixture_cnn(input_size=16), input_size=16, mean=(0.5,) * 3, std=(0.25,) * 3)
    images = np.random.default_rng(0).integers(0, 256, size=(7, 20, 20, 3), dtype=np.uint8)
    proba = model.predict_proba(images=images, batch_size=3)
    assert proba.shape == (7, 2) and proba.dtype == np.float64
    assert (proba >= 0).all() and (proba <= 1).all()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(model.predict_proba(images=torch.from_numpy(images)), proba, atol=1e-6)
    np.testing.assert_allclose(model.predict_proba(images=images_to_tensor(images)), proba, atol=1e-6)
    np.testing.assert_array_equal(model.predict(images=images), proba.argmax(axis=1))
    calls: list[tuple[str, int, int]] = []
    model.predict_proba(images=images, batch_size=4, progress=lambda *a: calls.append(a))
    assert calls == [("predict", 4, 7), ("predict", 7, 7)]
    assert model.predict_proba(images=images[:0]).shape == (0, 2)
    with pytest.raises(FairpromptError, match="4-D"):
        model.predict_proba(images=images[0])
    shared = model.with_prompts([AddBias()])
    assert shared.backbone is model.backbone and len(shared.prompts) == 1


def test_torchvision_weights_and_save_load(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    model = from_torchvision(name="resnet18", num_classes=3, input_size=32)
    save_file({k: v.contiguous() for k, v in model.backbone.state_dict().items()}, str(tmp_path / "w.safetensors"))
    again = from_torchvision(name="resnet18", num_classes=3, input_size=32, weights=tmp_path / "w.safetensors")
    assert again.backbone_sha256 == model.backbone_sha256
    with pytest.raises(FairpromptError, match="same architecture and num_classes"):
        from_torchvision(name="resnet18", num_classes=2, weights=tmp_path / "w.safetensors")
    (tmp_path / "w.pt").write_bytes(b"\x80\x04")
    with pytest.raises(FairpromptError, match="pickled checkpoint"):
        from_torchvision(name="resnet18", num_classes=3, weights=tmp_path / "w.pt")
    with pytest.raises(FairpromptError, match="did you mean 'resnet18'"):
        from_torchvision(name="resnet81", num_classes=2)
    folder = save_classifier(model=model, directory=tmp_path / "saved")
    loaded = load_classifier(directory=folder)
    assert loaded.backbone_sha256 == model.backbone_sha256 and loaded.input_size == (32, 32)
    x = torch.rand(2, 3, 32, 32)
    with torch.inference_mode():
        torch.testing.assert_close(loaded(x), model(x))


# --------------------------------------------------------------------------- the fixture


@pytest.fixture(scope="module")
def tiny() -> ColoredDigits:
    data = generate(image_size=16)
    keep = np.flatnonzero(data.frame["split"].isin(["train", "validation"]).to_numpy())[:300]
    return data.select(keep)


def test_fixture_caching(tiny: ColoredDigits, cache: Path) -> None:
    model, info = fixture_classifier(data=tiny, epochs=1)
    assert info["from_cache"] is False and info["epochs"] == 1 and len(info["curve"]) == 1
    assert info["parameters"] > 0 and info["architecture"]["name"] == "fixture-cnn"
    folder = Path(info["cache_path"])
    assert folder.parent == cache / "models" and folder.name == info["cache_key"]
    assert (folder / WEIGHTS_FILE).is_file() and (folder / CONFIG_FILE).is_file()
    assert all(not p.requires_grad for p in model.backbone.parameters())
    second, info2 = fixture_classifier(data=tiny, epochs=1)
    assert info2["from_cache"] is True and info2["cache_key"] == info["cache_key"]
    assert info2["curve"] == info["curve"]
    assert second.backbone_sha256 == model.backbone_sha256 == info["backbone_sha256"]
    np.testing.assert_array_equal(second.predict_proba(images=tiny.images), model.predict_proba(images=tiny.images))
    # another seed or epoch count is another cache entry
    _, info3 = fixture_classifier(data=tiny, epochs=1, seed=1)
    assert info3["from_cache"] is False and info3["cache_key"] != info["cache_key"]
    # a corrupted weights file is refused, never half-loaded
    weights = folder / WEIGHTS_FILE
    data = bytearray(weights.read_bytes())
    data[-5] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(FairpromptError, match=r"is corrupted .*delete the folder"):
        fixture_classifier(data=tiny, epochs=1)
    weights.write_bytes(b"garbage")
    with pytest.raises(FairpromptError, match="corrupted"):
        fixture_classifier(data=tiny, epochs=1)
    (folder / CONFIG_FILE).write_text("{not json")
    with pytest.raises(FairpromptError, match="corrupted"):
        fixture_classifier(data=tiny, epochs=1)
    # cache=False neither reads nor writes
    _, info4 = fixture_classifier(data=tiny, epochs=1, cache=False)
    assert info4["from_cache"] is False and info4["cache_path"] is None
    assert info4["backbone_sha256"] == info["backbone_sha256"]  # same seed, same weights


def test_fixture_training_is_reproducible(tiny: ColoredDigits, cache: Path) -> None:
    torch.manual_seed(123)
    state = torch.random.get_rng_state()
    a, info_a = fixture_classifier(data=tiny, epochs=2, cache=False, seed=5)
    assert torch.equal(torch.random.get_rng_state(), state)  # the caller's RNG is left alone
    torch.manual_seed(999)
    b, info_b = fixture_classifier(data=tiny, epochs=2, cache=False, seed=5)
    assert a.backbone_sha256 == b.backbone_sha256 and info_a["curve"] == info_b["curve"]
    json.dumps(info_a)  # JSON-ready
    assert not any(tiny.frame["split"] == "test") and len(info_a["curve"]) == 2


def test_fixture_needs_training_rows(tiny: ColoredDigits, cache: Path) -> None:
    only_val = tiny.select((tiny.frame["split"] == "validation").to_numpy())
    with pytest.raises(FairpromptError, match="no 'train' rows"):
        fixture_classifier(data=only_val, epochs=1)


def test_pixel_prompt_training_through_the_shared_trainer_leaves_backbone_unchanged(tmp_path, monkeypatch) -> None:
    """The generic Accelerate trainer (used for every prompt) trains a PixelBorder; the backbone stays bit-for-bit."""
    import torch

    from fairprompt.models import PromptedModel
    from fairprompt.models.image import ImageRows
    from fairprompt.models.training import TrainConfig, train
    from fairprompt.prompts import PixelBorder, PixelBorderConfig

    monkeypatch.setenv("FAIRPROMPT_CACHE", str(tmp_path))
    from fairprompt.models.image_fixture import fixture_classifier

    data = generate(seed=0)
    model, _ = fixture_classifier(data=data, epochs=1)
    border = PixelBorder(PixelBorderConfig(image_size=32, width=3, init="zeros"))
    prompted = model.with_prompts([border])
    assert isinstance(prompted, PromptedModel)
    before, start = prompted.backbone_sha256, [p.detach().clone() for p in border.parameters()]
    rows = np.flatnonzero(data.frame["split"].to_numpy() == "train")[:64]
    source = ImageRows(data.images[rows], data.y[rows])
    train(model=prompted, forward=lambda m, b: m(b["images"]), param_groups=[{"params": list(border.parameters()), "lr": 0.1}],
          train_data=source, validation_data=source, config=TrainConfig(max_epochs=1, batch_size=16), description="border")
    assert prompted.backbone_sha256 == before
    assert any(not torch.equal(a, b) for a, b in zip(start, border.parameters()))
