"""The Lightning logger and the transformers callback, each training a tiny real model on CPU
(built from a config: nothing is downloaded) into a real run store."""

from __future__ import annotations

import importlib

import pytest
import torch

from engine.scripts import tracking_import_path
from engine.store import RunStore

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def tb(monkeypatch):
    shim = tracking_import_path()
    if shim:
        monkeypatch.syspath_prepend(shim)
    return importlib.import_module("trainbench")


def test_lightning_logger_records_metrics_hyperparameters_and_status(tb, db_path, tmp_path):
    lightning = pytest.importorskip("lightning")
    from trainbench.lightning import TrainbenchLogger

    logged: list[float] = []  # what the module logs, step by step

    class Tiny(lightning.LightningModule):
        def __init__(self, lr: float = 0.05, hidden: int = 8):
            super().__init__()
            self.save_hyperparameters()
            self.net = torch.nn.Sequential(
                torch.nn.Linear(4, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 2)
            )

        def training_step(self, batch, _index):
            x, y = batch
            loss = torch.nn.functional.cross_entropy(self.net(x), y)
            self.log("train_loss", loss, on_step=True, on_epoch=False)
            logged.append(loss.item())
            return loss

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)

    torch.manual_seed(0)
    x = torch.randn(64, 4)
    data = torch.utils.data.TensorDataset(x, (x[:, 0] > 0).long())
    logger = TrainbenchLogger(name="lightning-tiny", db=str(db_path))
    trainer = lightning.Trainer(
        max_epochs=2,
        logger=logger,
        log_every_n_steps=1,
        accelerator="cpu",
        devices=1,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(Tiny(), torch.utils.data.DataLoader(data, batch_size=16))
    store = RunStore(db_path, readonly=True)
    (run,) = store.list_runs()
    assert (run["name"], run["kind"], run["status"]) == ("lightning-tiny", "script", "completed")
    assert run["spec"]["config"] == {"lr": 0.05, "hidden": 8}
    steps, loss, _ = store.series(run["id"], "train_loss")
    assert len(steps) == 8 and steps.tolist() == sorted(steps.tolist())  # 2 epochs × 4 batches
    assert loss.tolist() == pytest.approx(logged, rel=1e-6)  # every step's value, as Lightning logged it
    assert logger.version == run["id"]


def test_hf_callback_records_train_and_eval_logs(tb, db_path, tmp_path):
    transformers = pytest.importorskip("transformers")
    from trainbench.hf import TrainbenchCallback

    config = transformers.BertConfig(
        vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
        max_position_embeddings=16, num_labels=2,
    )  # fmt: skip
    torch.manual_seed(0)
    model = transformers.BertForSequenceClassification(config)

    class Tokens(torch.utils.data.Dataset):
        def __init__(self, n: int):
            g = torch.Generator().manual_seed(n)
            self.ids = torch.randint(1, 50, (n, 8), generator=g)

        def __len__(self):
            return len(self.ids)

        def __getitem__(self, i):
            return {"input_ids": self.ids[i], "labels": int(self.ids[i, 0] > 25)}

    args = transformers.TrainingArguments(
        output_dir=str(tmp_path / "out"),
        max_steps=6,
        per_device_train_batch_size=8,
        logging_steps=2,
        eval_strategy="steps",
        eval_steps=3,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        disable_tqdm=True,
        learning_rate=1e-3,
    )
    callback = TrainbenchCallback(name="bert-tiny", db=str(db_path))
    transformers.Trainer(
        model=model, args=args, train_dataset=Tokens(48), eval_dataset=Tokens(16), callbacks=[callback]
    ).train()
    store = RunStore(db_path, readonly=True)
    (run,) = store.list_runs()
    assert (run["name"], run["status"]) == ("bert-tiny", "completed")
    config = run["spec"]["config"]
    assert config["trainer"]["learning_rate"] == 1e-3 and config["model"]["hidden_size"] == 16
    series = store.series_summaries(run["id"])
    assert store.series(run["id"], "train/loss")[0].tolist() == [2, 4, 6]
    assert store.series(run["id"], "eval/loss")[0].tolist() == [3, 6]
    assert "train/learning_rate" in series and "train/total_flos" not in series
    assert run["summary"]["train_loss"] > 0
