# Writes the ONNX test models of tests/test_onnx.c with their inputs and the
# outputs onnx's reference evaluator computes, as tensor files (docs/tensors.md).
# Run with the pinned onnx of scripts/onnx-venv.sh:
#   $(scripts/onnx-venv.sh) tests/onnx/make_models.py
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import tensorfile  # noqa: E402  (tests/tensorfile.py)
rng = np.random.default_rng(7)


def write_tensors(path, tensors):
    tensorfile.write(path, tensors)


def init(name, a):
    return numpy_helper.from_array(np.asarray(a), name)


def save(name, nodes, inputs, outputs, inits, feeds, opset=17, expected=None):
    g = helper.make_graph(nodes, name, inputs, outputs, inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    onnx.checker.check_model(m)
    onnx.save(m, os.path.join(HERE, name + ".onnx"))
    if feeds is None:
        return
    got = expected(feeds) if expected else ReferenceEvaluator(m).run(None, feeds)
    write_tensors(os.path.join(HERE, name + ".in.tensors"), list(feeds.items()))
    write_tensors(os.path.join(HERE, name + ".out.tensors"), [(o.name, v) for o, v in zip(outputs, got)])


def f32(*shape):
    return rng.standard_normal(shape).astype(np.float32)


def vi(name, shape, t=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, t, shape)


# an MLP as PyTorch exports it: Gemm with transB, Relu, a second Gemm, Softmax
save("mlp", [
    helper.make_node("Gemm", ["x", "fc1.weight", "fc1.bias"], ["h"], name="fc1", transB=1),
    helper.make_node("Relu", ["h"], ["a"], name="relu"),
    helper.make_node("Gemm", ["a", "fc2.weight", "fc2.bias"], ["logits"], name="fc2", transB=1, alpha=0.5, beta=2.0),
    helper.make_node("Softmax", ["logits"], ["probs"], name="softmax", axis=-1),
], [vi("x", ["batch", 5])], [vi("probs", ["batch", 3])],
    [init("fc1.weight", f32(7, 5)), init("fc1.bias", f32(7)), init("fc2.weight", f32(3, 7)), init("fc2.bias", f32(3))],
    {"x": f32(4, 5)})

# a small CNN: Conv (pads, strides, group), MaxPool, AveragePool, Flatten, MatMul, LogSoftmax
save("cnn", [
    helper.make_node("Conv", ["x", "c1.w", "c1.b"], ["c1"], name="conv1", pads=[1, 1, 1, 1], strides=[1, 1]),
    helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
    helper.make_node("MaxPool", ["r1"], ["p1"], name="pool1", kernel_shape=[2, 2], strides=[2, 2]),
    helper.make_node("Conv", ["p1", "c2.w"], ["c2"], name="conv2", group=2, dilations=[1, 1], strides=[2, 1]),
    helper.make_node("AveragePool", ["c2"], ["p2"], name="pool2", kernel_shape=[1, 2], strides=[1, 1]),
    helper.make_node("Flatten", ["p2"], ["flat"], name="flatten", axis=1),
    helper.make_node("MatMul", ["flat", "fc.w"], ["logits"], name="fc"),
    helper.make_node("LogSoftmax", ["logits"], ["y"], name="logsoftmax", axis=1),
], [vi("x", [2, 2, 8, 8])], [vi("y", [2, 3])],
    [init("c1.w", f32(4, 2, 3, 3)), init("c1.b", f32(4)), init("c2.w", f32(4, 2, 1, 1))] +
    [init("fc.w", f32(4 * 2 * 3, 3))],
    {"x": f32(2, 2, 8, 8)})

# elementwise math, broadcasting, comparisons and Where, Cast, Pow, Erf
x = f32(3, 4)
x[0, 0] = 0.0
save("elementwise", [
    helper.make_node("Add", ["x", "b"], ["s"], name="add"),
    helper.make_node("Mul", ["s", "half"], ["m"], name="mul"),
    helper.make_node("Sub", ["m", "x"], ["d"], name="sub"),
    helper.make_node("Abs", ["d"], ["ad"], name="abs"),
    helper.make_node("Add", ["ad", "one"], ["ad1"], name="add1"),
    helper.make_node("Div", ["x", "ad1"], ["q"], name="div"),
    helper.make_node("Sqrt", ["ad1"], ["sq"], name="sqrt"),
    helper.make_node("Log", ["sq"], ["lg"], name="log"),
    helper.make_node("Exp", ["q"], ["ex"], name="exp"),
    helper.make_node("Tanh", ["ex"], ["th"], name="tanh"),
    helper.make_node("Sigmoid", ["x"], ["sg"], name="sigmoid"),
    helper.make_node("Neg", ["sg"], ["ng"], name="neg"),
    helper.make_node("Erf", ["x"], ["er"], name="erf"),
    helper.make_node("Pow", ["ad1", "two"], ["pw"], name="pow"),
    helper.make_node("Less", ["x", "b"], ["lt"], name="less"),
    helper.make_node("Greater", ["x", "zero"], ["gt"], name="greater"),
    helper.make_node("Equal", ["x", "zero"], ["eq"], name="equal"),
    helper.make_node("Where", ["lt", "th", "ng"], ["w1"], name="where1"),
    helper.make_node("Cast", ["gt"], ["gtf"], name="cast", to=TensorProto.FLOAT),
    helper.make_node("Cast", ["eq"], ["eqf"], name="cast_eq", to=TensorProto.FLOAT),
    helper.make_node("Add", ["w1", "gtf"], ["w2"], name="add2"),
    helper.make_node("Add", ["w2", "eqf"], ["w3"], name="add3"),
    helper.make_node("Add", ["w3", "er"], ["w4"], name="add4"),
    helper.make_node("Add", ["w4", "pw"], ["w5"], name="add5"),
    helper.make_node("Add", ["w5", "lg"], ["y"], name="add6"),
], [vi("x", [3, 4])], [vi("y", [3, 4])],
    [init("b", f32(4)), init("half", np.float32(0.5)), init("one", np.float32(1.0)), init("two", np.float32(2.0)),
     init("zero", np.float32(0.0))],
    {"x": x})

# layout and reductions: Reshape (0 and -1), Transpose, Concat, ReduceSum (axes
# input), ReduceMean (attribute at opset 17), Identity, Constant
save("layout", [
    helper.make_node("Constant", [], ["shape"], name="shape_const",
                     value=numpy_helper.from_array(np.array([0, -1, 2], dtype=np.int64))),
    helper.make_node("Reshape", ["x", "shape"], ["r"], name="reshape"),
    helper.make_node("Transpose", ["r"], ["t"], name="transpose", perm=[0, 2, 1]),
    helper.make_node("Concat", ["t", "t"], ["c"], name="concat", axis=1),
    helper.make_node("ReduceSum", ["c", "axes"], ["s"], name="rsum", keepdims=0),
    helper.make_node("ReduceMean", ["t"], ["m"], name="rmean", axes=[1, 2], keepdims=1),
    helper.make_node("Identity", ["m"], ["mi"], name="identity"),
    helper.make_node("Sub", ["s", "mi"], ["y"], name="sub"),
], [vi("x", [2, 3, 4])], [vi("y", [2, 2, 4])],
    [init("axes", np.array([-1], dtype=np.int64))],
    {"x": f32(2, 3, 4)})

# Gather of an embedding table by integer ids, Softmax over an inner axis (opset 13+)
save("embed", [
    helper.make_node("Gather", ["table", "ids"], ["e"], name="embed", axis=0),
    helper.make_node("Softmax", ["e"], ["y"], name="softmax", axis=1),
], [vi("ids", [2, 3], TensorProto.INT64)], [vi("y", [2, 3, 4])],
    [init("table", f32(5, 4))],
    {"ids": np.array([[0, 4, 2], [2, 2, 1]], dtype=np.int64)})



# Softmax at opset 11: the input coerced to 2-D at axis 1 (the default), so
# each row of 3 * 4 values sums to 1. onnx 1.17's reference evaluator has only
# the one-axis Softmax of opset 13, so the expected values follow the opset-11
# definition here.
def softmax_coerced(feeds):
    x = feeds["x"].reshape(2, 12).astype(np.float64)
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return [(e / e.sum(axis=1, keepdims=True)).reshape(2, 3, 4).astype(np.float32)]


save("softmax11", [helper.make_node("Softmax", ["x"], ["y"], name="softmax")],
     [vi("x", [2, 3, 4])], [vi("y", [2, 3, 4])], [], {"x": f32(2, 3, 4)}, opset=11, expected=softmax_coerced)

# ops the importer does not have: the message lists every type, with its nodes
save("unsupported", [
    helper.make_node("Bernoulli", ["x"], ["a"], name="coin1"),
    helper.make_node("Unique", ["a"], ["b"], name="unique"),
    helper.make_node("Bernoulli", ["b"], ["y"], name="coin2"),
], [vi("x", [2, 3, 3])], [vi("y", [2])], [], None)

# an output declared with another shape than its nodes compute
save("bad_shape", [helper.make_node("Transpose", ["x"], ["y"], name="transpose")],
     [vi("x", [2, 3])], [vi("y", [2, 3])], [], None)

# resampling: Resize (linear by scales, cubic by sizes on axes with a crop,
# nearest with keep_aspect_ratio_policy), GridSample of a grid input, AffineGrid,
# Col2Im with pads
save("image", [
    helper.make_node("Resize", ["x", "", "scales"], ["y_linear"], name="resize_linear", mode="linear"),
    helper.make_node("Resize", ["x", "roi", "", "sizes"], ["y_cubic"], name="resize_cubic", mode="cubic",
                     axes=[3, 2], coordinate_transformation_mode="tf_crop_and_resize", extrapolation_value=-1.0),
    helper.make_node("Resize", ["x", "", "", "sizes_nn"], ["y_nearest"], name="resize_nearest", axes=[2, 3],
                     keep_aspect_ratio_policy="not_smaller", nearest_mode="round_prefer_ceil"),
    helper.make_node("GridSample", ["x", "grid"], ["y_grid"], name="grid_sample", mode="cubic",
                     padding_mode="reflection"),
    helper.make_node("AffineGrid", ["theta", "size"], ["y_affine"], name="affine_grid", align_corners=1),
    helper.make_node("Col2Im", ["cols", "image_shape", "block_shape"], ["y_col2im"], name="col2im", pads=[1, 0, 0, 1]),
], [vi("x", [1, 2, 4, 5]), vi("grid", [1, 3, 2, 2]), vi("theta", [2, 2, 3]), vi("cols", [1, 8, 12])],
    [vi("y_linear", [1, 2, 8, 7]), vi("y_cubic", [1, 2, 3, 6]), vi("y_nearest", [1, 2, 6, 8]),
     vi("y_grid", [1, 2, 3, 2]), vi("y_affine", [2, 3, 4, 2]), vi("y_col2im", [1, 2, 3, 4])],
    [init("scales", np.array([1, 1, 2, 1.5], dtype=np.float32)),
     init("roi", np.array([0.1, -0.2, 0.9, 1.1], dtype=np.float32)),
     init("sizes", np.array([6, 3], dtype=np.int64)), init("sizes_nn", np.array([5, 8], dtype=np.int64)),
     init("size", np.array([2, 1, 3, 4], dtype=np.int64)), init("image_shape", np.array([3, 4], dtype=np.int64)),
     init("block_shape", np.array([2, 2], dtype=np.int64))],
    {"x": f32(1, 2, 4, 5), "grid": rng.uniform(-1.6, 1.6, (1, 3, 2, 2)).astype(np.float32), "theta": f32(2, 2, 3),
     "cols": f32(1, 8, 12)},
    opset=20)


# groups of nodes that import as one stdlib layer (compiler/onnx_layers.c):
# MatMul + Add of a bias and a Gemm as `linear`, LayerNormalization and its
# decomposed form as `layernorm`, PyTorch's decomposed GELU as `gelu`; and
# three groups that must stay node by node: a weight read twice, a
# "layer norm" with a fourth power, a Gemm with alpha.
def decomposed_layernorm(x, g, b, out, exponent=2.0, axes_input=False):
    red = (lambda i, o: helper.make_node("ReduceMean", [i, "last_axis"], [o], name=o)) if axes_input else \
        (lambda i, o: helper.make_node("ReduceMean", [i], [o], name=o, axes=[-1]))
    return [
        red(x, out + "_mean"),
        helper.make_node("Sub", [x, out + "_mean"], [out + "_d"], name=out + "_sub"),
        helper.make_node("Constant", [], [out + "_two"], value=helper.make_tensor("v", TensorProto.FLOAT, [], [exponent])),
        helper.make_node("Pow", [out + "_d", out + "_two"], [out + "_sq"], name=out + "_pow"),
        red(out + "_sq", out + "_var"),
        helper.make_node("Constant", [], [out + "_eps"], value=helper.make_tensor("v", TensorProto.FLOAT, [], [1e-5])),
        helper.make_node("Add", [out + "_var", out + "_eps"], [out + "_ve"], name=out + "_add"),
        helper.make_node("Sqrt", [out + "_ve"], [out + "_std"], name=out + "_sqrt"),
        helper.make_node("Div", [out + "_d", out + "_std"], [out + "_n"], name=out + "_div"),
        helper.make_node("Mul", [out + "_n", g], [out + "_ng"], name=out + "_mul"),
        helper.make_node("Add", [b, out + "_ng"], [out], name=out + "_bias"),
    ]


def decomposed_gelu(x, out):
    c = lambda name, v: helper.make_node("Constant", [], [name], value=helper.make_tensor("v", TensorProto.FLOAT, [], [v]))
    return [
        c(out + "_sqrt2", 1.4142135623730951),
        helper.make_node("Div", [x, out + "_sqrt2"], [out + "_s"], name="/act/Div"),
        helper.make_node("Erf", [out + "_s"], [out + "_e"], name="/act/Erf"),
        c(out + "_one", 1.0),
        helper.make_node("Add", [out + "_e", out + "_one"], [out + "_e1"], name="/act/Add"),
        helper.make_node("Mul", [x, out + "_e1"], [out + "_xe"], name="/act/Mul"),
        c(out + "_half", 0.5),
        helper.make_node("Mul", [out + "_xe", out + "_half"], [out], name="/act/Mul_1"),
    ]


save("layers", [
    helper.make_node("MatMul", ["x", "onnx::MatMul_5"], ["mm"], name="/enc/fc1/MatMul"),
    helper.make_node("Add", ["mm", "enc.fc1.bias"], ["h"], name="/enc/fc1/Add"),
    *decomposed_layernorm("h", "ln1.weight", "ln1.bias", "n1"),
    *decomposed_gelu("n1", "a1"),
    helper.make_node("LayerNormalization", ["a1", "ln2.weight", "ln2.bias"], ["n2"], name="/ln2/LayerNormalization",
                     epsilon=1e-3),
    helper.make_node("Reshape", ["n2", "flat_shape"], ["flat"], name="/flatten"),
    helper.make_node("Gemm", ["flat", "head.weight", "head.bias"], ["y"], name="/head/Gemm", transB=1),
    # the same weight read twice: plain matmuls
    helper.make_node("MatMul", ["n2", "tied"], ["t1"], name="tied1"),
    helper.make_node("MatMul", ["a1", "tied"], ["t2"], name="tied2"),
    helper.make_node("Add", ["t1", "t2"], ["t"], name="tied_sum"),
    # a fourth power where the layer norm squares: node by node
    *decomposed_layernorm("h", "odd.weight", "odd.bias", "z", exponent=4.0),
    # alpha: no linear
    helper.make_node("Gemm", ["flat", "scaled.weight", "scaled.bias"], ["s"], name="/scaled/Gemm", alpha=0.5),
], [vi("x", [2, 3, 8])], [vi("y", [6, 4]), vi("t", [2, 3, 6]), vi("z", [2, 3, 6]), vi("s", [6, 5])],
    [init("onnx::MatMul_5", f32(8, 6)), init("enc.fc1.bias", f32(6)), init("ln1.weight", f32(6)),
     init("ln1.bias", f32(6)), init("ln2.weight", f32(6)), init("ln2.bias", f32(6)),
     init("flat_shape", np.array([6, 6], dtype=np.int64)), init("head.weight", f32(4, 6)), init("head.bias", f32(4)),
     init("tied", f32(6, 6)), init("odd.weight", f32(6)), init("odd.bias", f32(6)), init("scaled.weight", f32(6, 5)),
     init("scaled.bias", f32(5))],
    {"x": f32(2, 3, 8)})

# opset 23: RMSNormalization, and the decomposed layer norm with ReduceMean's axes as an input
save("layers23", [
    *decomposed_layernorm("x", "ln.weight", "ln.bias", "n", axes_input=True),
    helper.make_node("RMSNormalization", ["n", "rms.scale"], ["y"], name="/rms/RMSNormalization", epsilon=1e-6),
], [vi("x", [4, 5])], [vi("y", [4, 5])],
    [init("last_axis", np.array([-1], dtype=np.int64)), init("ln.weight", f32(5)), init("ln.bias", f32(5)),
     init("rms.scale", f32(5))],
    {"x": f32(4, 5)}, opset=23)
