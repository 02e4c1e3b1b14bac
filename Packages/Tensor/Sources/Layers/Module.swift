@_exported import Tensor

/// A non-trainable tensor a module owns (running statistics, position ids). Persistent buffers are
/// part of the state dict (PyTorch `register_buffer(..., persistent=True)`); others are derived and
/// never saved (`persistent=False`).
public final class Buffer: @unchecked Sendable {
    public var value: Tensor
    public let persistent: Bool

    public init(_ value: Tensor, persistent: Bool = true) {
        self.value = value
        self.persistent = persistent
    }
}

/// A tree of named children and named parameters, enumerated as dotted paths that equal the
/// `state_dict` keys PyTorch and HF write for the architecture the module mirrors.
///
/// Discovery is explicit: a subclass lists its own parameters, buffers and children, in PyTorch's
/// registration order, by overriding `localParameters`, `localBuffers` and `localChildren`. Because the
/// lists are computed, replacing a child (a `Linear` by a LoRA-wrapped one) is seen at once.
///
/// ```swift
/// final class Block: Module {
///     let fc1 = Linear(8, 16), fc2 = Linear(16, 8)
///     override var localChildren: [(String, Module)] { [("fc1", fc1), ("fc2", fc2)] }
/// }
/// Block().namedParameters().map(\.0)   // ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]
/// ```
open class Module {
    /// Training mode (dropout active, batch norm uses batch statistics). Set with `train()`/`eval()`.
    public private(set) var isTraining = true

    public init() {}

    /// This module's own parameters (not its children's), in registration order.
    open var localParameters: [(String, Parameter)] { [] }
    /// This module's own buffers, in registration order.
    open var localBuffers: [(String, Buffer)] { [] }
    /// Direct children, in registration order.
    open var localChildren: [(String, Module)] { [] }

    /// Re-initialises this module's own parameters (not its children's) from `generator`, with the
    /// initialiser PyTorch uses for the layer. The default does nothing.
    open func resetLocalParameters(generator: inout RandomGenerator) {}

    // MARK: Enumeration

    /// Every parameter of the tree as (dotted name, parameter), depth-first in registration order.
    public func namedParameters(prefix: String = "") -> [(String, Parameter)] {
        var out: [(String, Parameter)] = []
        visit(prefix) { path, m in
            for (n, p) in m.localParameters { out.append((path + n, p)) }
        }
        return out
    }

    /// Whether `predicate` holds for every parameter of the tree (depth-first, stopping at the first
    /// that fails), without building the dotted names `namedParameters` builds.
    public func allParameters(_ predicate: (Parameter) -> Bool) -> Bool {
        for (_, p) in localParameters where !predicate(p) { return false }
        for (_, c) in localChildren where !c.allParameters(predicate) { return false }
        return true
    }

    /// Trainable parameters only.
    public func trainableParameters(prefix: String = "") -> [(String, Parameter)] {
        namedParameters(prefix: prefix).filter { $0.1.isTrainable }
    }

    /// Every buffer of the tree as (dotted name, buffer); only persistent ones when `persistentOnly`.
    public func namedBuffers(prefix: String = "", persistentOnly: Bool = false) -> [(String, Buffer)] {
        var out: [(String, Buffer)] = []
        visit(prefix) { path, m in
            for (n, b) in m.localBuffers where !persistentOnly || b.persistent { out.append((path + n, b)) }
        }
        return out
    }

    /// Every module of the tree (this one first, with name "") as (dotted name, module).
    public func namedModules() -> [(String, Module)] {
        var out: [(String, Module)] = []
        visit("") { path, m in out.append((path.hasSuffix(".") ? String(path.dropLast()) : path, m)) }
        return out
    }

    private func visit(_ prefix: String, _ body: (String, Module) -> Void) {
        body(prefix, self)
        for (n, c) in localChildren { c.visit(prefix + n + ".", body) }
    }

    /// Parameters and persistent buffers as (name, tensor): what a weights file stores.
    public func stateDict() -> [(String, Tensor)] {
        namedParameters().map { ($0.0, $0.1.data) }
            + namedBuffers(persistentOnly: true).map { ($0.0, $0.1.value) }
    }

    /// Number of scalar parameters (all, or trainable only).
    public func parameterCount(trainableOnly: Bool = false) -> Int {
        namedParameters().reduce(0) { $0 + (trainableOnly && !$1.1.isTrainable ? 0 : $1.1.data.count) }
    }

    // MARK: Freezing

    /// Freezes (or unfreezes) every parameter whose name starts with `prefix` ("" for all).
    /// - Returns: how many parameters changed state.
    @discardableResult
    public func freeze(prefix: String = "", _ frozen: Bool = true) -> Int {
        freeze(where: { $0.hasPrefix(prefix) }, frozen)
    }

    /// Unfreezes every parameter whose name starts with `prefix`.
    @discardableResult
    public func unfreeze(prefix: String = "") -> Int { freeze(prefix: prefix, false) }

    /// Freezes (or unfreezes) every parameter whose name satisfies `predicate`.
    @discardableResult
    public func freeze(where predicate: (String) -> Bool, _ frozen: Bool = true) -> Int {
        var changed = 0
        for (name, p) in namedParameters() where predicate(name) && p.isTrainable == frozen {
            p.isTrainable = !frozen
            changed += 1
        }
        return changed
    }

    // MARK: Modes and initialisation

    /// Sets training mode on the whole tree.
    public func train(_ on: Bool = true) {
        for (_, m) in namedModules() { m.isTraining = on }
    }

    /// Sets evaluation mode on the whole tree.
    public func eval() { train(false) }

    /// Re-initialises every parameter of the tree with PyTorch's default initialisers, drawing from a
    /// generator seeded with `seed`, module by module in registration order (so the same seed always
    /// gives the same weights).
    public func resetParameters(seed: UInt64) {
        var g = RandomGenerator(seed: seed)
        resetParameters(generator: &g)
    }

    /// Re-initialises every parameter of the tree from `generator`.
    public func resetParameters(generator: inout RandomGenerator) {
        for (_, m) in namedModules() { m.resetLocalParameters(generator: &generator) }
    }

    // MARK: Loading

    /// Looks up a parameter or buffer by dotted name.
    public func tensorSlot(named name: String) -> TensorSlot? {
        if let p = namedParameters().first(where: { $0.0 == name }) { return .parameter(p.1) }
        if let b = namedBuffers().first(where: { $0.0 == name }) { return .buffer(b.1) }
        return nil
    }
}

/// Where a named tensor of a module lives.
public enum TensorSlot {
    case parameter(Parameter)
    case buffer(Buffer)

    /// The current values.
    public var value: Tensor {
        switch self {
        case .parameter(let p): return p.data
        case .buffer(let b): return b.value
        }
    }

    /// Replaces the values (the caller checks the shape).
    public func set(_ t: Tensor) {
        switch self {
        case .parameter(let p): p.data = t
        case .buffer(let b): b.value = t
        }
    }
}

/// A module that maps one tensor to one tensor (so it can sit in a `Sequential`).
public protocol UnaryLayer: Module {
    /// Applies the layer.
    func callAsFunction(_ x: Tensor) throws -> Tensor
}

/// Children named 0, 1, 2, ... (PyTorch `nn.ModuleList`).
public final class ModuleList<Element: Module>: Module, RandomAccessCollection {
    public var modules: [Element]

    public init(_ modules: [Element]) { self.modules = modules }

    public override var localChildren: [(String, Module)] {
        modules.enumerated().map { (String($0.offset), $0.element) }
    }
    public var startIndex: Int { modules.startIndex }
    public var endIndex: Int { modules.endIndex }
    public subscript(i: Int) -> Element {
        get { modules[i] }
        set { modules[i] = newValue }
    }
}

/// Layers applied in order, children named 0, 1, 2, ... (PyTorch `nn.Sequential`).
public final class Sequential: Module, UnaryLayer {
    public var layers: [any UnaryLayer]

    public init(_ layers: [any UnaryLayer]) { self.layers = layers }

    public override var localChildren: [(String, Module)] {
        layers.enumerated().map { (String($0.offset), $0.element) }
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        try layers.reduce(x) { try $1($0) }
    }
}

/// Applies a function with no parameters (an activation) as a layer.
public final class Lambda: Module, UnaryLayer {
    let f: (Tensor) throws -> Tensor
    public init(_ f: @escaping (Tensor) throws -> Tensor) { self.f = f }
    public func callAsFunction(_ x: Tensor) throws -> Tensor { try f(x) }
}
