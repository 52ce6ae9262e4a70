#!/usr/bin/env python3
"""Convolutions on the CPU: smelt ingots (old and new builds, say) against
PyTorch eager at the same thread count, alternating in one run.

Three workloads: the CNN's training step (examples/cnn.smelt, batch 64),
its batch-1 inference, and a nearest-2x upsample in front of a 3x3
convolution, forward and backward (bench/upconv.smelt: B 8, 32 -> 32
channels, 32x32 -> 64x64). Each smelt figure is `smelt bench`'s median
over its runs; each round runs every ingot and then the PyTorch twin; a
figure is the median of its rounds (the min of the rounds in brackets).

Usage: python3 bench/compare_conv.py THREADS ROUNDS LABEL=DIR [LABEL=DIR ...]
where DIR holds cnn.ingot, cnn-b1.ingot and upconv.ingot, built by
  smelt build examples/cnn.smelt -o DIR/cnn.ingot
  smelt build examples/cnn.smelt -D B=1 --entry=infer -o DIR/cnn-b1.ingot
  smelt build bench/upconv.smelt -o DIR/upconv.ingot
"""
import re
import statistics
import subprocess
import sys
import time

THREADS, ROUNDS = int(sys.argv[1]), int(sys.argv[2])
BUILDS = [a.split("=", 1) for a in sys.argv[3:]]
WORK = [("cnn step", "cnn.ingot", "train_step", 10), ("cnn infer b1", "cnn-b1.ingot", "infer", 1000),
        ("upconv fwd+bwd", "upconv.ingot", "train_step", 10)]


def smelt_ms(ingot, entry, runs):
    out = subprocess.run(["build/smelt", "bench", ingot, f"--entry={entry}", "--device=cpu",
                          f"--threads={THREADS}", f"--runs={runs}"], check=True, capture_output=True, text=True).stdout
    return float(re.search(r"median ([\d.]+) ms", out).group(1))


def torch_twins(torch):
    nn, F = torch.nn, torch.nn.functional
    torch.manual_seed(1)
    def make_cnn():
        return nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Flatten(), nn.Dropout(0.25), nn.Linear(64 * 49, 128), nn.ReLU(),
                             nn.Dropout(0.5), nn.Linear(128, 10))

    cnn = make_cnn()
    opt = torch.optim.Adam(cnn.parameters(), lr=1e-3)
    x, y = torch.rand(64, 1, 28, 28), torch.randint(0, 10, (64,))

    def cnn_step():
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(cnn(x), y).backward()
        opt.step()

    infer = make_cnn().eval()
    x1 = torch.rand(1, 1, 28, 28)

    def cnn_infer():
        with torch.no_grad():
            infer(x1)

    conv, s = nn.Conv2d(32, 32, 3, padding=1), nn.Parameter(torch.ones(1, 32, 1, 1))
    uopt = torch.optim.SGD(list(conv.parameters()) + [s], lr=1e-3)
    ux, ut = torch.rand(8, 32, 32, 32), torch.rand(8, 32, 64, 64)

    def upconv():
        uopt.zero_grad(set_to_none=True)
        F.mse_loss(conv(F.interpolate(ux * s, scale_factor=2, mode="nearest")), ut).backward()
        uopt.step()

    return {"cnn step": (cnn_step, 10), "cnn infer b1": (cnn_infer, 1000), "upconv fwd+bwd": (upconv, 10)}


def median_ms(fn, runs, warm=3):
    times = []
    for i in range(warm + runs):
        t0 = time.perf_counter()
        fn()
        if i >= warm:
            times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def main():
    try:
        import torch
        torch.set_num_threads(THREADS)
        twins, ref = torch_twins(torch), "PyTorch %s eager" % torch.__version__
    except ImportError:  # reported as skipped, never as a win
        twins, ref = None, "PyTorch: skipped, not installed"
    got = {}
    for _ in range(ROUNDS):
        for what, ingot, entry, runs in WORK:
            for label, d in BUILDS:
                got.setdefault((what, label), []).append(smelt_ms(f"{d}/{ingot}", entry, runs))
            if twins:
                fn, runs = twins[what]
                got.setdefault((what, "torch"), []).append(median_ms(fn, runs))
    labels = [l for l, _ in BUILDS] + (["torch"] if twins else [])
    print("| %d thread(s), %d rounds | %s |" % (THREADS, ROUNDS, " | ".join([l for l, _ in BUILDS] + [ref])))
    print("|---|" + "---:|" * (len(BUILDS) + 1))
    for what, *_ in WORK:
        cells = ["%.3f ms (%.3f)" % (statistics.median(got[(what, l)]), min(got[(what, l)])) for l in labels]
        print("| %s | %s |" % (what, " | ".join(cells + ([] if twins else ["-"]))))
    last = BUILDS[-1][0]
    print()
    for what, *_ in WORK:
        m = {l: statistics.median(got[(what, l)]) for l in labels}
        print("%s: %s" % (what, ", ".join("%s/%s %.2f" % (l, last, m[l] / m[last]) for l in labels if l != last)))


if __name__ == "__main__":
    main()
