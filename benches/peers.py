#!/usr/bin/env python3
"""lossgpu's CPU backend against numpy, JAX (XLA CPU) and PyTorch CPU.

Runs `lossgpu bench --backend cpu` on the given sizes, then times the same
operations on the same sizes and the same input distributions with each peer
installed (pip install numpy jax torch), and prints every time with
lossgpu's ratio to each peer (below 1: lossgpu is faster) and to the best.

    cargo build --release
    python3 benches/peers.py [--sizes 1048576,16777216] [--json FILE]

Conventions, the same as lossgpu's bench: values are the mean loss, "grad"
rows the gradient of the summed loss (autograd in JAX and PyTorch, whose
forward pass XLA may drop), "sigmoid'" the elementwise derivative, the
cross-entropy rows n/10 rows of 10 classes, "metrics (fused)" the eight
regression metrics of one call (one jit in JAX, separate expressions in
numpy and PyTorch). Each time is the median of repeated calls after one
warm-up call; JAX calls end with block_until_ready. numpy is one thread;
JAX and PyTorch use every core, as lossgpu does.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

CLASSES = 10
HUBER_DELTA = 1.0
QUANTILE = 0.5
# lossgpu bench times grad-stats with vanish_eps = 1e-6.
GRAD_EPS = 1e-6


def data(n):
    rng = np.random.default_rng(0x2545F491)
    x = ((rng.random(n, dtype=np.float32) - 0.5) * 8.0).astype(np.float32)
    t = rng.random(n, dtype=np.float32)
    rows = n // CLASSES
    labels = rng.integers(0, CLASSES, rows).astype(np.int64)
    return x, t, labels


def timed(f, min_seconds=0.3, max_reps=50):
    f()
    times = []
    start = time.perf_counter()
    while len(times) < 3 or (time.perf_counter() - start < min_seconds and len(times) < max_reps):
        t0 = time.perf_counter()
        f()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def numpy_ops(x, t, labels):
    def sigmoid(v):
        e = np.exp(-np.abs(v))
        return np.where(v >= 0, 1.0, e) / (1.0 + e)

    def ce():
        z = x[: labels.size * CLASSES].reshape(-1, CLASSES)
        m = z.max(axis=1, keepdims=True)
        lse = np.log(np.exp(z - m).sum(axis=1)) + m[:, 0]
        return (lse - z[np.arange(labels.size), labels]).mean()

    def metrics():
        e = t - x
        a = np.abs(e)
        return [
            (e * e).mean(),
            a.mean(),
            (100 * a / np.maximum(np.abs(t), np.finfo(np.float32).eps)).mean(),
            (200 * a / (np.abs(t) + np.abs(x))).mean(),
            np.where(a <= HUBER_DELTA, 0.5 * e * e, HUBER_DELTA * (a - 0.5 * HUBER_DELTA)).mean(),
            (a + np.log1p(np.exp(-2 * a)) - np.log(2)).mean(),
            np.maximum(QUANTILE * e, (QUANTILE - 1) * e).mean(),
        ]

    return {
        "sigmoid": lambda: sigmoid(x),
        "tanh": lambda: np.tanh(x),
        "swish": lambda: x * sigmoid(x),
        "relu": lambda: np.maximum(x, 0),
        "mse": lambda: ((x - t) ** 2).mean(),
        "mae": lambda: np.abs(x - t).mean(),
        "huber": lambda: (
            lambda a: np.where(a <= HUBER_DELTA, 0.5 * a * a, HUBER_DELTA * (a - 0.5 * HUBER_DELTA)).mean()
        )(np.abs(t - x)),
        "quantile": lambda: (lambda e: np.maximum(QUANTILE * e, (QUANTILE - 1) * e).mean())(t - x),
        "bce-logits": lambda: (np.maximum(x, 0) - x * t + np.log1p(np.exp(-np.abs(x)))).mean(),
        "cross-entropy m=10": ce,
        "metrics (fused)": metrics,
        "grad-stats": lambda: [
            np.linalg.norm(x),
            np.abs(x).max(),
            np.isnan(x).sum(),
            np.isinf(x).sum(),
            (np.abs(x) < GRAD_EPS).mean(),
        ],
    }


def jax_ops(x, t, labels):
    import jax
    import jax.numpy as jnp

    xs, ts, ls = jnp.asarray(x), jnp.asarray(t), jnp.asarray(labels.astype(np.int32))
    z = jnp.asarray(x[: labels.size * CLASSES].reshape(-1, CLASSES))

    def huber(p, y):
        return jnp.sum(
            jnp.where(jnp.abs(y - p) <= HUBER_DELTA, 0.5 * (y - p) ** 2, HUBER_DELTA * (jnp.abs(y - p) - 0.5 * HUBER_DELTA))
        )

    def bce(p, y):
        return jnp.sum(jnp.maximum(p, 0) - p * y + jnp.log1p(jnp.exp(-jnp.abs(p))))

    def ce(z, ls):
        lse = jax.nn.logsumexp(z, axis=1)
        return jnp.sum(lse - jnp.take_along_axis(z, ls[:, None], axis=1)[:, 0])

    def metrics(p, y):
        e = y - p
        a = jnp.abs(e)
        return jnp.stack([
            jnp.mean(e * e),
            jnp.mean(a),
            jnp.mean(100 * a / jnp.maximum(jnp.abs(y), jnp.finfo(jnp.float32).eps)),
            jnp.mean(200 * a / (jnp.abs(y) + jnp.abs(p))),
            huber(p, y) / p.size,
            jnp.mean(a + jnp.log1p(jnp.exp(-2 * a)) - jnp.log(2.0)),
            jnp.mean(jnp.maximum(QUANTILE * e, (QUANTILE - 1) * e)),
        ])

    def grad_stats(v):
        a = jnp.abs(v)
        return jnp.stack([
            jnp.linalg.norm(v),
            jnp.max(a),
            jnp.sum(jnp.isnan(v)),
            jnp.sum(jnp.isinf(v)),
            jnp.mean(a < GRAD_EPS),
        ])

    def run(f, *args):
        g = jax.jit(f)
        return lambda: g(*args).block_until_ready()

    def grad(f, *args):
        g = jax.jit(jax.grad(f))
        return lambda: g(*args).block_until_ready()

    n = x.size
    return {
        "sigmoid": run(jax.nn.sigmoid, xs),
        "tanh": run(jnp.tanh, xs),
        "swish": run(jax.nn.silu, xs),
        "sigmoid'": grad(lambda v: jnp.sum(jax.nn.sigmoid(v)), xs),
        "relu": run(jax.nn.relu, xs),
        "mse": run(lambda p, y: jnp.mean((p - y) ** 2), xs, ts),
        "mse grad": grad(lambda p, y: jnp.sum((p - y) ** 2), xs, ts),
        "mae": run(lambda p, y: jnp.mean(jnp.abs(p - y)), xs, ts),
        "huber": run(lambda p, y: huber(p, y) / n, xs, ts),
        "huber grad": grad(huber, xs, ts),
        "quantile": run(lambda p, y: jnp.mean(jnp.maximum(QUANTILE * (y - p), (QUANTILE - 1) * (y - p))), xs, ts),
        "bce-logits": run(lambda p, y: bce(p, y) / n, xs, ts),
        "bce-logits grad": grad(bce, xs, ts),
        "cross-entropy m=10": run(lambda z, l: ce(z, l) / l.size, z, ls),
        "cross-entropy m=10 grad": grad(ce, z, ls),
        "metrics (fused)": run(metrics, xs, ts),
        "grad-stats": run(grad_stats, xs),
    }


def torch_ops(x, t, labels):
    import torch
    import torch.nn.functional as F

    xs, ts = torch.from_numpy(x), torch.from_numpy(t)
    z = torch.from_numpy(x[: labels.size * CLASSES].reshape(-1, CLASSES))
    ls = torch.from_numpy(labels)

    def grad(loss, v):
        def f():
            p = v.detach().requires_grad_()
            loss(p).backward()
            return p.grad

        return f

    def metrics():
        with torch.no_grad():
            e = ts - xs
            a = e.abs()
            return [
                F.mse_loss(xs, ts),
                F.l1_loss(xs, ts),
                (100 * a / ts.abs().clamp_min(torch.finfo(torch.float32).eps)).mean(),
                (200 * a / (ts.abs() + xs.abs())).mean(),
                F.huber_loss(xs, ts, delta=HUBER_DELTA),
                (a + torch.log1p(torch.exp(-2 * a)) - np.log(2)).mean(),
                torch.maximum(QUANTILE * e, (QUANTILE - 1) * e).mean(),
            ]

    def nograd(f):
        def g():
            with torch.no_grad():
                return f()

        return g

    return {
        "sigmoid": nograd(lambda: torch.sigmoid(xs)),
        "tanh": nograd(lambda: torch.tanh(xs)),
        "swish": nograd(lambda: F.silu(xs)),
        "sigmoid'": grad(lambda p: torch.sigmoid(p).sum(), xs),
        "relu": nograd(lambda: torch.relu(xs)),
        "mse": nograd(lambda: F.mse_loss(xs, ts)),
        "mse grad": grad(lambda p: F.mse_loss(p, ts, reduction="sum"), xs),
        "mae": nograd(lambda: F.l1_loss(xs, ts)),
        "huber": nograd(lambda: F.huber_loss(xs, ts, delta=HUBER_DELTA)),
        "huber grad": grad(lambda p: F.huber_loss(p, ts, delta=HUBER_DELTA, reduction="sum"), xs),
        "quantile": nograd(lambda: torch.maximum(QUANTILE * (ts - xs), (QUANTILE - 1) * (ts - xs)).mean()),
        "bce-logits": nograd(lambda: F.binary_cross_entropy_with_logits(xs, ts)),
        "bce-logits grad": grad(lambda p: F.binary_cross_entropy_with_logits(p, ts, reduction="sum"), xs),
        "cross-entropy m=10": nograd(lambda: F.cross_entropy(z, ls)),
        "cross-entropy m=10 grad": grad(lambda p: F.cross_entropy(p, ls, reduction="sum"), z),
        "metrics (fused)": metrics,
        "grad-stats": nograd(lambda: [
            torch.linalg.vector_norm(xs),
            xs.abs().max(),
            xs.isnan().sum(),
            xs.isinf().sum(),
            (xs.abs() < GRAD_EPS).float().mean(),
        ]),
    }


PEERS = [("numpy", numpy_ops), ("jax", jax_ops), ("torch", torch_ops)]


def lossgpu_times(binary, sizes):
    out = subprocess.run(
        [binary, "bench", "--backend", "cpu", "--sizes", ",".join(map(str, sizes)), "--format", "json"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return {(r["op"], r["n"]): r["cpu_seconds"] for r in json.loads(out)["results"]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1048576,16777216")
    ap.add_argument("--lossgpu", default=os.path.join(os.path.dirname(__file__), "..", "target", "release", "lossgpu"))
    ap.add_argument("--json", help="also write every time to this file")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    rows = []
    for n in sizes:
        # lossgpu right before the peers at each size, so that all sides of
        # a ratio run minutes apart at most.
        ours = lossgpu_times(args.lossgpu, [n])
        x, t, labels = data(n)
        times = {}
        for name, make in PEERS:
            try:
                ops = make(x, t, labels)
            except ImportError:
                print(f"{name}: not installed, skipped", file=sys.stderr)
                continue
            for op, f in ops.items():
                times[(op, name)] = timed(f)
        for (op, size), ours_s in ours.items():
            if ours_s is None:
                continue
            row = {"op": op, "n": size, "lossgpu": ours_s}
            row.update({name: times.get((op, name)) for name, _ in PEERS})
            rows.append(row)

    names = [name for name, _ in PEERS]
    head = f"{'op':<24}{'n':>10}{'lossgpu ms':>12}" + "".join(f"{p + ' ms':>11}" for p in names)
    head += "".join(f"{'/' + p:>8}" for p in names) + f"{'/best':>8}"
    print(head)
    for r in rows:
        line = f"{r['op']:<24}{r['n']:>10}{r['lossgpu'] * 1e3:>12.3f}"
        line += "".join(f"{r[p] * 1e3:>11.3f}" if r[p] else f"{'-':>11}" for p in names)
        line += "".join(f"{r['lossgpu'] / r[p]:>8.2f}" if r[p] else f"{'-':>8}" for p in names)
        best = min((r[p] for p in names if p != "numpy" and r[p]), default=None)
        r["over_best"] = r["lossgpu"] / best if best else None
        line += f"{r['over_best']:>8.2f}" if best else f"{'-':>8}"
        print(line)
    print("ratios: lossgpu time / peer time (below 1: lossgpu faster); /best against the faster of JAX and PyTorch.")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
