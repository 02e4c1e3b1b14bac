import SightlineTestSupport
import Tensor
import TensorKernels
import Testing

/// Attention written with basic ops (matmul, maskedFill, softmax), with the key/value heads repeated
/// for grouped-query attention: an independent oracle for rows that see at least one key.
private func composedAttention(
    _ q: Tensor, _ k: Tensor, _ v: Tensor, scale: Float? = nil, visible: (Int, Int, Int) -> Bool
) throws -> Tensor {
    let (b, hq, tq, d) = (q.shape[0], q.shape[1], q.shape[2], q.shape[3])
    let (hkv, tk, dv) = (k.shape[1], k.shape[2], v.shape[3])
    let g = hq / hkv
    let kx = try k.reshaped([b, hkv, 1, tk, d]).broadcast(to: [b, hkv, g, tk, d]).reshaped([b, hq, tk, d])
    let vx = try v.reshaped([b, hkv, 1, tk, dv]).broadcast(to: [b, hkv, g, tk, dv]).reshaped([b, hq, tk, dv])
    var hidden = [Float](repeating: 0, count: b * tq * tk)
    for bi in 0..<b {
        for i in 0..<tq { for j in 0..<tk where !visible(bi, i, j) { hidden[(bi * tq + i) * tk + j] = 1 } }
    }
    let s = scale ?? 1 / Float(d).squareRoot()
    let scores = try (q.matmul(kx, transposeB: true) * s).maskedFill(
        Tensor(shape: [b, 1, tq, tk], scalars: hidden), -1e30)
    return try scores.softmax(axis: -1).matmul(vx)
}

/// Gradients of sum(f(inputs) * r) for fixed random weights r.
private func weightedGradients(_ inputs: [Tensor], seed: UInt64 = 5, _ f: ([Tensor]) throws -> Tensor) throws
    -> [Tensor]
{
    let shape = try noGrad { try f(inputs) }.shape
    let r = randomTensor(shape, seed: seed)
    return try gradient(of: { try (f($0) * r).sum() }, at: inputs)
}

/// One attention configuration with its visibility rule written out independently of the kernels.
struct AttentionCase: CustomStringConvertible, Sendable {
    var name: String
    var b = 1, hq = 2, hkv = 2, tq = 5, tk = 5, d = 4, dv = 4
    var mask: AttentionMask = .none
    var visible: @Sendable (Int, Int, Int) -> Bool = { _, _, _ in true }

    var description: String { name }

    func inputs(seed: UInt64) -> [Tensor] {
        [
            randomTensor([b, hq, tq, d], seed: seed, low: -2, high: 2),
            randomTensor([b, hkv, tk, d], seed: seed + 1, low: -2, high: 2),
            randomTensor([b, hkv, tk, dv], seed: seed + 2),
        ]
    }

    func run(_ t: [Tensor]) throws -> Tensor {
        try scaledDotProductAttention(q: t[0], k: t[1], v: t[2], mask: mask)
    }
}

private let documentIds: [Int] = [0, 0, 0, 1, 1, 2, 2, 2, 2]

private let attentionCases: [AttentionCase] = [
    AttentionCase(name: "no mask"),
    AttentionCase(name: "causal", mask: .causal, visible: { _, i, j in j <= i }),
    AttentionCase(
        name: "causal, Tq < Tk (KV cache)", tq: 3, tk: 7, mask: .causal, visible: { _, i, j in j <= 4 + i }),
    AttentionCase(
        name: "causal, explicit offset", tq: 3, tk: 7, mask: .causal(queryOffset: 2),
        visible: { _, i, j in j <= 2 + i }),
    AttentionCase(
        name: "documents", tq: 9, tk: 9,
        mask: .documents(try! IndexTensor(shape: [1, 9], values: documentIds)),
        visible: { _, i, j in documentIds[i] == documentIds[j] }),
    AttentionCase(
        name: "documents, causal", tq: 9, tk: 9,
        mask: .documents(try! IndexTensor(shape: [1, 9], values: documentIds), causal: true),
        visible: { _, i, j in documentIds[i] == documentIds[j] && j <= i }),
    AttentionCase(
        name: "key padding", b: 2, tq: 4, tk: 6,
        mask: try! .keyPadding([
            [true, true, false, true, false, false], [true, true, true, true, true, false],
        ]),
        visible: { b, _, j in b == 0 ? [0, 1, 3].contains(j) : j < 5 }),
    AttentionCase(name: "GQA", hq: 4, hkv: 2, tq: 4, tk: 4, mask: .causal, visible: { _, i, j in j <= i }),
    AttentionCase(name: "Dv != D", d: 4, dv: 3),
    AttentionCase(
        name: "GQA 3:1, documents, causal", hq: 3, hkv: 1, tq: 9, tk: 9,
        mask: .documents(try! IndexTensor(shape: [1, 9], values: documentIds), causal: true),
        visible: { _, i, j in documentIds[i] == documentIds[j] && j <= i }),
]

private let smallBlocks = AttentionKernels.BlockSizes(query: 2, key: 3)

@Suite struct AttentionTests {
    @Test(arguments: attentionCases)
    func matchesComposedOps(_ c: AttentionCase) throws {
        let x = c.inputs(seed: 100)
        let want = try composedAttention(x[0], x[1], x[2], visible: c.visible)
        let wantGrads = try weightedGradients(x) {
            try composedAttention($0[0], $0[1], $0[2], visible: c.visible)
        }
        for blocks in [AttentionKernels.blockSizes, smallBlocks] {
            try AttentionKernels.$blockSizes.withValue(blocks) {
                let got = try c.run(x)
                #expect(got.shape == [c.b, c.hq, c.tq, c.dv])
                #expect(relativeError(got.scalars, want.scalars) < 1e-5, "\(c) blocks \(blocks)")
                let grads = try weightedGradients(x) { try c.run($0) }
                for (name, (a, b)) in zip(["dq", "dk", "dv"], zip(grads, wantGrads)) {
                    #expect(relativeError(a.scalars, b.scalars) < 1e-4, "\(c) blocks \(blocks): \(name)")
                }
            }
        }
    }

    @Test(arguments: attentionCases)
    func gradCheckFusedKernel(_ c: AttentionCase) throws {
        let x = c.inputs(seed: 200)
        for blocks in [AttentionKernels.blockSizes, smallBlocks] {
            let r = try AttentionKernels.$blockSizes.withValue(blocks) { try gradCheck(x) { try c.run($0) } }
            #expect(r.passed, "\(c) blocks \(blocks): \(r)")
        }
    }

    @Test(arguments: attentionCases)
    func cpuMatchesReferenceOnSmallBlocks(_ c: AttentionCase) throws {
        let x = c.inputs(seed: 300)
        let d = try AttentionKernels.$blockSizes.withValue(smallBlocks) {
            try backendDisagreement(x) { try c.run($0) }
        }
        #expect(d.output < 1e-5, "\(c): \(d)")
        #expect(d.gradient < 1e-4, "\(c): \(d)")
    }

    /// Default block sizes with lengths that are not multiples of the blocks, documents that straddle
    /// block boundaries, padding, GQA and a KV-cache offset together.
    @Test func cpuMatchesReferenceAcrossBlockBoundaries() throws {
        let b = 2, tq = 150, tk = 150
        var ids: [Int] = []
        for (doc, len) in [50, 37, 1, 62].enumerated() { ids += Array(repeating: doc, count: len) }
        for (doc, len) in [100, 30, 20].enumerated() { ids += Array(repeating: doc + 7, count: len) }
        let docIds = try IndexTensor(shape: [b, tk], values: ids)
        let valid = (0..<(b * tk)).map { $0 % tk < (($0 / tk) == 0 ? 140 : 150) ? 1 : 0 }
        let padding = try IndexTensor(shape: [b, tk], values: valid)
        let masks: [(String, AttentionMask, Int)] = [
            ("none", .none, tq),
            ("causal", .causal, tq),
            ("causal, Tq < Tk", .causal, 70),
            ("documents, causal", .documents(docIds, causal: true), tq),
            ("documents", .documents(docIds), tq),
            (
                "documents, causal, padding",
                try AttentionMask.documents(docIds, causal: true).and(.keyPadding(padding)), tq
            ),
            ("documents, Tq < Tk", .documents(docIds, causal: true), 90),
        ]
        for (name, mask, queries) in masks {
            let q = randomTensor([b, 4, queries, 16], seed: 400, low: -2, high: 2)
            let k = randomTensor([b, 2, tk, 16], seed: 401, low: -2, high: 2)
            let v = randomTensor([b, 2, tk, 12], seed: 402)
            let d = try backendDisagreement([q, k, v]) {
                try scaledDotProductAttention(q: $0[0], k: $0[1], v: $0[2], mask: mask)
            }
            #expect(d.output < 1e-5, "\(name): \(d)")
            #expect(d.gradient < 1e-4, "\(name): \(d)")
        }
    }

    /// A packed row of documents with the document mask equals running each document on its own.
    @Test(arguments: [AttentionKernels.blockSizes, AttentionKernels.BlockSizes(query: 4, key: 8)])
    func documentMaskEqualsSeparateDocuments(_ blocks: AttentionKernels.BlockSizes) throws {
        let lengths = [7, 13, 1, 19, 30]
        let t = lengths.reduce(0, +)
        let ids = try IndexTensor(
            shape: [1, t],
            values: lengths.enumerated().flatMap { Array(repeating: $0.offset, count: $0.element) })
        let x = [
            randomTensor([1, 2, t, 8], seed: 500), randomTensor([1, 1, t, 8], seed: 501),
            randomTensor([1, 1, t, 8], seed: 502),
        ]
        for causal in [true, false] {
            func packed(_ x: [Tensor]) throws -> Tensor {
                try scaledDotProductAttention(
                    q: x[0], k: x[1], v: x[2], mask: .documents(ids, causal: causal))
            }
            func separate(_ x: [Tensor]) throws -> Tensor {
                var start = 0
                var outs: [Tensor] = []
                for len in lengths {
                    let part = try x.map { try $0.narrow(axis: 2, start: start, length: len) }
                    outs.append(
                        try scaledDotProductAttention(
                            q: part[0], k: part[1], v: part[2], mask: causal ? .causal : .none))
                    start += len
                }
                return try Tensor.concatenate(outs, axis: 2)
            }
            try AttentionKernels.$blockSizes.withValue(blocks) {
                let a = try packed(x), b = try separate(x)
                #expect(relativeError(a.scalars, b.scalars) < 1e-5, "causal \(causal)")
                let ga = try weightedGradients(x, packed), gb = try weightedGradients(x, separate)
                for (u, w) in zip(ga, gb) {
                    #expect(relativeError(u.scalars, w.scalars) < 1e-4, "causal \(causal)")
                }
            }
        }
    }

    /// Queries that see no key give output 0 and pass no gradient (PyTorch would give NaN).
    @Test func rowsWithoutVisibleKeysGiveZeros() throws {
        let q = randomTensor([2, 1, 4, 4], seed: 600), k = randomTensor([2, 1, 6, 4], seed: 601)
        let v = randomTensor([2, 1, 6, 4], seed: 602, low: 1, high: 2)
        // Batch 1 has no valid key; in batch 0, queries 0 and 1 come before every key (offset -2).
        let mask = try AttentionMask.causal(queryOffset: -2).and(
            .keyPadding(IndexTensor(shape: [2, 6], values: [1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0])))
        for blocks in [AttentionKernels.blockSizes, smallBlocks] {
            try AttentionKernels.$blockSizes.withValue(blocks) {
                let y = try scaledDotProductAttention(q: q, k: k, v: v, mask: mask).scalars
                #expect(y[0..<8].allSatisfy { $0 == 0 })  // batch 0, queries 0 and 1
                #expect(y[8..<16].allSatisfy { $0 > 0 })  // queries 2, 3 see keys 0..0, 0..1
                #expect(y[16..<32].allSatisfy { $0 == 0 })  // batch 1
                let g = try weightedGradients([q, k, v]) {
                    try scaledDotProductAttention(q: $0[0], k: $0[1], v: $0[2], mask: mask)
                }
                #expect(g.allSatisfy { $0.scalars.allSatisfy(\.isFinite) })
                #expect(
                    g[0].scalars[0..<8].allSatisfy { $0 == 0 } && g[0].scalars[16..<32].allSatisfy { $0 == 0 }
                )
                #expect(
                    g[1].scalars[24..<48].allSatisfy { $0 == 0 }
                        && g[2].scalars[24..<48].allSatisfy { $0 == 0 })
                // Keys 2...5 of batch 0 are after every query's position: no gradient either.
                #expect(g[1].scalars[8..<24].allSatisfy { $0 == 0 })
                let d = try backendDisagreement([q, k, v]) {
                    try scaledDotProductAttention(q: $0[0], k: $0[1], v: $0[2], mask: mask)
                }
                #expect(d.output < 1e-5 && d.gradient < 1e-4, "\(d)")
            }
        }
    }

    @Test func customScaleMatchesComposedOps() throws {
        let x = AttentionCase(name: "scale", tq: 3, tk: 4).inputs(seed: 700)
        let got = try scaledDotProductAttention(q: x[0], k: x[1], v: x[2], scale: 0.3)
        let want = try composedAttention(x[0], x[1], x[2], scale: 0.3) { _, _, _ in true }
        #expect(relativeError(got.scalars, want.scalars) < 1e-5)
    }

    @Test func masksCombine() throws {
        let ids = try IndexTensor(shape: [1, 4], values: [0, 0, 1, 1])
        let pad = try IndexTensor(shape: [1, 4], values: [1, 1, 1, 0])
        let combined = try AttentionMask.causal.and(.documents(ids)).and(.keyPadding(pad))
        #expect(combined == AttentionMask(causal: true, documentIds: ids, keyPadding: pad))
        let twoPads = try AttentionMask.keyPadding(pad).and(
            .keyPadding(IndexTensor(shape: [1, 4], values: [0, 1, 1, 1])))
        #expect(twoPads.keyPadding?.values == [0, 1, 1, 0])
        #expect(throws: TensorError.self) { try AttentionMask.documents(ids).and(.documents(ids)) }
        #expect(throws: TensorError.self) {
            try AttentionMask.causal(queryOffset: 1).and(.causal(queryOffset: 2))
        }
        #expect(throws: TensorError.self) { try AttentionMask.keyPadding([[true, false], [true]]) }
    }

    @Test func badShapesThrow() throws {
        let q = Tensor.zeros([1, 4, 3, 8]), k = Tensor.zeros([1, 2, 5, 8]), v = Tensor.zeros([1, 2, 5, 6])
        func attend(_ q: Tensor, _ k: Tensor, _ v: Tensor, _ mask: AttentionMask = .none) throws -> Tensor {
            try scaledDotProductAttention(q: q, k: k, v: v, mask: mask)
        }
        #expect(try attend(q, k, v).shape == [1, 4, 3, 6])
        #expect(throws: TensorError.self) { try attend(Tensor.zeros([4, 3, 8]), k, v) }
        #expect(throws: TensorError.self) { try attend(Tensor.zeros([1, 3, 3, 8]), k, v) }  // 3 heads over 2
        #expect(throws: TensorError.self) { try attend(Tensor.zeros([1, 4, 3, 7]), k, v) }  // head dim
        #expect(throws: TensorError.self) { try attend(q, k, Tensor.zeros([1, 2, 4, 6])) }  // v length
        #expect(throws: TensorError.self) { try attend(q, k, Tensor.zeros([1, 1, 5, 6])) }  // v heads
        #expect(throws: TensorError.self) { try attend(Tensor.zeros([2, 4, 3, 8]), k, v) }  // batch
        #expect(throws: TensorError.self) {
            try attend(q, Tensor.zeros([1, 0, 5, 8]), Tensor.zeros([1, 0, 5, 6]))
        }
        let ids = try IndexTensor(shape: [1, 5], values: [0, 0, 1, 1, 1])
        #expect(throws: TensorError.self) {
            try attend(q, k, v, .documents(IndexTensor(shape: [1, 4], values: [0, 0, 1, 1])))
        }
        #expect(throws: TensorError.self) {
            try attend(
                q, k, v, .keyPadding(IndexTensor(shape: [2, 5], values: Array(repeating: 1, count: 10))))
        }
        // Queries at positions 3..<6 have no document id among the 5 keys.
        #expect(throws: TensorError.self) {
            try attend(q, k, v, AttentionMask(queryOffset: 3, documentIds: ids))
        }
        #expect(throws: TensorError.self) { try attend(q, k, v, AttentionMask(queryDocumentIds: ids)) }
        // With explicit query ids, cross attention works.
        let qids = try IndexTensor(shape: [1, 3], values: [1, 0, 1])
        #expect(
            try attend(q, k, v, AttentionMask(documentIds: ids, queryDocumentIds: qids)).shape == [
                1, 4, 3, 6,
            ])
    }
}
