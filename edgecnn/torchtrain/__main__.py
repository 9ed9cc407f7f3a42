"""``python -m edgecnn.torchtrain --pack PACK --out DIR``: train on a PyTorch GPU box.

Example (the shipped VGG13: three seeds and a distilled student, 7 min on one H100):
  python -m edgecnn.torchtrain --pack release-pack.npz --out gpu-vgg13 --model vgg13 \\
      --epochs 16 --seeds 0 1 2 --distill-epochs 26 --deadline-minutes 8 --save-dtype float16
Then, where TensorFlow is: edgecnn train --model vgg13 --input-size 50 --init-from gpu-vgg13
--epochs 0 --split SPLIT --data ... --out runs/vgg13-gpu   (docs/gpu-training.md)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m edgecnn.torchtrain", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pack", required=True, type=Path, help="from `edgecnn data pack` (train + val patches, soft targets)")
    p.add_argument("--out", required=True, type=Path, help="folder for weights.npz, summary.json, split.json")
    p.add_argument("--model", default="vgg13", help="network (as `edgecnn train --model`)")
    p.add_argument("--input-size", type=int, default=50, help="model input in px (patches are resized bilinearly)")
    p.add_argument("--epochs", type=int, default=20, help="epochs per seed (cosine schedule to 0)")
    p.add_argument("--lr", type=float, default=3e-4, help="Adam peak learning rate")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="one run per seed")
    p.add_argument("--distill-epochs", type=int, default=0,
                   help="then train a student on the mean of the seeds and the pack's teachers (0 = no)")
    p.add_argument("--kd-alpha", type=float, default=0.5, help="weight of the soft targets (when there are any)")
    p.add_argument("--kd-temperature", type=float, default=2.0)
    p.add_argument("--label-smoothing", type=float, default=0.0)
    p.add_argument("--stain-jitter", type=float, default=0.05, help="HED stain jitter sigma (0 = off)")
    p.add_argument("--color-jitter", type=float, default=1.0, help="scale of the colour-jitter ranges (0 = off)")
    p.add_argument("--ema", type=float, default=0.0,
                   help="score and keep a moving average of the weights and BN statistics, this decay per step "
                        "(0.998 ≈ the last 500 steps; as `edgecnn train --ema`); 0 = off")
    p.add_argument("--jobs", type=int, default=1,
                   help="train this many seeds at once, one process each on the same GPU: a 50 px VGG13 "
                        "leaves an H100 waiting on launches (6 seeds at once ran at 2.1x the throughput of one)")
    p.add_argument("--deadline-minutes", type=float, default=None,
                   help="stop training after the epoch that passes this; the best model so far is written")
    p.add_argument("--save-dtype", choices=("float32", "float16"), default="float32",
                   help="float16 halves weights.npz for a narrow transfer (rounding ≤ 0.05 %%)")
    p.add_argument("--max-steps", type=int, default=None, help="cap steps per epoch (smoke runs)")
    p.add_argument("--device", default=None, help="cuda (default when there is one) or cpu")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    import torch

    from edgecnn.data.layout import DataError
    from edgecnn.data.pack import Pack
    from edgecnn.torchtrain.loop import Recipe
    from edgecnn.torchtrain.plan import run_plan

    start = time.monotonic()
    if args.jobs < 1 or not 0.0 <= args.ema < 1.0:
        print("error: --jobs must be ≥ 1 and --ema in [0, 1) (e.g. 0.998)", file=sys.stderr)
        return 2
    if args.distill_epochs and args.kd_alpha <= 0:
        print("error: --distill-epochs needs --kd-alpha > 0 (the student's weight on the ensemble)", file=sys.stderr)
        return 2
    try:
        pack = Pack(args.pack)
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    recipe = Recipe(epochs=args.epochs, lr=args.lr, batch_size=args.batch_size, kd_alpha=args.kd_alpha,
                    kd_temperature=args.kd_temperature, label_smoothing=args.label_smoothing,
                    stain_jitter=args.stain_jitter, color_jitter=args.color_jitter, ema=args.ema,
                    max_steps=args.max_steps)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    deadline = None if args.deadline_minutes is None else start + 60 * args.deadline_minutes
    log = lambda m: print(f"[{time.monotonic() - start:7.1f}s] {m}", flush=True)  # noqa: E731
    log(f"{pack.summary()} on {device}")
    run_plan(pack, args.out, args.model, recipe, args.seeds, args.distill_epochs, args.input_size, deadline,
             args.save_dtype, device, log, args.jobs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
