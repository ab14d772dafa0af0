"""Generates torch_class_options.json: PyTorch's own values and gradients of
cross_entropy and nll_loss with class weights and ignore_index, the cases
tests/class_options.rs holds lossgpu to.

    pip install torch numpy && python3 tests/data/torch_class_options.py

Inputs are float32 (written exactly); PyTorch evaluates them in float64 so
the stored values are the reference of those same f32 numbers. NaN is
written as null.
"""

import json
import pathlib

import numpy as np
import torch
import torch.nn.functional as F

rng = np.random.default_rng(20261203)


def f32(a):
    return np.asarray(a, dtype=np.float32)


def nan_null(v):
    return [None if np.isnan(x) else float(x) for x in np.ravel(v)]


def case(name, loss, n, m, ignore=None, class_weights=False, scale=3.0, all_ignored=False):
    z = f32(rng.normal(0.0, scale, size=(n, m)))
    y = rng.integers(0, m, size=n).astype(np.int64)
    if ignore is not None:
        y[rng.random(n) < 0.3] = ignore
        if all_ignored:
            y[:] = ignore
    w = f32(rng.uniform(0.0, 2.0, size=m)) if class_weights else None
    if w is not None and m > 2:
        w[1] = 0.0
    out = {"name": name, "loss": loss, "n": n, "m": m, "pred": [float(v) for v in z.ravel()],
           "target": [int(v) for v in y], "ignore_index": ignore,
           "class_weights": None if w is None else [float(v) for v in w], "reductions": {}}
    for reduction in ["mean", "sum", "none"]:
        x = torch.tensor(z, dtype=torch.float64, requires_grad=True)
        kw = {"reduction": reduction}
        if ignore is not None:
            kw["ignore_index"] = ignore
        if w is not None:
            kw["weight"] = torch.tensor(w, dtype=torch.float64)
        inp = x if loss == "cross-entropy" else x  # nll takes the rows as log-probabilities
        fn = F.cross_entropy if loss == "cross-entropy" else F.nll_loss
        v = fn(inp, torch.tensor(y), **kw)
        # lossgpu's gradient for `none` is that of Σ wᵢlᵢ, as for `sum`.
        v.sum().backward()
        out["reductions"][reduction] = {"value": nan_null(v.detach().numpy()),
                                        "grad": nan_null(x.grad.numpy())}
    return out


cases = [
    case("ce plain", "cross-entropy", 9, 5),
    case("ce weights", "cross-entropy", 33, 4, class_weights=True),
    case("ce ignore 2", "cross-entropy", 17, 6, ignore=2),
    case("ce ignore -100", "cross-entropy", 40, 7, ignore=-100),
    case("ce ignore + weights", "cross-entropy", 65, 3, ignore=-100, class_weights=True),
    case("ce wide rows", "cross-entropy", 6, 300, ignore=-100, class_weights=True),
    case("ce extreme logits", "cross-entropy", 12, 9, ignore=-100, class_weights=True, scale=1e4),
    case("ce all ignored", "cross-entropy", 5, 4, ignore=-100, all_ignored=True),
    case("nll plain", "nll", 11, 5),
    case("nll ignore + weights", "nll", 50, 6, ignore=-100, class_weights=True),
    case("nll wide rows", "nll", 5, 257, ignore=3, class_weights=True),
    case("nll all ignored", "nll", 4, 3, ignore=1, all_ignored=True),
]
path = pathlib.Path(__file__).with_name("torch_class_options.json")
path.write_text(json.dumps({"torch": torch.__version__, "cases": cases}, indent=None) + "\n")
print(f"{len(cases)} cases -> {path} (torch {torch.__version__})")
