import numpy as np
import pytest

from tests.conftest import WORDS
from workbench import Apply, capture, intervene
from workbench.data import Example
from workbench.errors import (
    InputError,
    NonFiniteActivationError,
    StoreIncompleteError,
    StoreSpecMismatchError,
)
from workbench.store import ActivationStore
from workbench.store import capture as pipeline_module
from workbench.store.capture import capture_to_store

SITES = "blocks.0.hook_resid_post,blocks.2.hook_resid_post"


def corpus(n=23, seed=0):
    rng = np.random.default_rng(seed)
    return [
        Example(text=" ".join(rng.choice(WORDS, size=rng.integers(2, 9))), labels={"group": i % 3})
        for i in range(n)
    ]


def test_store_holds_exactly_what_capture_returns(neox, tmp_path):
    examples = corpus()
    store = capture_to_store(
        neox, SITES, examples, tmp_path / "s", batch_size=5, chunk_rows=20, progress=False
    )
    direct = capture(neox, SITES, [e.text for e in examples])
    assert store.sites == ["blocks.0.hook_resid_post", "blocks.2.hook_resid_post"]
    assert store.n_examples == len(examples) and store.n_rows == direct.token_ids.numel()
    for site in store.sites:
        np.testing.assert_allclose(store.read(site), direct.numpy(site), atol=1e-5)
    np.testing.assert_array_equal(store.token_ids(), direct.token_ids.numpy())
    np.testing.assert_array_equal(store.example_index(), direct.example_index.numpy())
    np.testing.assert_array_equal(store.positions(), direct.position.numpy())
    np.testing.assert_array_equal(
        store.example_labels()["group"], [i % 3 for i in range(len(examples))]
    )
    assert store.provenance["weights_hash"] == neox.weights_hash
    assert len(store.manifest["chunks"]) > 1  # several chunks, so resume has something to do
    stats = store.stats("blocks.2.hook_resid_post")
    np.testing.assert_allclose(
        stats["mean"], direct.numpy("blocks.2.hook_resid_post").mean(0), atol=1e-5
    )


def test_interrupted_capture_reads_incomplete_and_resumes(neox, tmp_path, monkeypatch):
    examples = corpus()
    reference = capture_to_store(
        neox, SITES, examples, tmp_path / "ref", batch_size=5, chunk_rows=1, progress=False
    )
    calls = {"n": 0}
    real_capture = pipeline_module.capture

    def dying(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # the user pressed Ctrl-C mid-run
        return real_capture(*args, **kwargs)

    monkeypatch.setattr(pipeline_module, "capture", dying)
    out = tmp_path / "s"
    with pytest.raises(KeyboardInterrupt):
        capture_to_store(neox, SITES, examples, out, batch_size=5, chunk_rows=1, progress=False)
    with pytest.raises(StoreIncompleteError, match="re-run"):
        ActivationStore(out)
    monkeypatch.setattr(pipeline_module, "capture", real_capture)
    seen = []
    monkeypatch.setattr(
        pipeline_module,
        "capture",
        lambda h, s, texts, **kw: seen.append(len(texts)) or real_capture(h, s, texts, **kw),
    )
    store = capture_to_store(neox, SITES, examples, out, batch_size=5, chunk_rows=1, progress=False)
    assert sum(seen) == len(examples) - 10  # two batches were committed before the kill
    for site in store.sites:
        np.testing.assert_array_equal(store.read(site), reference.read(site))
    np.testing.assert_allclose(
        store.stats(SITES.split(",")[0])["var"], reference.stats(SITES.split(",")[0])["var"]
    )


def test_other_spec_is_refused_unless_overwrite(neox, tmp_path):
    examples = corpus(6)
    out = tmp_path / "s"
    capture_to_store(neox, SITES, examples, out, progress=False)
    with pytest.raises(StoreSpecMismatchError):
        capture_to_store(neox, SITES, examples, out, positions="last", progress=False)
    assert ActivationStore(out).spec["positions"] == "all"  # nothing lost
    store = capture_to_store(
        neox, SITES, examples, out, positions="last", overwrite=True, progress=False
    )
    assert store.n_rows == 6


def test_complete_store_is_reused(neox, tmp_path, monkeypatch):
    examples = corpus(4)
    out = tmp_path / "s"
    capture_to_store(neox, SITES, examples, out, progress=False)
    monkeypatch.setattr(pipeline_module, "capture", lambda *a, **k: pytest.fail("recaptured"))
    assert capture_to_store(neox, SITES, examples, out, progress=False).n_examples == 4


def test_store_dtype_and_nonfinite(neox, tmp_path):
    store = capture_to_store(
        neox, SITES, corpus(4), tmp_path / "h", store_dtype="float16", progress=False
    )
    assert store.site_info("blocks.0.hook_resid_post")["dtype"] == "float16"
    with (
        pytest.raises(NonFiniteActivationError, match="blocks.0.hook_resid_post"),
        intervene(neox, Apply("blocks.0.hook_resid_post", lambda x: x / 0.0)),
    ):
        capture_to_store(neox, SITES, corpus(4), tmp_path / "nan", progress=False)
    with pytest.raises(StoreIncompleteError):
        ActivationStore(tmp_path / "nan")


@pytest.mark.parametrize("fixture", ["neox", "minilm"])
def test_word_labels_become_token_labels(request, fixture, tmp_path):
    handle = request.getfixturevalue(fixture)
    texts = ["the cat sat on the mat .", "a big dog ran over the log", "red bird"]
    examples = [
        Example(
            text=t,
            word_labels={
                "word_id": list(range(len(t.split()))),
                "length": [len(w) for w in t.split()],
            },
        )
        for t in texts
    ]
    store = capture_to_store(
        handle, "blocks.0.hook_resid_post", examples, tmp_path / "s", progress=False
    )
    labels = store.row_labels()
    word_ids, lengths = labels["word_id"], labels["length"]
    assert len(word_ids) == store.n_rows
    tokens = store.token_ids()
    special = set(handle.tokenizer.all_special_ids)
    for row in range(store.n_rows):
        if int(tokens[row]) in special:
            assert word_ids[row] == -1 and lengths[row] == -1
            continue
        word = texts[int(store.example_index()[row])].split()[word_ids[row]]
        assert lengths[row] == len(word)
        piece = handle.tokenizer.decode([int(tokens[row])]).strip().lstrip("#")
        assert piece.lower() in word.lower()  # the token is a piece of its labelled word


def test_plain_module_on_an_array_dataset(tmp_path):
    from torch import nn

    from workbench import load_model
    from workbench.data import load_dataset

    torch_module = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10))
    handle = load_model(torch_module, device="cpu", name="digits-probe")
    examples = load_dataset("digits", 50)
    store = capture_to_store(
        handle, "1,3", examples, tmp_path / "d", dataset="digits", batch_size=16, progress=False
    )
    assert store.n_rows == 50 and store.site_info("3")["width"] == 10
    x = np.stack([e.inputs for e in examples]).reshape(50, 64)
    expected = torch_module(__import__("torch").as_tensor(x)).detach().numpy()
    np.testing.assert_allclose(store.read("3"), expected, atol=1e-5)
    np.testing.assert_array_equal(
        store.example_labels()["class"], [e.labels["class"] for e in examples]
    )
    with pytest.raises(InputError, match="array inputs"):
        capture_to_store(handle, "1", load_dataset("grammar-lm", 4), tmp_path / "x", progress=False)
