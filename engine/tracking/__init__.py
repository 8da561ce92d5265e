"""`import trainbench`: log any training script into the Trainbench run store.

    import trainbench

    with trainbench.init(name="resnet-sweep", config={"lr": 0.01, "batch": 64}) as run:
        for step, (x, y) in enumerate(loader):
            loss = train_step(x, y)
            run.log({"train/loss": loss, "train/lr": sched.get_last_lr()[0]})
        run.summary["best_acc"] = best
        run.log_artifact("model.pt")

The run is an ordinary run of kind `script`: its curves are the store's chunked metrics, its
config is stored in its spec (`config.lr`), so the Experiments browser, the compare view and
parallel coordinates treat it like a designed run; `trainbench runs`, `show`, `compare` and
`export` list it. Started by `trainbench run --script train.py` (or "Run a script" in the
app), `init()` attaches to the run the launcher made, so the GUI shows its curves live and
can stop it.

This is the public name of `engine.tracking` (mapped in pyproject.toml). Importing it costs no
torch and no Qt: numpy and SQLite only. Adapters: `trainbench.lightning.TrainbenchLogger`
(a Lightning `Logger`) and `trainbench.hf.TrainbenchCallback` (a `transformers` callback).
"""

from .run import Run, finish, init

__all__ = ["Run", "finish", "init"]
