"""What a model call computes: MACs from the graph that runs, executed op types, delegate/provider coverage.

MACs are read at the shape the model runs: the TFLite graph through LiteRT (a second, undelegated
interpreter, so that every tensor has its real shape), the ONNX graph through ``onnx`` shape inference (MACs
are unknown where the ``onnx`` package is not installed, e.g. on a runtime-only device).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from typing import Optional


def _prod(shape) -> int:
    out = 1
    for d in shape:
        out *= int(d)
    return out


def tflite_conv_macs(op: str, shapes_in: list, shape_out: Optional[list]) -> int:
    """MACs of one TFLite op from its tensors' shapes (0 for ops without multiply-accumulates)."""
    if op == "CONV_2D" and shape_out and len(shapes_in) >= 2:
        return _prod(shape_out) * _prod(shapes_in[1][1:])          # filter [O, kh, kw, I]
    if op == "DEPTHWISE_CONV_2D" and shape_out and len(shapes_in) >= 2:
        return _prod(shape_out) * _prod(shapes_in[1][1:3])         # filter [1, kh, kw, O]
    if op == "TRANSPOSE_CONV" and len(shapes_in) >= 3:
        return _prod(shapes_in[2]) * _prod(shapes_in[1][:3])       # each input pixel scatters [O, kh, kw]
    if op == "FULLY_CONNECTED" and shape_out and len(shapes_in) >= 2:
        return _prod(shape_out) * int(shapes_in[1][-1])            # weights [O, I]
    return 0


def tflite_coverage(ops_details: list, delegate_name: str) -> Optional[dict]:
    """Which ops of a delegated interpreter run inside a delegate.

    ``_get_ops_details()`` lists the original nodes followed by one ``DELEGATE`` node per partition. A
    partition's nodes are those reached walking back from its outputs until its inputs.
    """
    is_delegate = [("DELEGATE" in str(o.get("op_name", "")).upper()) for o in ops_details]
    originals = [o for o, d in zip(ops_details, is_delegate) if not d]
    partitions = [o for o, d in zip(ops_details, is_delegate) if d]
    by_index = {o["index"]: o for o in originals}
    producer = {t: o["index"] for o in originals for t in o["outputs"]}
    covered: set = set()
    for part in partitions:
        boundary = set(int(t) for t in part["inputs"])
        stack = [int(t) for t in part["outputs"]]
        while stack:
            node = producer.get(stack.pop())
            if node is None or node in covered:
                continue
            covered.add(node)
            stack.extend(int(t) for t in by_index[node]["inputs"] if t >= 0 and int(t) not in boundary)
    left = Counter(o["op_name"] for o in originals if o["index"] not in covered)
    total = len(originals)
    if not partitions:
        summary = f"no delegate: {total} ops on built-in kernels"
    else:
        summary = f"{delegate_name} {len(covered)}/{total} ops" + (
            " (not: " + ", ".join(f"{k} x{v}" for k, v in sorted(left.items())) + ")" if left else "")
    return {"summary": summary, "delegate": delegate_name if partitions else None, "partitions": len(partitions),
            "ops_total": total, "ops_delegated": len(covered), "not_delegated": dict(left)}


def tflite_graph(artifact: str, input_shape: tuple, delegated=None, delegate_name: str = "delegate") -> dict:
    """MACs and op counts of a TFLite model at ``input_shape``; coverage from the ``delegated`` interpreter.

    A delegate leaves the shapes of the tensors it owns stale, so MACs are read from a second interpreter
    without delegates, resized and invoked once (dynamic shapes such as TRANSPOSE_CONV's resolve at invoke).
    """
    import numpy as np

    from edge_runtime.inference.backends.litert import interpreter_module

    mod = interpreter_module()
    kwargs = {}
    resolver = getattr(mod, "OpResolverType", None)
    if resolver is not None and hasattr(resolver, "BUILTIN_WITHOUT_DEFAULT_DELEGATES"):
        kwargs["experimental_op_resolver_type"] = resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    it = mod.Interpreter(model_path=artifact, num_threads=1, **kwargs)
    inp = it.get_input_details()[0]
    it.resize_tensor_input(inp["index"], list(input_shape), strict=False)
    it.allocate_tensors()
    it.set_tensor(inp["index"], np.zeros(input_shape, dtype=inp["dtype"]))
    it.invoke()
    shapes = {t["index"]: [int(d) for d in t["shape"]] for t in it.get_tensor_details()}
    macs = 0
    ops: Counter = Counter()
    for op in it._get_ops_details():
        ops[op["op_name"]] += 1
        ins = [shapes.get(int(t), []) for t in op["inputs"] if t >= 0]
        out = shapes.get(int(op["outputs"][0])) if len(op["outputs"]) else None
        macs += tflite_conv_macs(op["op_name"], ins, out)
    coverage = None
    if delegated is not None:
        try:
            coverage = tflite_coverage(delegated._get_ops_details(), delegate_name)
        except Exception:  # noqa: BLE001 - a private API; coverage is optional
            coverage = None
    return {"macs_per_call": int(macs), "macs_source": "tflite graph (LiteRT, no delegate)", "ops": dict(ops),
            "coverage": coverage}


def onnx_graph_macs(artifact: str, input_shape: tuple) -> Optional[int]:
    """MACs of an ONNX model at ``input_shape`` (in the graph's own layout) via ``onnx`` shape inference.

    Returns ``None`` when ``onnx`` is not installed or a convolution's shapes stay unknown.
    """
    try:
        import onnx
        from onnx import shape_inference
    except ImportError:
        return None
    model = onnx.load(artifact)
    dims = model.graph.input[0].type.tensor_type.shape.dim
    for d, v in zip(dims, input_shape):
        d.ClearField("dim_param")
        d.dim_value = int(v)
    model = shape_inference.infer_shapes(model, data_prop=True)
    shapes: dict = {}
    for vi in list(model.graph.value_info) + list(model.graph.input) + list(model.graph.output):
        dd = vi.type.tensor_type.shape.dim
        shapes[vi.name] = [d.dim_value if d.HasField("dim_value") else None for d in dd]
    for init in model.graph.initializer:
        shapes[init.name] = list(init.dims)

    def known(name: str) -> Optional[list]:
        s = shapes.get(name)
        return s if s and all(v is not None for v in s) else None

    macs = 0
    for node in model.graph.node:
        op = node.op_type
        weight = {"Conv": 1, "ConvInteger": 1, "QLinearConv": 3, "ConvTranspose": 1}.get(op)
        if weight is not None:
            w = known(node.input[weight]) if len(node.input) > weight else None
            ref = known(node.input[0]) if op == "ConvTranspose" else known(node.output[0])
            if w is None or ref is None:
                return None
            macs += _prod(ref) * _prod(w[1:])   # Conv: out x (I/g, kh, kw); ConvTranspose: in x (O/g, kh, kw)
        elif op in ("MatMul", "Gemm", "MatMulInteger"):
            a, out = known(node.input[0]), known(node.output[0])
            if a is None or out is None:
                return None
            macs += _prod(out) * int(a[-1])
    return int(macs)


def ort_profile(artifact: str, x, providers: list, threads: Optional[int]) -> Optional[dict]:
    """Op types that ran and which provider ran them, from one profiled ONNX Runtime call."""
    import tempfile

    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        opts = ort.SessionOptions()
        opts.enable_profiling = True
        opts.profile_file_prefix = os.path.join(tmp, "profile")
        if threads:
            opts.intra_op_num_threads = int(threads)
        sess = ort.InferenceSession(artifact, sess_options=opts, providers=providers)
        sess.run(None, {sess.get_inputs()[0].name: x})
        with open(sess.end_profiling()) as fh:
            events = json.load(fh)
    ops: Counter = Counter()
    by_provider: Counter = Counter()
    for ev in events:
        if ev.get("cat") == "Node" and str(ev.get("name", "")).endswith("_kernel_time"):
            args = ev.get("args", {})
            ops[args.get("op_name", "?")] += 1
            by_provider[args.get("provider", "?")] += 1
    total = sum(by_provider.values())
    summary = ", ".join(f"{p.replace('ExecutionProvider', '')} {n}/{total} nodes" for p, n in by_provider.most_common())
    return {"ops": dict(ops), "coverage": {"summary": summary, "providers": dict(by_provider), "nodes": total}}
