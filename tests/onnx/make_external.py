"""ONNX models whose initializers live in external files (ONNX's
data_location EXTERNAL), for tests/test_onnx.c (onnx/external_data_*):

- external.onnx + external.weights: y = x * w + b, with w and b in
  external.weights (b at an offset), and the expected output;
- escape.onnx: the same graph whose w names '../escape.weights', which the
  importer must refuse.

usage: $(scripts/onnx-venv.sh) tests/onnx/make_external.py
"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import tensorfile  # noqa: E402  (tests/tensorfile.py)


def external(name, values, location, offset):
    t = TensorProto(name=name, data_type=TensorProto.FLOAT, dims=values.shape)
    t.data_location = TensorProto.EXTERNAL
    for k, v in (("location", location), ("offset", str(offset)), ("length", str(values.nbytes))):
        e = t.external_data.add()
        e.key, e.value = k, v
    return t


def model(w_location):
    w = np.arange(12, dtype=np.float32).reshape(3, 4) / 8
    b = np.array([0.5, -1, 2, 0.25], dtype=np.float32)
    g = helper.make_graph(
        [helper.make_node("Mul", ["x", "w"], ["t"]), helper.make_node("Add", ["t", "b"], ["y"])], "external",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 4])],
        [external("w", w, w_location, 0), external("b", b, "external.weights", 64)])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), w, b


def main():
    m, w, b = model("external.weights")
    with open(os.path.join(HERE, "external.weights"), "wb") as f:
        f.write(w.tobytes().ljust(64, b"\0") + b.tobytes())
    onnx.save(m, os.path.join(HERE, "external.onnx"))
    onnx.save(model("../escape.weights")[0], os.path.join(HERE, "escape.onnx"))
    x = np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4)
    tensorfile.write(os.path.join(HERE, "external.in.tensors"), [("x", x)])
    tensorfile.write(os.path.join(HERE, "external.out.tensors"), [("y", x * w + b)])


if __name__ == "__main__":
    main()
