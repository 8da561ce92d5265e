"""Text for language models: sources (file, folder, .jsonl, Parquet, a datasets folder),
tokenizers (byte, BPE trained on the training text, a tokenizer.json), the cached token file,
random windows and the held-out tail, the tokenizer saved with the run, and the bad cases."""

from __future__ import annotations

import json

import numpy as np
import pytest

from engine import checkpoint
from engine.data import describe, load_dataset
from engine.data.tokens import TokenData
from engine.errors import DataError
from engine.store import RunStore
from tests.conftest import EXAMPLES
from tests.engine.test_data_formats import data, train_once

CORPUS = (EXAMPLES / "data" / "corpus.txt").read_text()


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TRAINBENCH_CACHE", str(tmp_path / "cache"))


def lm(context: int, vocab: int) -> dict:
    return {
        "nodes": [
            {"id": "t", "op": "Input", "params": {"shape": [context], "dtype": "long"}},
            {"id": "e", "op": "Embedding", "params": {"num_embeddings": vocab, "embedding_dim": 16}},
            {"id": "h", "op": "Linear", "params": {"out_features": vocab}},
        ],
        "edges": [{"from": "t", "to": "e"}, {"from": "e", "to": "h"}],
    }


def text_folder(root, parts: int = 4):
    root.mkdir()
    step = len(CORPUS) // parts
    for i in range(parts):
        (root / f"part{i}.txt").write_text(CORPUS[i * step : (i + 1) * step])
    (root / ".hidden.txt").write_text("never read")
    return root


def test_bpe_on_a_text_folder_trains_and_saves_its_tokenizer(tmp_path, db_path):
    from tokenizers import Tokenizer

    root = text_folder(tmp_path / "texts")
    section = {"source": "text", "path": str(root), "tokenizer": "bpe", "vocab_size": 320, "context": 16}
    run = train_once(db_path, lm(16, 320), section, max_steps=6, batch_size=8)
    ds = run["summary"]["dataset"]
    assert ds["output_size"] == 320 and ds["tokenizer"] == {"kind": "bpe", "vocab_size": 320}
    store = RunStore(db_path)
    log = (store.artifacts_dir(run["id"]) / "run.log").read_text()
    assert "training a 320-token BPE tokenizer" in log and "tokenizing texts" in log
    state = checkpoint.load(store.last_checkpoint(run["id"])["path"])
    tok = Tokenizer.from_str(state["data"]["tokenizer"])
    assert tok.decode(tok.encode("The data set").ids) == "The data set"

    loaded = load_dataset(data(**section))
    assert isinstance(loaded, TokenData) and loaded.tokens.dtype == np.uint16
    assert describe(data(**section)).train_samples == loaded.info().train_samples  # exact once cached
    assert "never read" not in loaded.tokenizer.decode(loaded.tokens[:])
    tail = loaded.tokenizer.decode(loaded.val[:])
    assert tail.strip() and tail.strip()[-20:] == CORPUS.strip()[-20:]  # the held-out tail is the end


def test_the_token_file_is_built_once(tmp_path):
    root = text_folder(tmp_path / "texts")
    section = data(source="text", path=str(root), context=16)
    said: list[str] = []
    first = load_dataset(section, log=said.append)
    assert any("tokenizing" in m for m in said) and first.tokens.dtype == np.uint8
    said.clear()
    again = load_dataset(section, log=said.append)
    assert not said and np.array_equal(again.tokens, first.tokens)
    (root / "part0.txt").write_text("changed " * 400)
    load_dataset(section, log=said.append)
    assert any("tokenizing" in m for m in said)  # the content hash moved


def test_jsonl_and_parquet_text_fields(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    docs = [CORPUS[i : i + 500] for i in range(0, 20000, 500)]
    (tmp_path / "d.jsonl").write_text(
        "".join(json.dumps({"body": d, "id": i}) + "\n" for i, d in enumerate(docs))
    )
    pq.write_table(pa.table({"body": docs}), tmp_path / "d.parquet")
    for name in ("d.jsonl", "d.parquet"):
        ds = load_dataset(data(source="text", path=str(tmp_path / name), text_field="body", context=32))
        assert len(ds.tokens) == sum(map(len, (d.encode() for d in docs))) + 2 * (len(docs) - 1)
        assert (
            describe(
                data(source="text", path=str(tmp_path / name), text_field="body", context=32)
            ).train_samples
            == ds.info().train_samples
        )
    with pytest.raises(
        DataError, match=r"d.jsonl: line 1 has no field 'text' \(it has: body, id\); set data.text_field"
    ):
        load_dataset(data(source="text", path=str(tmp_path / "d.jsonl"), context=32))
    (tmp_path / "bad.jsonl").write_text('{"text": "fine"}\n{"text": broken\n')
    with pytest.raises(DataError, match="bad.jsonl: line 2 is not JSON"):
        describe(data(source="text", path=str(tmp_path / "bad.jsonl"), context=2))
    with pytest.raises(
        DataError, match="d.parquet: no column 'text' \\(columns: body\\); set data.text_field"
    ):
        describe(data(source="text", path=str(tmp_path / "d.parquet"), context=32))


def test_a_datasets_folder_with_a_text_column(tmp_path):
    datasets = pytest.importorskip("datasets")
    docs = [CORPUS[i : i + 400] for i in range(0, 8000, 400)]
    datasets.Dataset.from_dict({"text": docs}).save_to_disk(str(tmp_path / "hf"))
    ds = load_dataset(data(source="hf_disk", path=str(tmp_path / "hf"), context=16))
    assert isinstance(ds, TokenData) and ds.vocab_size == 256
    assert ds.tokenizer.decode(ds.tokens[:40]) == docs[0][:40]


def test_a_tokenizer_file_sets_the_vocabulary_and_the_head_must_follow(tmp_path, db_path):
    root = text_folder(tmp_path / "texts")
    bpe = load_dataset(data(source="text", path=str(root), tokenizer="bpe", vocab_size=300, context=8))
    (tmp_path / "tokenizer.json").write_text(bpe.tokenizer.to_json())
    section = {
        "source": "text",
        "path": str(root),
        "tokenizer": str(tmp_path / "tokenizer.json"),
        "context": 8,
    }
    info = describe(data(**section))
    assert info.output_size == bpe.tokenizer.vocab_size <= 300
    from engine.errors import SpecError
    from engine.graph import Graph, analyze
    from engine.preflight import check_model_fits

    with pytest.raises(SpecError, match=f"needs 8×{info.output_size} .*the tokenizer's vocabulary"):
        check_model_fits(analyze(Graph.from_dict(lm(8, 256))), info)
    train_once(db_path, lm(8, info.output_size), section, max_steps=3)


def test_bad_text_inputs_get_one_line_each(tmp_path):
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "tokenizer.json").write_text('{"version": "1.0", "model": 42}')
    (tmp_path / "ok.txt").write_text(CORPUS)
    (tmp_path / "short.txt").write_text("a few words")
    (tmp_path / "empty").mkdir()
    cases = [
        ({"path": str(tmp_path / "empty.txt")}, "empty.txt: the file is empty"),
        ({"path": str(tmp_path / "empty")}, "empty: the folder holds no text files"),
        (
            {"path": str(tmp_path / "ok.txt"), "tokenizer": str(tmp_path / "tokenizer.json")},
            "tokenizer.json: not a tokenizer.json that Hugging Face tokenizers reads",
        ),
        (
            {"path": str(tmp_path / "ok.txt"), "tokenizer": str(tmp_path / "none.json")},
            "none.json: tokenizer file not found",
        ),
        (
            {"path": str(tmp_path / "short.txt"), "context": 64},
            "short.txt: 11 tokens is too short for context 64",
        ),
    ]
    for section, message in cases:
        for read in (describe, load_dataset):
            with pytest.raises(DataError) as err:
                read(data(source="text", **section))
            assert message in str(err.value) and "\n" not in str(err.value)


def test_windows_are_random_per_step_and_validation_is_the_fixed_tail(tmp_path):
    import torch

    from engine.tasks.batches import BatchPlan, WindowBatches

    (tmp_path / "c.txt").write_text(CORPUS)
    ds = load_dataset(data(source="text", path=str(tmp_path / "c.txt"), context=32))
    spec = {"train": {"seed": 3, "eval_batch_size": 16, "eval_batches": 2}}
    source = WindowBatches(ds, BatchPlan(ds.info().train_samples, 4, 2, 3), spec, torch.device("cpu"))
    (x1, y1), (x2, _) = source.micro_batches(5)
    assert x1.shape == (4, 32) and torch.equal(x1[:, 1:], y1[:, :-1]) and not torch.equal(x1, x2)
    offsets = source.offsets(5)
    assert (offsets + 33 <= ds.train_tokens).all()  # windows never reach the held-out tail
    assert torch.equal(source.micro_batches(5)[0][0], x1)  # a pure function of (seed, step)
    val = list(source.validation())
    assert len(val) == 2 and sum(len(x) for x, _ in val) == 32
    assert [x.tolist() for x, _ in val] == [x.tolist() for x, _ in source.validation()]
