#!/usr/bin/env python3
"""The PyTorch side of the GPU check, on the same card as smelt's numbers.

Prints one line per measurement, "key=value", for scripts/gpu-check.sh:
the device-to-device copy bandwidth, the same pointwise and reduction work
as bench/gpu/*.smelt, torch.matmul at 4096^3 in fp32 (TF32 off), TF32 and
bf16, and one epoch of the MLP of examples/mlp.smelt (784-256-256-10, batch
128, AdamW lr 1e-3 wd 0.01, cosine schedule with 100 warm-up steps) on
Fashion-MNIST, with its test accuracy. Times are medians of CUDA-event
timings after warm-up.

Usage: python3 bench/gpu_torch.py DATA_DIR
"""
import gzip
import math
import statistics
import struct
import sys
import time


def timed(fn, runs=20, warm=3):
    import torch
    for _ in range(warm):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(runs):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b))
    return statistics.median(times)


def idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return data[4 + 4 * ndim:], dims


def mlp_epoch(torch, data_dir):
    dev = "cuda"
    xs, xd = idx(f"{data_dir}/train-images-idx3-ubyte.gz")
    ys, _ = idx(f"{data_dir}/train-labels-idx1-ubyte.gz")
    tx, td = idx(f"{data_dir}/t10k-images-idx3-ubyte.gz")
    ty, _ = idx(f"{data_dir}/t10k-labels-idx1-ubyte.gz")
    x = torch.frombuffer(bytearray(xs), dtype=torch.uint8).reshape(xd[0], 784).to(dev).float() / 255
    y = torch.frombuffer(bytearray(ys), dtype=torch.uint8).to(dev).long()
    xt = torch.frombuffer(bytearray(tx), dtype=torch.uint8).reshape(td[0], 784).to(dev).float() / 255
    yt = torch.frombuffer(bytearray(ty), dtype=torch.uint8).to(dev).long()
    torch.manual_seed(1)
    model = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Linear(256, 256),
                                torch.nn.ReLU(), torch.nn.Linear(256, 10)).to(dev)
    steps = x.shape[0] // 128
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / 100 if s < 100 else 0.5 * (1 + math.cos(math.pi * (s - 100) / (steps - 100))))
    perm = torch.randperm(x.shape[0], device=dev)
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for s in range(steps):
        i = perm[s * 128:(s + 1) * 128]
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(model(x[i]), y[i])
        loss.backward()
        opt.step()
        sched.step()
        loss.item()   # smelt's trainer reads the loss every step too
    torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    with torch.no_grad():
        acc = (model(xt).argmax(1) == yt).float().mean().item()
    return seconds, acc, steps


def main():
    try:
        import torch
    except ImportError:
        print("torch=absent")
        return
    if not torch.cuda.is_available():
        print("torch=no-cuda")
        return
    print(f"torch={torch.__version__}")
    print(f"card={torch.cuda.get_device_name(0)}")
    n = 1 << 28   # 1 GiB of floats
    a = torch.empty(n, device="cuda")
    b = torch.empty(n, device="cuda")
    ms = timed(lambda: b.copy_(a))
    print(f"copy_gbs={2 * 4 * n / ms / 1e6:.0f}")
    del a, b
    x = torch.rand(1 << 26, device="cuda")
    y = torch.rand(1 << 26, device="cuda")
    ms = timed(lambda: x * 2.0 + y)
    print(f"pointwise_ms={ms:.4f}")
    r = torch.rand(16384, 4096, device="cuda")
    print(f"sum_long_rows_ms={timed(lambda: r.sum(1)):.4f}")
    r = torch.rand(1048576, 64, device="cuda")
    print(f"sum_short_rows_ms={timed(lambda: r.sum(1)):.4f}")
    del r
    for name, dtype, tf32 in [("fp32", torch.float32, False), ("tf32", torch.float32, True), ("bf16", torch.bfloat16, False)]:
        torch.backends.cuda.matmul.allow_tf32 = tf32
        p = torch.rand(4096, 4096, device="cuda", dtype=dtype)
        q = torch.rand(4096, 4096, device="cuda", dtype=dtype)
        ms = timed(lambda: p @ q)
        print(f"matmul_{name}_tflops={2 * 4096 ** 3 / ms / 1e9:.1f}")
    torch.backends.cuda.matmul.allow_tf32 = False
    if len(sys.argv) > 1:
        seconds, acc, steps = mlp_epoch(torch, sys.argv[1])
        print(f"mlp_epoch_s={seconds:.2f}")
        print(f"mlp_steps={steps}")
        print(f"mlp_test_acc={100 * acc:.2f}")


if __name__ == "__main__":
    main()
