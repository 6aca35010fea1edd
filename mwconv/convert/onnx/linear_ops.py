"""ONNX ops with weights or constants that become Keras layers: elementwise
arithmetic with constants, MatMul, Gemm, Gather (embeddings), BatchNormalization, PRelu."""

import numpy as np

from mwconv.convert.onnx.common import Unsupported


class LinearOps:
    """Handlers ``op_<Type>(node, attrs)`` of the GraphBuilder, returning the output tensor."""

    def _binary(self, node, a):
        from mwconv.layers.onnx_ops import ConstantArithmetic, OnnxBinary
        left, right = node.input[0], node.input[1]
        lc, rc = left in self.constants, right in self.constants
        if lc and rc:
            raise Unsupported("both operands are constants (fold them first)")
        if not (lc or rc):
            return OnnxBinary(op=node.op_type, name=self.name(node))([self.tensor(left, node), self.tensor(right, node)])
        cname, xname = (left, right) if lc else (right, left)
        info = self.src.info(cname)
        if np.dtype(info.dtype).kind != "f":
            raise Unsupported(f"constant '{cname}' is {info.dtype} (float constants are supported)")
        layer = ConstantArithmetic(op=node.op_type, constant_shape=list(info.shape), reverse=lc, scale=1.0,
                                   name=self.name(node))
        out = layer(self.tensor(xname, node))
        self.weight(layer, "constant", cname)
        return out

    op_Add = op_Sub = op_Mul = op_Div = _binary

    def op_MatMul(self, node, a):
        if node.input[0] in self.constants:
            raise Unsupported("a constant first operand")
        if node.input[1] not in self.constants:
            return self._binary(node, a)
        info = self.src.info(node.input[1])
        if len(info.shape) != 2:
            raise Unsupported(f"a {len(info.shape)}-D constant operand")
        layer = self.keras.layers.Dense(info.shape[1], use_bias=False, name=self.name(node))
        out = layer(self.tensor(node.input[0], node))
        self.weight(layer, "kernel", node.input[1], "none")
        return out

    def op_Gemm(self, node, a):
        from mwconv.layers.onnx_ops import ConstantArithmetic, OnnxScale, OnnxTranspose
        if node.input[1] not in self.constants:
            raise Unsupported("a non-constant B")
        trans_b = int(a.get("transB", 0))
        alpha, beta = float(a.get("alpha", 1.0)), float(a.get("beta", 1.0))
        b_shape = self.src.info(node.input[1]).shape
        units = b_shape[0] if trans_b else b_shape[1]
        c = node.input[2] if len(node.input) > 2 and node.input[2] else None
        c_shape = tuple(self.src.info(c).shape) if c else None
        if c and int(np.prod(c_shape)) != units and int(np.prod(c_shape)) != 1:
            raise Unsupported(f"C of shape {c_shape} (a per-sample bias)")
        fused = c is not None and alpha == 1.0 and beta == 1.0 and int(np.prod(c_shape)) == units
        dense = self.keras.layers.Dense(units, use_bias=fused, name=self.name(node))
        a_in = self.tensor(node.input[0], node)
        if int(a.get("transA", 0)):  # A is (K, M): its first axis is Keras's batch axis here
            known = list(self.shapes.get(node.input[0]) or [None, None])
            a_in = OnnxTranspose(perm=[1, 0], known=known, name=self.name(node, "transA"))(a_in)
        out = dense(a_in)
        self.weight(dense, "kernel", node.input[1], "linear" if trans_b else "none")
        if fused:
            self.weight(dense, "bias", c, "reshape")
            return out
        if alpha != 1.0:
            out = OnnxScale(factor=alpha, name=self.name(node, "alpha"))(out)
        if c is not None and beta != 0.0:
            add = ConstantArithmetic(op="Add", constant_shape=list(c_shape), reverse=False, scale=beta,
                                     name=self.name(node, "bias"))
            out = add(out)
            self.weight(add, "constant", c)
        return out

    def op_Gather(self, node, a):
        if node.input[0] not in self.constants:
            raise Unsupported("data that is not an initializer")
        info = self.src.info(node.input[0])
        if int(a.get("axis", 0)) != 0 or len(info.shape) != 2:
            raise Unsupported("anything but rows of a 2-D initializer (an embedding)")
        layer = self.keras.layers.Embedding(info.shape[0], info.shape[1], name=self.name(node))
        out = layer(self.tensor(node.input[1], node))
        self.weight(layer, "embeddings", node.input[0])
        return out

    def op_BatchNormalization(self, node, a):
        if not int(a.get("spatial", 1)):
            raise Unsupported("spatial=0")
        if len([o for o in node.output if o]) > 1:
            raise Unsupported("training-mode outputs")
        names = node.input[1:5]
        if any(n not in self.constants for n in names):
            raise Unsupported("non-constant scale/bias/mean/var")
        layer = self.keras.layers.BatchNormalization(axis=1, epsilon=float(a.get("epsilon", 1e-5)),
                                                     name=self.name(node))
        out = layer(self.tensor(node.input[0], node))
        for weight, source in zip(("gamma", "beta", "moving_mean", "moving_variance"), names):
            self.weight(layer, weight, source)
        return out

    def op_PRelu(self, node, a):
        x = self.tensor(node.input[0], node)
        if node.input[1] not in self.constants:
            raise Unsupported("a non-constant slope")
        slope = tuple(self.src.info(node.input[1]).shape)
        r = len(x.shape) - 1
        if len(slope) > r:
            raise Unsupported(f"slope of shape {slope}")
        padded = (1,) * (r - len(slope)) + slope
        shared = [i + 1 for i, d in enumerate(padded) if d == 1]
        layer = self.keras.layers.PReLU(shared_axes=shared or None, name=self.name(node))
        out = layer(x)
        self.weight(layer, "alpha", node.input[1], "reshape")
        return out
