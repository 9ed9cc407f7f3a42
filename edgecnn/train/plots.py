"""The seed's figures: loss and accuracy curves, and the confusion matrix, as PNGs."""

from __future__ import annotations

from typing import Any

from edgecnn.fsutil import atomic_path


def save_plots(run, history: list[dict[str, Any]], metrics: dict[str, Any]) -> list:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run.plots_dir.mkdir(parents=True, exist_ok=True)
    out = []
    history = [h for h in history if h.get("loss") is not None]   # not the --epochs 0 record
    epochs = [h["epoch"] for h in history]

    def _save(fig, name):
        path = run.plots_dir / name
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=110, bbox_inches="tight")
        plt.close(fig)
        out.append(path)

    if history:
        fig, ax = plt.subplots(figsize=(5, 3.5))
        ax.plot(epochs, [h["loss"] for h in history], marker="o", label="train loss")
        ax.set_xlabel("epoch"); ax.set_ylabel("loss"); ax.set_title("Training loss"); ax.legend()
        _save(fig, "loss.png")

        fig, ax = plt.subplots(figsize=(5, 3.5))
        ax.plot(epochs, [h["accuracy"] for h in history], marker="o", label="train accuracy")
        ax.plot(epochs, [h["val_accuracy"] for h in history], marker="o", label="val accuracy")
        ax.plot(epochs, [h["val_balanced_accuracy"] for h in history], marker="o", label="val balanced acc.")
        ax.set_xlabel("epoch"); ax.set_ylabel("accuracy"); ax.set_title("Accuracy"); ax.legend()
        _save(fig, "accuracy.png")

    cm = metrics.get("confusion_matrix")
    if cm:
        fig, ax = plt.subplots(figsize=(4, 3.5))
        ax.imshow(cm, cmap="Blues")
        for i in range(2):
            for j in range(2):
                ax.text(j, i, str(cm[i][j]), ha="center", va="center",
                        color="white" if cm[i][j] > max(map(max, cm)) / 2 else "black")
        ax.set_xticks([0, 1], ["no IDC", "IDC"]); ax.set_yticks([0, 1], ["no IDC", "IDC"])
        ax.set_xlabel("predicted"); ax.set_ylabel("true")
        ax.set_title(f"Test confusion (BAC {metrics.get('balanced_accuracy', float('nan')):.3f})")
        _save(fig, "confusion_matrix.png")
    return out
