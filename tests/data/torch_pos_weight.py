"""Generates torch_pos_weight.json: PyTorch's own values and gradients of
binary_cross_entropy_with_logits with pos_weight (one value, or one per
column of n×m multi-label logits), with and without per-value weights, the
cases tests/pos_weight.rs holds lossgpu to.

    pip install torch numpy && python3 tests/data/torch_pos_weight.py

Inputs are float32 (written exactly); PyTorch evaluates them in float64.
lossgpu's weighted mean divides by the sum of the weights (SPEC §1), where
PyTorch's divides by the number of values: that mean is written out in
torch; sum and none are PyTorch's own.
"""

import json
import pathlib

import numpy as np
import torch
import torch.nn.functional as F

rng = np.random.default_rng(20261205)


def f32(a):
    return np.asarray(a, dtype=np.float32)


def case(name, n, m, per_column, weights=None, scale=3.0, soft=False):
    shape = (n,) if m is None else (n, m)
    z = f32(rng.normal(0.0, scale, size=shape))
    t = f32(rng.random(shape) if soft else rng.integers(0, 2, size=shape))
    cols = 1 if m is None else m
    pw = f32(rng.uniform(0.0, 5.0, size=cols) if per_column else [rng.uniform(0.2, 4.0)])
    if per_column and cols > 2:
        pw[1] = 0.0
    w = None
    if weights == "value":
        w = f32(rng.uniform(0.0, 2.0, size=shape))
    elif weights == "row":
        w = f32(rng.uniform(0.0, 2.0, size=(n,)))
    out = {"name": name, "n": n, "m": m, "pred": [float(v) for v in z.ravel()],
           "target": [float(v) for v in t.ravel()], "pos_weight": [float(v) for v in pw],
           "weights": None if w is None else [float(v) for v in w.ravel()],
           "weights_per_row": weights == "row", "reductions": {}}
    y = torch.tensor(t, dtype=torch.float64)
    p = torch.tensor(pw if per_column else pw[:1], dtype=torch.float64)
    wt = None
    if w is not None:
        wt = torch.tensor(w, dtype=torch.float64)
        if weights == "row":
            wt = wt[:, None]  # broadcast over the columns
    for reduction in ["mean", "sum", "none"]:
        x = torch.tensor(z, dtype=torch.float64, requires_grad=True)
        if reduction == "mean" and wt is not None:
            l = F.binary_cross_entropy_with_logits(x, y, weight=wt, pos_weight=p, reduction="sum")
            v = l / torch.broadcast_to(wt, x.shape).sum()
        else:
            v = F.binary_cross_entropy_with_logits(x, y, weight=wt, pos_weight=p,
                                                   reduction=reduction)
        v.sum().backward()
        out["reductions"][reduction] = {"value": [float(a) for a in np.ravel(v.detach().numpy())],
                                        "grad": [float(a) for a in x.grad.numpy().ravel()]}
    return out


cases = [
    case("scalar 1-D", 37, None, False),
    case("scalar on n×m", 9, 4, False),
    case("per column", 13, 5, True),
    case("per column, 7 columns (vec4 lanes span rows)", 31, 7, True),
    case("per column, soft labels", 11, 3, True, soft=True),
    case("per column, weights per value", 17, 6, True, weights="value"),
    case("per column, weights per row", 19, 5, True, weights="row"),
    case("scalar, weights, 1-D", 65, None, False, weights="value"),
    case("extreme logits", 8, 9, True, scale=1e4),
    case("one column", 21, 1, True),
    case("wide", 3, 257, True),
]
path = pathlib.Path(__file__).with_name("torch_pos_weight.json")
path.write_text(json.dumps({"torch": torch.__version__, "cases": cases}, indent=None) + "\n")
print(f"{len(cases)} cases -> {path} (torch {torch.__version__})")
