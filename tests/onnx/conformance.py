"""The ONNX backend conformance suite, run through smelt (docs/onnx.md).

Every case of SUITE_DIR (written by tests/onnx/gen_suite.py) is run on the
CPU device as `smelt run CASE/model.onnx --inputs=... --outputs=...`, once
per test_data_set, and its outputs are compared with the expected ones with
ONNX's tolerances (rtol 1e-3, atol 1e-7; integers and bools exactly, dtypes
and shapes exactly). A case with the right outputs must also build for the
GPU targets and pass `smelt-rt check --device=cpu`. Each case's result is
pass, or fail with the first line of what went wrong.

The expectations file holds every case's expected status. A case whose
result is not the one expected (a pass that now fails, or a fail that now
passes) fails the run, until the file is rewritten with --update; a case
that crashes smelt fails it always.

usage: conformance.py SUITE_DIR --smelt PATH --expect FILE [--update]
                      [--jobs N] [--filter REGEX] [--report FILE] [--verbose]
"""
import argparse
import collections
import concurrent.futures as futures
import os
import re
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import onnx
from onnx import numpy_helper

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import tensorfile  # noqa: E402  (tests/tensorfile.py)

RTOL, ATOL = 1e-3, 1e-7
MODEL_KINDS = ("simple", "pytorch-converted", "pytorch-operator")
# the tensor element types of the primary cases: float, uint8 is not, int32, int64, bool
PRIMARY_TYPES = {onnx.TensorProto.FLOAT, onnx.TensorProto.INT32, onnx.TensorProto.INT64, onnx.TensorProto.BOOL}
STATUSES = ("pass", "fail", "skip")


def case_dirs(suite, name_filter):
    cases = []
    for kind in ("node",) + MODEL_KINDS:
        top = os.path.join(suite, kind)
        for name in sorted(os.listdir(top)):
            key = name if kind == "node" else "%s/%s" % (kind, name)
            if name_filter and not re.search(name_filter, key):
                continue
            cases.append((key, kind, os.path.join(top, name)))
    return cases


def is_primary(kind, name, model):
    """A node case that is not a function's expansion, all of whose graph
    inputs and outputs are tensors of float, int32, int64 or bool."""
    if kind != "node" or "_expanded" in name:
        return False
    for vi in list(model.graph.input) + list(model.graph.output):
        t = vi.type
        if not t.HasField("tensor_type") or t.tensor_type.elem_type not in PRIMARY_TYPES:
            return False
    return True


def family(model):
    """The op type a case is counted under: that of the node computing the
    first output (the case's op in a node case)."""
    g = model.graph
    want = g.output[0].name if g.output else None
    for n in reversed(g.node):
        if want in n.output:
            return n.op_type
    return g.node[-1].op_type if g.node else "(none)"


def error_line(text, case_dir):
    """The first error of smelt's messages, without the file it names."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if "error:" in line:
            msg = line.split("error:", 1)[1].strip()
            msg = msg.replace(case_dir + "/", "")
            msg = re.sub(r"^\S*model\.(onnx|smelt)(:\d+:\d+)?:\s*", "", msg)
            if "op type" in msg and "the importer does not support" in msg:
                ops = [l.strip().split(" ")[0] for l in lines[i + 1:] if l.startswith("  ") and "(domain" in l]
                return "unsupported op: " + ", ".join(ops)
            return msg
    return (lines[-1] if lines else "no output").strip()


def compare(name, want, got):
    if got is None:
        return "no output '%s'" % name
    if got.dtype != want.dtype:
        return "output '%s' is %s, expected %s" % (name, got.dtype, want.dtype)
    if got.shape != want.shape:
        return "output '%s' has shape %s, expected %s" % (name, list(got.shape), list(want.shape))
    if want.dtype.kind == "f":
        w, g = want.astype(np.float64), got.astype(np.float64)
        same_nan = np.isnan(w) & np.isnan(g)
        same_inf = np.isinf(w) & (w == g)
        with np.errstate(invalid="ignore"):   # inf - inf: judged by same_inf
            bad = ~(same_nan | same_inf | (np.abs(g - w) <= ATOL + RTOL * np.abs(w)))
    else:
        bad = want != got
    if bad.any():
        i = np.unravel_index(np.argmax(bad), bad.shape) if want.ndim else ()
        return "output '%s'%s is %s, expected %s (%d of %d values differ)" % (
            name, list(i) if want.ndim else "", got[i], want[i], int(bad.sum()), bad.size)
    return None


def run_case(smelt, key, kind, path, timeout):
    """(status, reason, primary, family) of one case."""
    try:
        model = onnx.load(os.path.join(path, "model.onnx"))
    except Exception as e:  # a case the onnx package cannot read is not one to judge smelt by
        return "skip", "onnx cannot read the model: %s" % e, False, "(unreadable)"
    primary, fam = is_primary(kind, key, model), family(model)
    sets = sorted(d for d in os.listdir(path) if d.startswith("test_data_set_"))
    if not sets:
        return "skip", "no test data", primary, fam
    tmp = tempfile.mkdtemp(prefix="smelt-onnx-case-")
    try:
        for ds in sets:
            dsp = os.path.join(path, ds)
            named = []
            for k, vi in enumerate(model.graph.input):
                f = os.path.join(dsp, "input_%d.pb" % k)
                if not os.path.exists(f):
                    break
                if not vi.type.HasField("tensor_type"):
                    return "fail", "input '%s' is not a tensor" % vi.name, primary, fam
                t = onnx.TensorProto()
                with open(f, "rb") as fh:
                    t.ParseFromString(fh.read())
                a = numpy_helper.to_array(t)
                if a.dtype not in tensorfile.CODES:
                    return "fail", "input '%s' is %s, a dtype smelt lacks" % (vi.name, a.dtype), primary, fam
                named.append((vi.name, a))
            want = []
            for k, vi in enumerate(model.graph.output):
                f = os.path.join(dsp, "output_%d.pb" % k)
                if not vi.type.HasField("tensor_type"):
                    return "fail", "output '%s' is not a tensor" % vi.name, primary, fam
                t = onnx.TensorProto()
                with open(f, "rb") as fh:
                    t.ParseFromString(fh.read())
                want.append((vi.name, numpy_helper.to_array(t)))
            inp, outp = os.path.join(tmp, "in.tensors"), os.path.join(tmp, "out.tensors")
            tensorfile.write(inp, named)
            cmd = [smelt, "run", os.path.join(path, "model.onnx"), "--device=cpu", "--inputs=" + inp,
                   "--outputs=" + outp]
            try:
                p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                                   env=dict(os.environ, NO_COLOR="1"))
            except subprocess.TimeoutExpired:
                return "fail", "timed out after %d s" % timeout, primary, fam
            if p.returncode != 0:
                if p.returncode < 0:   # never expected: no expectations line can say crash
                    return "crash", "smelt died of signal %d" % -p.returncode, primary, fam
                return "fail", error_line(p.stderr, path), primary, fam
            got = tensorfile.read(outp)
            for name, w in want:
                why = compare(name, w, got.get(name))
                if why:
                    return "fail", why, primary, fam
        why = gpu_check(smelt, path, tmp, timeout, inp)
        if why:
            return ("crash" if why.startswith("crash:") else "fail"), why, primary, fam
        return "pass", "", primary, fam
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


GPU_TARGETS = "sm_80,sm_90,gfx90a,gfx942"


def gpu_check(smelt, path, tmp, timeout, inputs):
    """A case that computes the right numbers must also build for the GPU
    targets (PTX assembled by ptxas, AMDGCN by LLVM; built for the values of
    the last data set's inputs, as the run was) and pass smelt-rt check on the
    CPU device (every kernel against the reference); None when it does,
    else why not."""
    ingot = os.path.join(tmp, "model.ingot")
    smelt_rt = os.path.join(os.path.dirname(smelt), "smelt-rt")
    for what, cmd in (("GPU build", [smelt, "build", os.path.join(path, "model.onnx"), "--target=" + GPU_TARGETS,
                                      "--inputs=" + inputs, "-o", ingot]),
                      ("smelt-rt check", [smelt_rt, "check", "--device=cpu", ingot])):
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=dict(os.environ, NO_COLOR="1"))
        except subprocess.TimeoutExpired:
            return "%s timed out after %d s" % (what, timeout)
        if p.returncode < 0:
            return "crash: %s died of signal %d" % (what, -p.returncode)
        if p.returncode != 0:
            return "%s: %s" % (what, error_line(p.stderr + p.stdout, path))
    return None


def read_expectations(path):
    exp = {}
    if not os.path.exists(path):
        return exp
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if not line or line.startswith("#"):
                continue
            m = re.match(r"(\S+) (pass|fail|skip)(?:: (.*))?$", line)
            if not m:
                sys.exit("%s: cannot read the line '%s'" % (path, line))
            exp[m.group(1)] = (m.group(2), m.group(3) or "")
    return exp


def write_expectations(path, results):
    with open(path, "w") as f:
        f.write("# The expected result of every ONNX conformance case (docs/onnx.md): pass,\n"
                "# or fail/skip with the first line of what went wrong. Written by\n"
                "# scripts/onnx-suite.sh --update; the suite fails on any case that differs.\n")
        for key in sorted(results):
            st, why = results[key][:2]
            why = why.replace("\n", " ")[:200]
            f.write("%s %s%s\n" % (key, st, ": " + why if st != "pass" else ""))


def pct(a, b):
    return "%.1f%%" % (100.0 * a / b) if b else "-"


DOCS_BEGIN = "<!-- conformance table: written by scripts/onnx-suite.sh --report -->"
DOCS_END = "<!-- end of the conformance table -->"


def write_docs_table(docs, per_op):
    """The per-op status table of docs/onnx.md, between its two markers."""
    with open(docs) as f:
        text = f.read()
    if DOCS_BEGIN not in text or DOCS_END not in text:
        sys.exit("%s: the conformance table markers are missing" % docs)
    rows = ["| op | primary cases passing | status |", "|---|---|---|"]
    for op in sorted(per_op):
        ok, n = per_op[op]
        rows.append("| %s | %d of %d | %s |" % (op, ok, n, "supported" if ok == n else "partly" if ok else "not yet"))
    head, rest = text.split(DOCS_BEGIN, 1)
    tail = rest.split(DOCS_END, 1)[1]
    with open(docs, "w") as f:
        f.write(head + DOCS_BEGIN + "\n\n" + "\n".join(rows) + "\n\n" + DOCS_END + tail)


def report(results, path, docs=None):
    """The counts: every node case, the primary ones, the model folders, and
    per op type."""
    groups = {"all node cases": [], "primary (fp32/int/bool, not expanded)": [], "model folders": []}
    per_op = collections.defaultdict(lambda: [0, 0])
    for key, (st, _, primary, fam) in results.items():
        node = "/" not in key
        groups["all node cases" if node else "model folders"].append(st)
        if primary:
            groups["primary (fp32/int/bool, not expanded)"].append(st)
            per_op[fam][0] += st == "pass"
            per_op[fam][1] += 1
    lines = ["| cases | passed | failed | skipped | pass rate |", "|---|---|---|---|---|"]
    for g, sts in groups.items():
        c = collections.Counter(sts)
        lines.append("| %s | %d | %d | %d | %s |" % (g, c["pass"], c["fail"], c["skip"], pct(c["pass"], len(sts))))
    lines += ["", "Primary cases per op type (the op of the node computing the first output):", "",
              "| op | passed | cases |", "|---|---|---|"]
    for op in sorted(per_op):
        lines.append("| %s | %d | %d |" % (op, per_op[op][0], per_op[op][1]))
    text = "\n".join(lines) + "\n"
    if docs:
        write_docs_table(docs, per_op)
    if path:
        with open(path, "w") as f:
            f.write("# ONNX backend conformance (onnx %s), smelt on the CPU device\n\n" % onnx.__version__)
            f.write("Written by `scripts/onnx-suite.sh --report`.\n\n" + text)
    return groups


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("suite")
    ap.add_argument("--smelt", required=True)
    ap.add_argument("--expect", required=True)
    ap.add_argument("--update", action="store_true")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--filter")
    ap.add_argument("--report")
    ap.add_argument("--docs")
    ap.add_argument("--timeout", type=int, default=120)
    ap.add_argument("--verbose", action="store_true")
    a = ap.parse_args()
    cases = case_dirs(a.suite, a.filter)
    results = {}
    with futures.ThreadPoolExecutor(a.jobs) as pool:
        jobs = {pool.submit(run_case, a.smelt, key, kind, path, a.timeout): key for key, kind, path in cases}
        for j in futures.as_completed(jobs):
            results[jobs[j]] = j.result()
    if a.verbose:
        for key in sorted(results):
            st, why = results[key][:2]
            print("%s %s%s" % (key, st, ": " + why if why else ""))
    groups = report(results, a.report, a.docs)
    exp = read_expectations(a.expect)
    crashed = sorted(k for k, v in results.items() if v[0] == "crash")
    if a.update and not crashed:
        if a.filter:
            for key, v in exp.items():
                if key not in results:
                    results[key] = (v[0], v[1], False, "")
        write_expectations(a.expect, results)
    changed = []
    for key in sorted(results):
        got = results[key][0]
        want = exp.get(key, (None, ""))[0]
        if got != want and not a.update:
            changed.append("  %s: expected %s, got %s%s" % (key, want or "(no line)", got,
                                                            ": " + results[key][1] if results[key][1] else ""))
    missing = [] if a.filter or a.update else sorted(set(exp) - set(results))
    for g, sts in groups.items():
        c = collections.Counter(sts)
        if sts:
            print("onnx conformance (%s): %d passed, %d failed, %d skipped (%s of %d)" % (
                g, c["pass"], c["fail"], c["skip"], pct(c["pass"], len(sts)), len(sts)))
    if changed:
        print("onnx conformance: %d cases differ from %s (rerun with --update once intended):" % (
            len(changed), a.expect))
        print("\n".join(changed[:200]))
    if missing:
        print("onnx conformance: %d cases of %s are not in the suite: %s" % (
            len(missing), a.expect, ", ".join(missing[:20])))
    if crashed:
        print("onnx conformance: %d cases crash smelt: %s" % (len(crashed), ", ".join(crashed[:20])))
    sys.exit(1 if changed or missing or crashed else 0)


if __name__ == "__main__":
    main()
