"""Generates torch_kl_div.json: PyTorch's own values and gradients of
kl_div with log_input (pred as log q, PyTorch's convention), log_target and
the reductions sum, batchmean and none (summed over each row: lossgpu's
per-sample value is a row's loss), the cases tests/kl_options.rs holds
lossgpu to. The plain form (pred as q) is compared through kl_div(log q).

    pip install torch numpy && python3 tests/data/torch_kl_div.py

Inputs are float32 (written exactly); PyTorch evaluates them in float64.
"""

import json
import pathlib

import numpy as np
import torch
import torch.nn.functional as F

rng = np.random.default_rng(20261204)


def f32(a):
    return np.asarray(a, dtype=np.float32)


def case(name, n, m, log_input, log_target, zeros=0.0, sharp=1.0):
    q = f32(np.maximum(rng.dirichlet(np.full(m, sharp), size=n), 1e-30))
    t = rng.dirichlet(np.ones(m), size=n)
    t[rng.random((n, m)) < zeros] = 0.0  # exact zeros: their terms are 0
    t = f32(t)
    # What lossgpu receives: log q, or q; log t, or t (no zero: log 0 is
    # -inf, whose PyTorch term is NaN; tests/kl_options.rs checks it apart).
    if log_target:
        t = np.where(t == 0.0, np.float32(1e-30), t)
    pred = f32(np.log(q)) if log_input else q
    target = f32(np.log(t)) if log_target else t
    out = {"name": name, "n": n, "m": m, "log_input": log_input, "log_target": log_target,
           "pred": [float(v) for v in pred.ravel()], "target": [float(v) for v in target.ravel()],
           "reductions": {}}
    for reduction in ["sum", "batchmean", "none"]:
        x = torch.tensor(pred, dtype=torch.float64, requires_grad=True)
        log_q = x if log_input else torch.log(x)
        y = torch.tensor(target, dtype=torch.float64)
        v = F.kl_div(log_q, y, reduction=reduction, log_target=log_target)
        if reduction == "none":
            v = v.sum(1)
        v.sum().backward()
        out["reductions"][reduction] = {"value": [float(a) for a in np.ravel(v.detach().numpy())],
                                        "grad": [float(a) for a in x.grad.numpy().ravel()]}
    return out


cases = [
    case("log input", 13, 5, True, False),
    case("log input, zeros in t", 31, 7, True, False, zeros=0.3),
    case("log input and target", 17, 4, True, True),
    case("log target", 9, 6, False, True),
    case("plain, batchmean", 21, 3, False, False, zeros=0.2),
    case("log input, wide", 4, 300, True, False, zeros=0.1),
    case("log input and target, wide", 3, 513, True, True, sharp=0.05),
    case("log input, sharp q", 40, 8, True, False, sharp=0.02),
]
path = pathlib.Path(__file__).with_name("torch_kl_div.json")
path.write_text(json.dumps({"torch": torch.__version__, "cases": cases}, indent=None) + "\n")
print(f"{len(cases)} cases -> {path} (torch {torch.__version__})")
