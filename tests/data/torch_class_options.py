"""Generates torch_class_options.json: PyTorch's own values and gradients of
cross_entropy, nll_loss and multi_margin_loss with class weights, ignore_index and
label_smoothing, class-index and probability targets, plus the z-loss
(PaLM's lambda * logsumexp^2, written out in torch), the cases
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


def case(name, loss, n, m, ignore=None, class_weights=False, scale=3.0, all_ignored=False,
         smoothing=0.0, z_loss=0.0, probs=False, margin=1.0, power=1):
    # Options as the f32 values lossgpu receives.
    smoothing, z_loss = float(np.float32(smoothing)), float(np.float32(z_loss))
    z = f32(rng.normal(0.0, scale, size=(n, m)))
    if probs:
        t = f32(rng.dirichlet(np.ones(m), size=n))
        y = None
    else:
        y = rng.integers(0, m, size=n).astype(np.int64)
        if ignore is not None:
            y[rng.random(n) < 0.3] = ignore
            if all_ignored:
                y[:] = ignore
    w = f32(rng.uniform(0.0, 2.0, size=m)) if class_weights else None
    if w is not None and m > 2:
        w[1] = 0.0
    out = {"name": name, "loss": loss, "n": n, "m": m, "pred": [float(v) for v in z.ravel()],
           "target": [float(v) for v in t.ravel()] if probs else [int(v) for v in y],
           "probabilities": probs, "ignore_index": ignore,
           "class_weights": None if w is None else [float(v) for v in w],
           "label_smoothing": smoothing, "z_loss": z_loss, "margin": margin, "power": power,
           "reductions": {}}
    target = torch.tensor(t, dtype=torch.float64) if probs else torch.tensor(y)
    weight = None if w is None else torch.tensor(w, dtype=torch.float64)
    for reduction in ["mean", "sum", "none"]:
        x = torch.tensor(z, dtype=torch.float64, requires_grad=True)
        kw = {}
        if ignore is not None:
            kw["ignore_index"] = ignore
        if weight is not None:
            kw["weight"] = weight
        if loss == "cross-entropy":
            rows = F.cross_entropy(x, target, reduction="none", label_smoothing=smoothing, **kw)
            own = F.cross_entropy(x, target, reduction=reduction, label_smoothing=smoothing, **kw)
        elif loss == "nll":
            rows = F.nll_loss(x, target, reduction="none", **kw)
            own = F.nll_loss(x, target, reduction=reduction, **kw)
        else:
            mm = {"p": power, "margin": margin, **kw}
            rows = F.multi_margin_loss(x, target, reduction="none", **mm)
            own = F.multi_margin_loss(x, target, reduction=reduction, **mm)
        # The z-loss (PaLM) is not PyTorch's: lambda * lse^2 per row, scaled as
        # the row's unsmoothed term (w[y] for classes, 1 for probabilities),
        # 0 for ignored rows; the mean keeps PyTorch's denominator.
        if probs:
            kept = torch.ones(n, dtype=torch.float64)
            den = torch.tensor(float(n), dtype=torch.float64)
        else:
            kept = (target != (ignore if ignore is not None else -(2**62))).double()
            by_class = weight is not None and loss != "multi-margin"
            wy = weight[target.clamp(0, m - 1)] if by_class else torch.ones(n, dtype=torch.float64)
            den = (wy * kept).sum()
            kept = kept * wy
        rows = rows + z_loss * kept * torch.logsumexp(x, 1) ** 2
        v = {"none": rows, "sum": rows.sum(), "mean": rows.sum() / den}[reduction]
        if z_loss == 0.0:
            # PyTorch's own value and gradient (its all-ignored mean has a zero
            # gradient where the written-out 0/0 would give NaN).
            assert torch.allclose(v, own, rtol=1e-12, atol=0, equal_nan=True), (name, reduction)
            v = own
        # lossgpu's gradient for `none` is that of the sum of the w_i l_i, as for `sum`.
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
    case("ce smoothing", "cross-entropy", 21, 5, smoothing=0.1),
    case("ce smoothing + weights + ignore", "cross-entropy", 37, 6, ignore=-100,
         class_weights=True, smoothing=0.2),
    case("ce full smoothing", "cross-entropy", 8, 4, smoothing=1.0, class_weights=True),
    case("ce z-loss", "cross-entropy", 19, 7, z_loss=1e-3),
    case("ce everything, wide", "cross-entropy", 5, 200, ignore=-100, class_weights=True,
         smoothing=0.05, z_loss=1e-4),
    case("ce everything, extreme", "cross-entropy", 9, 6, ignore=-100, class_weights=True,
         smoothing=0.1, z_loss=1e-4, scale=1e4),
    case("ce probabilities + weights", "cross-entropy", 23, 5, probs=True, class_weights=True),
    case("ce probabilities + smoothing", "cross-entropy", 15, 4, probs=True, smoothing=0.3),
    case("ce probabilities + everything", "cross-entropy", 11, 90, probs=True,
         class_weights=True, smoothing=0.1, z_loss=1e-3),
    case("nll plain", "nll", 11, 5),
    case("nll ignore + weights", "nll", 50, 6, ignore=-100, class_weights=True),
    case("nll wide rows", "nll", 5, 257, ignore=3, class_weights=True),
    case("nll all ignored", "nll", 4, 3, ignore=1, all_ignored=True),
    case("multi-margin plain", "multi-margin", 17, 5),
    case("multi-margin p=2 margin 0.5 weights", "multi-margin", 29, 4, power=2, margin=0.5,
         class_weights=True),
    case("multi-margin wide", "multi-margin", 6, 150, class_weights=True, scale=0.05),
    case("multi-margin p=2 wide", "multi-margin", 4, 300, power=2, margin=2.0, scale=1.0),
]
path = pathlib.Path(__file__).with_name("torch_class_options.json")
path.write_text(json.dumps({"torch": torch.__version__, "cases": cases}, indent=None) + "\n")
print(f"{len(cases)} cases -> {path} (torch {torch.__version__})")
