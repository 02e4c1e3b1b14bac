import TensorKernels

extension CPUBackend {
    public func attentionForward(
        q: ConstPtr, k: ConstPtr, v: ConstPtr, dims: AttentionDims, mask: AttentionMaskSpec, out: MutPtr,
        logSumExp: MutPtr
    ) {
        AttentionKernels.forward(q: q, k: k, v: v, dims: dims, mask: mask, out: out, logSumExp: logSumExp)
    }

    public func attentionBackward(
        q: ConstPtr, k: ConstPtr, v: ConstPtr, out: ConstPtr, logSumExp: ConstPtr, dOut: ConstPtr,
        dims: AttentionDims, mask: AttentionMaskSpec, dq: MutPtr, dk: MutPtr, dv: MutPtr
    ) {
        AttentionKernels.backward(
            q: q, k: k, v: v, out: out, logSumExp: logSumExp, dOut: dOut, dims: dims, mask: mask, dq: dq,
            dk: dk, dv: dv)
    }
}
