import SightlineTestSupport
import Tensor
import Testing

/// Element of a contiguous tensor at a multi-index.
private func element(_ t: Tensor, _ idx: [Int]) -> Float {
    var lin = 0
    for (i, s) in zip(idx, t.shape) { lin = lin * s + i }
    return t.scalars[lin]
}

@Suite struct IndexingEmbeddingTests {
    let weight = randomTensor([6, 5], seed: 21)

    @Test func rowsAreLookedUpInIdsShape() throws {
        let ids = try IndexTensor(shape: [2, 3], values: [4, 0, 4, 5, 1, 4])
        let out = try embedding(ids, weight: weight)
        #expect(out.shape == [2, 3, 5])
        let w = weight.scalars, o = out.scalars
        for (p, id) in ids.values.enumerated() {
            #expect(Array(o[(p * 5)..<(p * 5 + 5)]) == Array(w[(id * 5)..<(id * 5 + 5)]))
        }
    }

    @Test func backwardSumsRepeatedIds() throws {
        let ids = try IndexTensor(shape: [2, 3], values: [4, 0, 4, 5, 1, 4])
        let g = try gradCheck([weight]) { try embedding(ids, weight: $0[0]) }
        #expect(g.passed, "\(g)")
        // With an all-ones output gradient, row v of dWeight is (number of times v occurs).
        let dw = try gradient(of: { try embedding(ids, weight: $0[0]).sum() }, at: [weight])[0]
        let counts = [1, 1, 0, 0, 3, 1]
        for v in 0..<6 {
            #expect(dw.scalars[(v * 5)..<(v * 5 + 5)].allSatisfy { $0 == Float(counts[v]) }, "row \(v)")
        }
    }

    @Test func cpuAgreesWithReferenceOnManyRepeatedIds() throws {
        // 2048 ids over 50 rows (about 40 repeats each) with D = 64: the CPU backward splits the
        // columns over threads; it must match the single-threaded Double reference.
        var gen = RandomGenerator(seed: 3)
        let ids = IndexTensor(
            Tensor.uniform([2048], low: 0, high: 50, generator: &gen).scalars.map { Int($0) })
        let w = randomTensor([50, 64], seed: 4)
        let d = try backendDisagreement([w]) { try embedding(ids, weight: $0[0]) }
        #expect(d.output == 0 && d.gradient <= 1e-5, "\(d)")
        let two = try ComputeRuntime.$threadsOverride.withValue(2) {
            try gradient(of: { try (embedding(ids, weight: $0[0]) * 0.5).sum() }, at: [w])[0]
        }
        let one = try ComputeRuntime.$threadsOverride.withValue(1) {
            try gradient(of: { try (embedding(ids, weight: $0[0]) * 0.5).sum() }, at: [w])[0]
        }
        #expect(one.scalars == two.scalars)
    }

    @Test func outOfRangeIdsThrowNamingPositionIdAndVocabulary() throws {
        do {
            _ = try embedding(try IndexTensor(shape: [2, 2], values: [0, 1, 2, 6]), weight: weight)
            Issue.record("id 6 of 6 rows should throw")
        } catch let e as TensorError {
            #expect(e.op == "embedding")
            #expect(
                e.message.contains("id 6") && e.message.contains("[1, 1]")
                    && e.message.contains("vocabulary of 6"), "\(e)")
        }
        #expect(throws: TensorError.self) { try embedding(IndexTensor([-1]), weight: weight) }
        #expect(throws: TensorError.self) { try embedding(IndexTensor([0]), weight: Tensor([1, 2])) }
    }
}

@Suite struct IndexingSelectGatherScatterTests {
    let x = randomTensor([3, 4, 5], seed: 31)

    @Test func indexSelectOnEveryAxis() throws {
        let cases: [(Int, [Int])] = [(0, [2, 0, 2]), (1, [3, 3, 1, 0, 2]), (-1, [4, 0])]
        for (axis, idx) in cases {
            let a = (axis + 3) % 3
            let out = try x.indexSelect(axis: axis, indices: IndexTensor(idx))
            var shape = x.shape
            shape[a] = idx.count
            #expect(out.shape == shape)
            for i in 0..<shape[0] {
                for j in 0..<shape[1] {
                    for k in 0..<shape[2] {
                        var src = [i, j, k]
                        src[a] = idx[src[a]]
                        #expect(element(out, [i, j, k]) == element(x, src))
                    }
                }
            }
            let g = try gradCheck([x]) { try $0[0].indexSelect(axis: axis, indices: IndexTensor(idx)) }
            #expect(g.passed, "axis \(axis): \(g)")
            let d = try backendDisagreement([x]) {
                try $0[0].indexSelect(axis: axis, indices: IndexTensor(idx))
            }
            #expect(d.output == 0 && d.gradient <= 1e-6, "axis \(axis): \(d)")
        }
        #expect(throws: TensorError.self) { try x.indexSelect(axis: 1, indices: IndexTensor([4])) }
        #expect(throws: TensorError.self) { try x.indexSelect(axis: 3, indices: IndexTensor([0])) }
    }

    /// A random index of `shape` with values in [0, n).
    func randomIndex(_ shape: [Int], below n: Int, seed: UInt64) throws -> IndexTensor {
        var gen = RandomGenerator(seed: seed)
        let u = Tensor.uniform(shape, low: 0, high: Float(n), generator: &gen)
        return try IndexTensor(shape: shape, values: u.scalars.map { min(Int($0), n - 1) })
    }

    @Test func gatherFollowsTorchDefinition() throws {
        let t = try Tensor(rows: [[1, 2], [3, 4]])
        // torch.gather(t, 1, [[0, 0], [1, 0]]) = [[1, 1], [4, 3]].
        let out = try t.gather(axis: 1, index: IndexTensor(shape: [2, 2], values: [0, 0, 1, 0]))
        #expect(out.scalars == [1, 1, 4, 3])
        for axis in 0..<3 {
            // The index may be smaller than the input off the gather axis.
            var shape = [2, 3, 4]
            shape[axis] = 6
            let index = try randomIndex(shape, below: x.shape[axis], seed: UInt64(axis))
            let g = try x.gather(axis: axis, index: index)
            #expect(g.shape == shape)
            for i in 0..<shape[0] {
                for j in 0..<shape[1] {
                    for k in 0..<shape[2] {
                        var src = [i, j, k]
                        src[axis] = index.values[(i * shape[1] + j) * shape[2] + k]
                        #expect(element(g, [i, j, k]) == element(x, src))
                    }
                }
            }
            let check = try gradCheck([x]) { try $0[0].gather(axis: axis, index: index) }
            #expect(check.passed, "axis \(axis): \(check)")
            let d = try backendDisagreement([x]) { try $0[0].gather(axis: axis, index: index) }
            #expect(d.output == 0 && d.gradient <= 1e-6, "axis \(axis): \(d)")
        }
        #expect(throws: TensorError.self) {
            try x.gather(axis: 0, index: IndexTensor(shape: [1, 1, 1], values: [3]))
        }
        #expect(throws: TensorError.self) { try x.gather(axis: 0, index: IndexTensor([0])) }
        #expect(throws: TensorError.self) {
            try x.gather(axis: 0, index: IndexTensor(shape: [1, 5, 1], values: [0, 0, 0, 0, 0]))
        }
    }

    @Test func scatterAddFollowsTorchDefinition() throws {
        // torch.zeros(3, 2).scatter_add(0, [[0, 1], [0, 0]], [[1, 2], [3, 4]]) = [[4, 4], [0, 2], [0, 0]].
        let out = try Tensor.zeros([3, 2]).scatterAdd(
            axis: 0, index: IndexTensor(shape: [2, 2], values: [0, 1, 0, 0]),
            source: Tensor(rows: [[1, 2], [3, 4]]))
        #expect(out.scalars == [4, 4, 0, 2, 0, 0])
        for axis in 0..<3 {
            // Source larger than the index everywhere; index as large as the input off the axis
            // is not required, so use a smaller one.
            var ishape = [2, 3, 4]
            ishape[axis] = 7
            var sshape = [3, 4, 5]
            sshape[axis] = 8
            let index = try randomIndex(ishape, below: x.shape[axis], seed: UInt64(10 + axis))
            let source = randomTensor(sshape, seed: UInt64(20 + axis))
            let y = try x.scatterAdd(axis: axis, index: index, source: source)
            var want = x.scalars.map(Double.init)
            for i in 0..<ishape[0] {
                for j in 0..<ishape[1] {
                    for k in 0..<ishape[2] {
                        var dst = [i, j, k]
                        dst[axis] = index.values[(i * ishape[1] + j) * ishape[2] + k]
                        want[(dst[0] * 4 + dst[1]) * 5 + dst[2]] += Double(element(source, [i, j, k]))
                    }
                }
            }
            #expect(relativeError(y.scalars, want) < 1e-6, "axis \(axis)")
            let check = try gradCheck([x, source]) {
                try $0[0].scatterAdd(axis: axis, index: index, source: $0[1])
            }
            #expect(check.passed, "axis \(axis): \(check)")
            let d = try backendDisagreement([x, source]) {
                try $0[0].scatterAdd(axis: axis, index: index, source: $0[1])
            }
            #expect(d.output <= 1e-6 && d.gradient <= 1e-6, "axis \(axis): \(d)")
        }
        do {
            _ = try x.scatterAdd(
                axis: 1, index: IndexTensor(shape: [1, 1, 1], values: [9]), source: Tensor.ones([1, 1, 1]))
            Issue.record("index 9 should throw")
        } catch let e as TensorError {
            #expect(e.op == "scatter_add" && e.message.contains("9") && e.message.contains("size 4"), "\(e)")
        }
        #expect(throws: TensorError.self) {
            try x.scatterAdd(
                axis: 0, index: IndexTensor(shape: [2, 2, 2], values: Array(repeating: 0, count: 8)),
                source: Tensor.ones([1, 2, 2]))
        }
    }

    @Test func scatterAddAndGatherAreAdjointOnLargerInputs() throws {
        // <gather(x, idx), y> == <x, scatter_add(0, idx, y)>, on CPU with threads splitting the work.
        let big = randomTensor([64, 64], seed: 41)
        let index = try randomIndex([400, 64], below: 64, seed: 42)
        let y = randomTensor([400, 64], seed: 43)
        let lhs = try (big.gather(axis: 0, index: index) * y).sum().item()
        let rhs = try (big * Tensor.zeros([64, 64]).scatterAdd(axis: 0, index: index, source: y)).sum().item()
        #expect(abs(lhs - rhs) < 1e-3, "\(lhs) vs \(rhs)")
        let d = try backendDisagreement([big, y]) {
            try $0[0].scatterAdd(axis: 0, index: index, source: $0[1])
        }
        #expect(d.output <= 1e-5 && d.gradient <= 1e-5, "\(d)")
    }
}
