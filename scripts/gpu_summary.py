#!/usr/bin/env python3
"""The short table of the GPU check, from the logs scripts/gpu-check.sh wrote.

Usage: python3 scripts/gpu_summary.py OUTDIR COMMIT ARCH
"""
import datetime
import os
import re
import sys


def read(out, name):
    path = os.path.join(out, name)
    return open(path).read() if os.path.exists(path) else ""


def main():
    out, commit, arch = sys.argv[1], sys.argv[2], sys.argv[3]
    card = read(out, "card.txt").strip() or "unknown card"
    torch = dict(line.split("=", 1) for line in read(out, "torch.log").splitlines() if "=" in line)
    print(f"# GPU check: {card}")
    print(f"\n{datetime.date.today()}, smelt commit {commit}, kernels compiled for {arch}; "
          f"PyTorch {torch.get('torch', 'absent')} on the same card.\n")

    print("## Numerics (every kernel against the CPU device, fresh random inputs, poisoned outputs)\n")
    print("| ingot | kernels | result |\n|---|---:|---|")
    failed = 0
    for line in read(out, "numerics.log").splitlines():
        m = re.match(r"(\S+): (\d+) kernels checked on .*, (.*)$", line)
        if m:
            failed += m.group(3) != "all within tolerance"
            print(f"| {os.path.basename(m.group(1))} | {m.group(2)} | {m.group(3)} |")
    bad = [l.strip() for l in read(out, "numerics.log").splitlines() if "differs" in l or "FAILED to run" in l or "error" in l]
    for l in bad[:10]:
        print(f"\n    {l}")

    print("\n## Training: examples/mlp.smelt, one epoch of Fashion-MNIST\n")
    train = read(out, "train.log")
    acc = re.findall(r"accuracy ([\d.]+)%", train)
    took = re.findall(r"trained (\d+) steps in ([\d.]+)s", train)
    print("| | epoch time (s) | test accuracy |\n|---|---:|---:|")
    if took:
        print(f"| smelt (CUDA) | {took[-1][1]} (incl. the test evaluation) | {acc[-1] if acc else '?'}% |")
    else:
        print(f"| smelt (CUDA) | failed | see train.log |")
    took = re.findall(r"trained (\d+) steps in ([\d.]+)s", read(out, "train-nographs.log"))
    acc = re.findall(r"accuracy ([\d.]+)%", read(out, "train-nographs.log"))
    print(f"| smelt (CUDA), --no-graphs | {took[-1][1] if took else 'failed'} | {acc[-1] if acc else '?'}% |")
    if "mlp_epoch_s" in torch:
        print(f"| PyTorch eager | {torch['mlp_epoch_s']} | {torch['mlp_test_acc']}% |")

    print("\n## CUDA graphs: batch-1 inference of the MLP, whole runs\n")
    lat = re.findall(r"median ([\d.]+) ms, p99 ([\d.]+) ms", read(out, "graphs.log"))
    print("| launches | median (ms) | p99 (ms) |\n|---|---:|---:|")
    for name, m in zip(["one graph per run", "one by one (--no-graphs)"], lat):
        print(f"| {name} | {m[0]} | {m[1]} |")
    if len(lat) < 2:
        print("| failed | see graphs.log | |")

    print("\n## Benchmarks\n")
    rows = {}
    for line in read(out, "bench.md").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 6 and cells[1].replace(".", "").isdigit():
            rows[cells[0]] = cells
    copy = next((r for k, r in rows.items() if k.startswith("device-to-device")), None)
    print("| what | smelt | reference (same card) | smelt / reference |\n|---|---:|---:|---:|")
    if copy:
        ref = torch.get("copy_gbs")
        print(f"| device-to-device copy, GB/s (read + written) | {copy[3]} | {ref or '-'} (torch) | |")

    def smelt_ms(prefix, ops):
        return sum(float(r[1]) for k, r in rows.items() if k.startswith(prefix) and any(k.endswith(o) for o in ops))

    def line(what, ms, ref_key, bytes_moved):
        ref = float(torch[ref_key]) if ref_key in torch else None
        gbs = bytes_moved / (ms * 1e6) if ms else 0
        ref_txt = f"{ref:.3f} ms" if ref else "-"
        ratio = f"{ref / ms:.2f}" if ref and ms else "-"
        frac = f", {gbs / float(copy[3]):.2f} of copy" if copy and ms else ""
        print(f"| {what} | {ms:.3f} ms ({gbs:.0f} GB/s{frac}) | {ref_txt} | {ratio} (speed) |")

    pw = smelt_ms("pointwise", ["_mul", "_add"])
    if pw:
        line("x * 2 + y, 64 Mi f32 (2 kernels unfused, like eager PyTorch)", pw, "pointwise_ms", 5 * 4 * 2 ** 26)
    s1 = [r for k, r in rows.items() if k.startswith("reduce") and k.endswith("_sum")]
    if len(s1) >= 2:
        line("sum of 16384 rows of 4096 f32 (a block per row)", float(s1[0][1]), "sum_long_rows_ms", 4 * 16384 * 4096)
        line("sum of 1 Mi rows of 64 f32 (a warp per row)", float(s1[1][1]), "sum_short_rows_ms", 4 * 1048576 * 64)
    mm = [r for k, r in rows.items() if k.startswith("matmul")]
    if mm:
        tf = float(mm[0][5] or 0)
        ref = torch.get("matmul_fp32_tflops")
        print(f"| matmul 4096^3 f32, TFLOP/s | {tf:.1f} | {ref or '-'} (cuBLAS fp32; tf32 {torch.get('matmul_tf32_tflops', '-')}, "
              f"bf16 {torch.get('matmul_bf16_tflops', '-')}) | {tf / float(ref):.2f} |" if ref else
              f"| matmul 4096^3 f32, TFLOP/s | {tf:.1f} | - | - |")
    for name, key, what in [("matmul_bf16", "matmul_bf16_tflops", "bf16 (mma.sync m16n8k16)"),
                            ("matmul_tf32", "matmul_tf32_tflops", "tf32 policy (mma.sync m16n8k8)")]:
        low = [l for l in read(out, f"bench-{name}.md").splitlines() if "_matmul" in l]
        if not low:
            print(f"| matmul 4096^3 {what}, TFLOP/s | failed: see bench-{name}.md | | |")
            continue
        cells = [c.strip() for c in low[0].strip().strip("|").split("|")]
        tf = float(cells[5] or 0)
        ref = torch.get(key)
        ratio = f"{tf / float(ref):.2f}" if ref else "-"
        print(f"| matmul 4096^3 {what}, TFLOP/s | {tf:.1f} | {ref or '-'} (torch.matmul) | {ratio} |")
    for p in ["fp32", "bf16"]:
        first = read(out, f"gpt-{p}.txt").splitlines()[:1]
        m = re.search(r"([\d.]+) ms per run", first[0]) if first else None
        print(f"| GPT training step (B8 T128 C256 L4 H8), {p}, ms | {m.group(1) if m else 'failed'} | | |")
    prof = read(out, "profile.txt").splitlines()
    if prof:
        print(f"\nMLP training step profile: {prof[0]}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
