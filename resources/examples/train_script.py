"""A plain PyTorch training loop that logs into Trainbench with two lines (init, log).

trainbench run --script resources/examples/train_script.py -- --lr 0.003 --epochs 5
python resources/examples/train_script.py          (also works: the run is its own)
"""

import argparse
import tempfile

import torch
import trainbench
from sklearn.datasets import load_digits

parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float, default=0.003)
parser.add_argument("--epochs", type=int, default=5)
parser.add_argument("--batch", type=int, default=64)
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()

torch.manual_seed(args.seed)
x, y = load_digits(return_X_y=True)
x, y = torch.tensor(x / 16, dtype=torch.float32), torch.tensor(y)
perm = torch.randperm(len(x))
train, val = perm[:1400], perm[1400:]
model = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))
opt = torch.optim.AdamW(model.parameters(), lr=args.lr)

with trainbench.init(name="digits-script", config=args) as run:  # config: the run's hyperparameters
    for epoch in range(args.epochs):
        order = train[torch.randperm(len(train))]
        for i in range(0, len(order), args.batch):
            idx = order[i : i + args.batch]
            loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            run.log({"train/loss": loss, "train/epoch": epoch + i / len(train)})
        with torch.no_grad():
            logits = model(x[val])
            accuracy = (logits.argmax(1) == y[val]).float().mean().item()
            run.log({"val/loss": torch.nn.functional.cross_entropy(logits, y[val]), "val/accuracy": accuracy})
        print(f"epoch {epoch}: validation accuracy {accuracy:.3f}")
    run.summary["val/accuracy"] = accuracy
    with tempfile.TemporaryDirectory() as tmp:
        torch.save(model.state_dict(), f"{tmp}/digits_mlp.pt")
        run.log_artifact(f"{tmp}/digits_mlp.pt")  # copied beside the run; `trainbench show` lists it
