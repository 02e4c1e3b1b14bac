import Foundation

// Reverse-mode automatic differentiation over a graph recorded while the forward pass runs.
//
// Each op whose inputs are being recorded attaches a `GradNode` to its output: the nodes of its
// inputs and a closure that maps the gradient of the output to gradients of the inputs (the op's
// vector-Jacobian product). `valueAndGradient` runs the forward, then walks the graph once in reverse
// topological order (Kahn's algorithm over the recorded edges), summing gradients that meet.

/// One recorded operation (or a leaf: a parameter or a tensor marked `requiringGradient()`).
final class GradNode {
    /// Name of the op, for errors.
    let op: String
    /// Nodes of the inputs that are recorded (nil for inputs that are not).
    let inputs: [GradNode?]
    /// Maps the output gradient to one gradient per input (nil where not needed).
    let backward: ((Tensor) throws -> [Tensor?])?
    /// Shape of the output (gradients must match it).
    let shape: [Int]
    /// For leaves made from a parameter.
    weak var parameter: Parameter?
    /// The backend that ran the forward: the backward runs on it too (`runBackward` makes it current
    /// while this node's VJP runs, so every kernel the VJP reaches, directly or through other ops,
    /// is this backend's, whichever backend is current when backward is called).
    let backend: any Backend

    init(
        op: String, inputs: [GradNode?], shape: [Int], backend: any Backend = Backends.current,
        backward: ((Tensor) throws -> [Tensor?])?
    ) {
        self.op = op
        self.inputs = inputs
        self.shape = shape
        self.backend = backend
        self.backward = backward
    }

    var isLeaf: Bool { backward == nil }
}

/// Whether operations record autodiff graphs on the current task (true by default).
public enum GradMode {
    @TaskLocal public static var isEnabled = true
}

/// Runs `body` without recording any autodiff graph (inference, optimizer updates, frozen towers).
@inlinable
public func noGrad<R>(_ body: () throws -> R) rethrows -> R {
    try GradMode.$isEnabled.withValue(false) { try body() }
}

extension Tensor {
    /// Records `output` as the result of `op` applied to `inputs`, when any input is recorded and
    /// recording is on. `backward` receives the output gradient and returns one gradient per input
    /// (it may return nil for inputs that are not recorded).
    @inline(__always)
    static func record(
        _ output: Tensor, op: String, inputs: [Tensor], backward: @escaping (Tensor) throws -> [Tensor?]
    ) -> Tensor {
        guard GradMode.isEnabled, inputs.contains(where: { $0.node != nil }) else { return output }
        var out = output
        out.node = GradNode(op: op, inputs: inputs.map(\.node), shape: output.shape, backward: backward)
        return out
    }

    /// The same values as a new autodiff leaf: gradients can be taken with respect to it.
    public func requiringGradient() -> Tensor {
        var t = self
        t.node = GradNode(op: "leaf", inputs: [], shape: shape, backward: nil)
        return t
    }
}

/// A trainable (or frozen) tensor owned by a model, the unit that gradients and optimizer state are
/// keyed by.
///
/// Reading `value` returns the tensor tied to this parameter's autodiff leaf, so that the loss's
/// gradient reaches it; `data` reads or writes the raw values (optimizer updates, loading weights).
/// A frozen parameter (`isTrainable == false`) records nothing and costs nothing in backward.
public final class Parameter: @unchecked Sendable {
    private var _data: Tensor
    private var leafNode: GradNode?
    /// Whether gradients flow to this parameter.
    public var isTrainable: Bool

    /// A parameter holding `value`.
    public init(_ value: Tensor, trainable: Bool = true) {
        _data = value.detached()
        isTrainable = trainable
    }

    /// The values, recorded for autodiff when trainable and recording is on.
    public var value: Tensor {
        guard isTrainable, GradMode.isEnabled else { return _data }
        var t = _data
        t.node = leaf
        return t
    }

    /// The raw values (never recorded). Setting replaces them; the shape may change.
    public var data: Tensor {
        get { _data }
        set { _data = newValue.detached() }
    }

    /// Updates the values in place (copy-free when nothing else holds the buffer).
    public func update(_ body: (inout Tensor) throws -> Void) rethrows {
        try body(&_data)
        _data.node = nil
    }

    /// Shape of the values.
    public var shape: [Int] { _data.shape }

    var leaf: GradNode {
        if let n = leafNode, n.shape == _data.shape { return n }
        let n = GradNode(op: "parameter", inputs: [], shape: _data.shape, backward: nil)
        n.parameter = self
        leafNode = n
        return n
    }
}

/// Gradients keyed by parameter name, in the order the parameters were given.
public struct Gradients: Sequence {
    public private(set) var names: [String] = []
    public private(set) var tensors: [String: Tensor] = [:]

    public init() {}

    /// The gradient of `name`, or nil when it received none (frozen or unused).
    public subscript(name: String) -> Tensor? { tensors[name] }

    /// Sets the gradient of `name` (appended to `names` when new): data-parallel training writes the
    /// gradients summed over all processes back this way.
    public mutating func set(_ name: String, _ g: Tensor) {
        if tensors[name] == nil { names.append(name) }
        tensors[name] = g
    }

    /// Adds `other` into these gradients (gradient accumulation across micro-batches).
    /// - Throws: `TensorError` when a gradient's shape differs.
    public mutating func accumulate(_ other: Gradients) throws {
        for name in other.names {
            let g = other.tensors[name]!
            if let mine = tensors[name] {
                guard mine.shape == g.shape else {
                    throw TensorError(
                        "Gradients.accumulate", "\(name): \(fmt(mine.shape)) vs \(fmt(g.shape))")
                }
                tensors[name] = try noGrad { try mine + g }
            } else {
                set(name, g)
            }
        }
    }

    /// Multiplies every gradient by `factor`, in place (a gradient whose buffer is shared is copied
    /// first), on the current backend.
    public mutating func scale(by factor: Float) {
        for name in names { tensors[name]!.scale(by: factor) }
    }

    /// The global L2 norm: `sqrt` of the sum over gradients (in `names` order) of each one's Double
    /// sum of squares (`Tensor.sumOfSquares`), rounded to Float once at the end. The result does not
    /// depend on the thread count.
    public func globalNorm() -> Float {
        var total = 0.0
        for name in names { total += tensors[name]!.sumOfSquares() }
        return Float(total.squareRoot())
    }

    public func makeIterator() -> AnyIterator<(name: String, gradient: Tensor)> {
        var i = 0
        return AnyIterator {
            guard i < names.count else { return nil }
            defer { i += 1 }
            return (names[i], tensors[names[i]]!)
        }
    }

    public var count: Int { names.count }
}

/// Runs backward from `root` with `seed` and delivers each leaf's final gradient to `sink`, as soon
/// as no node that could still add to it remains.
func runBackward(root: GradNode, seed: Tensor, sink: (GradNode, Tensor) throws -> Void) throws {
    // Count, for every reachable node, the edges into it from reachable nodes.
    var pending: [ObjectIdentifier: Int] = [:]
    var stack: [GradNode] = [root]
    var seen: Set<ObjectIdentifier> = [ObjectIdentifier(root)]
    while let n = stack.popLast() {
        for case let i? in n.inputs {
            pending[ObjectIdentifier(i), default: 0] += 1
            if seen.insert(ObjectIdentifier(i)).inserted { stack.append(i) }
        }
    }
    var grads: [ObjectIdentifier: Tensor] = [ObjectIdentifier(root): seed]
    var ready: [GradNode] = [root]
    try noGrad {
        while let n = ready.popLast() {
            let id = ObjectIdentifier(n)
            guard let g = grads.removeValue(forKey: id) else { continue }
            if n.isLeaf {
                try sink(n, g)
                continue
            }
            // The VJP, and the sums where gradients meet, on the backend that ran the forward (made
            // current only when it is not already: binding a task-local value allocates).
            func vjp() throws {
                let inputGrads = try n.backward!(g)
                guard inputGrads.count == n.inputs.count else {
                    throw TensorError(
                        "backward", "\(n.op) returned \(inputGrads.count) gradients for \(n.inputs.count) inputs")
                }
                for (input, ig) in zip(n.inputs, inputGrads) {
                    guard let input else { continue }
                    let iid = ObjectIdentifier(input)
                    if let ig {
                        guard ig.shape == input.shape else {
                            throw TensorError(
                                "backward",
                                "\(n.op) produced a gradient of shape \(fmt(ig.shape)) for an input of shape \(fmt(input.shape))"
                            )
                        }
                        if let prev = grads[iid] { grads[iid] = try prev + ig } else { grads[iid] = ig }
                    }
                    pending[iid]! -= 1
                    if pending[iid]! == 0 { ready.append(input) }
                }
            }
            if n.backend === Backends.current { try vjp() } else { try withBackend(n.backend) { try vjp() } }
        }
    }
}

/// Evaluates `loss` and its gradient with respect to `parameters`, keyed by name.
///
/// ```swift
/// let w = Parameter(try Tensor(shape: [2], scalars: [1, 2]))
/// let (loss, grads) = try valueAndGradient(at: [("w", w)]) {
///     try (w.value * w.value).sum()          // d/dw = 2w
/// }
/// grads["w"]!.scalars                          // [2, 4]
/// ```
/// - Parameters:
///   - parameters: (name, parameter) pairs; frozen parameters get no gradient.
///   - onGradientReady: called with a parameter's name and gradient as soon as it is final, while
///     backward is still running (to overlap gradient communication with the backward pass).
///   - loss: the forward pass; must return a scalar.
/// - Returns: the loss and the gradients.
/// - Throws: `TensorError` when the loss is not a scalar, or any op fails.
public func valueAndGradient(
    at parameters: [(String, Parameter)],
    onGradientReady: ((String, Tensor) throws -> Void)? = nil,
    _ loss: () throws -> Tensor
) throws -> (value: Tensor, gradients: Gradients) {
    let value = try GradMode.$isEnabled.withValue(true) { try loss() }
    guard value.shape.isEmpty || value.count == 1 else {
        throw TensorError("backward", "the loss must be a scalar, got shape \(fmt(value.shape))")
    }
    var grads = Gradients()
    guard let root = value.node else { return (value.detached(), grads) }
    var names: [ObjectIdentifier: String] = [:]
    for (name, p) in parameters where p.isTrainable { names[ObjectIdentifier(p.leaf)] = name }
    var found: [String: Tensor] = [:]
    try runBackward(root: root, seed: Tensor(shape: value.shape, storage: Storage(copying: [1]))) { leaf, g in
        guard let name = names[ObjectIdentifier(leaf)] else { return }
        found[name] = g
        try onGradientReady?(name, g)
    }
    for (name, p) in parameters where p.isTrainable {
        if let g = found[name] { grads.set(name, g) }
    }
    return (value.detached(), grads)
}

/// Evaluates `f` at `inputs` and its gradient with respect to each input (JAX-style).
///
/// - Returns: `f(inputs)` and one gradient per input (zeros where `f` does not depend on it).
/// - Throws: `TensorError` when `f` does not return a scalar.
public func valueAndGradient(
    of f: ([Tensor]) throws -> Tensor, at inputs: [Tensor]
) throws -> (value: Tensor, gradients: [Tensor]) {
    let leaves = inputs.map { $0.detached().requiringGradient() }
    let value = try GradMode.$isEnabled.withValue(true) { try f(leaves) }
    guard value.count == 1 else {
        throw TensorError("backward", "the function must return a scalar, got shape \(fmt(value.shape))")
    }
    var out = inputs.map { Tensor.zeros($0.shape) }
    guard let root = value.node else { return (value.detached(), out) }
    let index = Dictionary(
        uniqueKeysWithValues: leaves.enumerated().map { (ObjectIdentifier($0.element.node!), $0.offset) })
    try runBackward(root: root, seed: Tensor(shape: value.shape, storage: Storage(copying: [1]))) { leaf, g in
        if let i = index[ObjectIdentifier(leaf)] { out[i] = g }
    }
    return (value.detached(), out)
}

/// Gradient of `f` at `inputs` (see `valueAndGradient(of:at:)`).
public func gradient(of f: ([Tensor]) throws -> Tensor, at inputs: [Tensor]) throws -> [Tensor] {
    try valueAndGradient(of: f, at: inputs).gradients
}

/// Activation checkpointing: runs `block` on `inputs` without keeping its intermediate activations,
/// and runs it again during backward to compute gradients (trading compute for memory).
///
/// Parameters read inside `block` receive their gradients as usual. `block` must be deterministic
/// (pass dropout an explicit seed, not a generator it advances).
/// - Returns: `block(inputs)`, recorded as one node.
public func checkpoint(_ inputs: [Tensor], _ block: @escaping ([Tensor]) throws -> Tensor) throws -> Tensor {
    guard GradMode.isEnabled else { return try block(inputs) }
    // First pass with recording, only to find the parameter leaves the block reads; the graph (and
    // its activations) is dropped as soon as the walk is done.
    let probeInputs = inputs.map { $0.node != nil ? $0.detached().requiringGradient() : $0.detached() }
    let probe = try block(probeInputs)
    var paramLeaves: [GradNode] = []
    if let root = probe.node {
        var stack = [root]
        var seen: Set<ObjectIdentifier> = [ObjectIdentifier(root)]
        while let n = stack.popLast() {
            if n.isLeaf, n.parameter != nil { paramLeaves.append(n) }
            for case let i? in n.inputs where seen.insert(ObjectIdentifier(i)).inserted { stack.append(i) }
        }
    }
    let output = probe.detached()
    let recorded = inputs.contains { $0.node != nil } || !paramLeaves.isEmpty
    guard recorded else { return output }
    var out = output
    let saved = inputs.map { $0.detached() }
    let needs = inputs.map { $0.node != nil }
    let leaves = paramLeaves
    out.node = GradNode(
        op: "checkpoint", inputs: inputs.map(\.node) + leaves.map { Optional($0) }, shape: output.shape
    ) { g in
        let fresh = zip(saved, needs).map { $1 ? $0.requiringGradient() : $0 }
        let y = try GradMode.$isEnabled.withValue(true) { try block(fresh) }
        var got: [ObjectIdentifier: Tensor] = [:]
        if let root = y.node {
            try runBackward(root: root, seed: g) { leaf, lg in
                let id = ObjectIdentifier(leaf)
                if let prev = got[id] { got[id] = try prev + lg } else { got[id] = lg }
            }
        }
        let inputGrads: [Tensor?] = fresh.map { t in t.node.flatMap { got[ObjectIdentifier($0)] } }
        let paramGrads: [Tensor?] = leaves.map { got[ObjectIdentifier($0)] }
        return inputGrads + paramGrads
    }
    return out
}
