"""Writes the ONNX backend conformance cases into a folder, for
tests/onnx/conformance.py (run through scripts/onnx-suite.sh).

The onnx wheel ships the generators of the node cases, not their data:
onnx.backend.test.case.node.collect_testcases() builds every case's model and
its inputs and expected outputs, which this writes in the layout of ONNX's
own test data (NAME/model.onnx, NAME/test_data_set_N/{input,output}_K.pb).
The whole-model folders (simple, pytorch-converted, pytorch-operator) ship
with their data and are copied as they are.

usage: gen_suite.py OUT_DIR
"""
import os
import shutil
import sys
import warnings

import onnx
from onnx import numpy_helper
from onnx.backend.test.case import node

MODEL_KINDS = ("simple", "pytorch-converted", "pytorch-operator")


def tensor_proto(value, name):
    if isinstance(value, onnx.TensorProto):
        return value
    return numpy_helper.from_array(value, name)


def value_proto(value, vi):
    t = vi.type
    if t.HasField("sequence_type"):
        return numpy_helper.from_list(value, vi.name)
    if t.HasField("optional_type"):
        return numpy_helper.from_optional(value, vi.name)
    if t.HasField("map_type"):
        return numpy_helper.from_dict(value, vi.name)
    return tensor_proto(value, vi.name)


def write_node_cases(out):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cases = node.collect_testcases(None)
    for case in cases:
        d = os.path.join(out, "node", case.name)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "model.onnx"), "wb") as f:
            f.write(case.model.SerializeToString())
        for i, (inputs, outputs) in enumerate(case.data_sets):
            ds = os.path.join(d, "test_data_set_%d" % i)
            os.makedirs(ds, exist_ok=True)
            for k, v in enumerate(inputs):
                with open(os.path.join(ds, "input_%d.pb" % k), "wb") as f:
                    f.write(value_proto(v, case.model.graph.input[k]).SerializeToString())
            for k, v in enumerate(outputs):
                with open(os.path.join(ds, "output_%d.pb" % k), "wb") as f:
                    f.write(value_proto(v, case.model.graph.output[k]).SerializeToString())
    return len(cases)


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: gen_suite.py OUT_DIR")
    out = sys.argv[1]
    if os.path.exists(out):
        shutil.rmtree(out)
    n = write_node_cases(out)
    data = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data")
    m = 0
    for kind in MODEL_KINDS:
        shutil.copytree(os.path.join(data, kind), os.path.join(out, kind))
        m += len(os.listdir(os.path.join(out, kind)))
    with open(os.path.join(out, "VERSION"), "w") as f:
        f.write("onnx %s\n" % onnx.__version__)
    print("gen_suite: %d node cases and %d model folders in %s (onnx %s)" % (n, m, out, onnx.__version__))


if __name__ == "__main__":
    main()
