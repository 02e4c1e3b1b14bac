
/// A restricted unpickler for PyTorch state dicts. It interprets the pickle opcodes that plain data
/// uses (protocols 2 to 5: dicts, lists, tuples, ints, floats, strings, bytes, booleans, None, the
/// memo, frames) and resolves only these globals, which it never calls as Python would:
///
/// - `torch._utils._rebuild_tensor_v2`, `torch._utils._rebuild_parameter` (a tensor view of a storage),
/// - `torch.FloatStorage`, `HalfStorage`, `BFloat16Storage`, `DoubleStorage`, `LongStorage`,
///   `IntStorage`, `ShortStorage`, `CharStorage`, `ByteStorage`, `BoolStorage` (storage types named by
///   persistent ids),
/// - `collections.OrderedDict`.
///
/// Any other global (`os.system`, `builtins.eval`, ...) and any opcode that builds arbitrary objects
/// (`INST`, `OBJ`, `NEWOBJ`, extension codes, ...) is refused with an error, so loading a pickle
/// can never run code. Containers may not be changed after they are placed inside another container
/// (Python's pickler never does this except for self-referencing data), which rules out cycles, and
/// nesting is limited, so hostile input cannot exhaust the stack.
struct Unpickler {
    /// A storage named by a persistent id: `("storage", torch.FloatStorage, "0", "cpu", numel)`.
    struct StorageRef: Equatable {
        var key: String
        var dtype: StoredDType
        var count: Int
    }

    /// A tensor: a strided view of a storage.
    struct TensorRef: Equatable {
        var storage: StorageRef
        var offset: Int
        var shape: [Int]
        var strides: [Int]
    }

    final class ListBox {
        var items: [Value] = []
        var depth = 0
        var sealed = false
    }

    final class DictBox {
        var items: [(Value, Value)] = []
        var depth = 0
        var sealed = false
    }

    indirect enum Value {
        case none
        case bool(Bool)
        case int(Int)
        case float(Double)
        case string(String)
        case bytes([UInt8])
        case tuple([Value], depth: Int)
        case list(ListBox)
        case dict(DictBox)
        case global(String)
        case storage(StorageRef)
        case tensor(TensorRef)

        var depth: Int {
            switch self {
            case .tuple(_, let d): return d
            case .list(let l): return l.depth
            case .dict(let d): return d.depth
            default: return 0
            }
        }

        var kind: String {
            switch self {
            case .none: return "None"
            case .bool: return "bool"
            case .int: return "int"
            case .float: return "float"
            case .string: return "str"
            case .bytes: return "bytes"
            case .tuple: return "tuple"
            case .list: return "list"
            case .dict: return "dict"
            case .global(let g): return g
            case .storage: return "storage"
            case .tensor: return "tensor"
            }
        }
    }

    static let storageTypes: [String: StoredDType] = [
        "torch.FloatStorage": .float32, "torch.HalfStorage": .float16, "torch.BFloat16Storage": .bfloat16,
        "torch.DoubleStorage": .float64, "torch.LongStorage": .int64, "torch.IntStorage": .int32,
        "torch.ShortStorage": .int16, "torch.CharStorage": .int8, "torch.ByteStorage": .uint8,
        "torch.BoolStorage": .bool,
    ]
    static let rebuildTensor = "torch._utils._rebuild_tensor_v2"
    static let rebuildParameter = "torch._utils._rebuild_parameter"
    static let orderedDict = "collections.OrderedDict"
    /// Every global a state dict may name.
    static let allowedGlobals: Set<String> = Set(storageTypes.keys).union([
        rebuildTensor, rebuildParameter, orderedDict,
    ])
    static let maxDepth = 64

    let data: UnsafeRawBufferPointer
    let file: String
    let entry: String
    /// Resolves a storage key to its element count in the archive (checks the entry exists and is
    /// large enough).
    let storageBytes: (String) -> Int?

    private var i = 0
    private var stack: [Value] = []
    private var marks: [Int] = []
    private var memo: [Int: Value] = [:]

    init(data: UnsafeRawBufferPointer, file: String, entry: String, storageBytes: @escaping (String) -> Int?)
    {
        self.data = data
        self.file = file
        self.entry = entry
        self.storageBytes = storageBytes
    }

    private func fail(_ m: String, at offset: Int? = nil) -> TensorFileError {
        TensorFileError(file: file, "\(entry) at byte \(offset ?? max(i - 1, 0)): \(m)")
    }

    private mutating func byte() throws -> UInt8 {
        guard i < data.count else { throw fail("truncated (no STOP opcode)", at: i) }
        defer { i += 1 }
        return data[i]
    }

    private mutating func bytes(_ n: Int) throws -> UnsafeRawBufferPointer {
        guard n >= 0, n <= data.count - i else {
            throw fail("a \(n)-byte argument runs past the end (\(data.count) bytes)", at: i)
        }
        defer { i += n }
        return UnsafeRawBufferPointer(rebasing: data[i..<(i + n)])
    }

    private mutating func uint(_ n: Int) throws -> Int {
        let b = try bytes(n)
        var v: UInt64 = 0
        for k in (0..<n).reversed() { v = v << 8 | UInt64(b[k]) }
        guard v <= UInt64(Int.max) else { throw fail("length \(v) is out of range") }
        return Int(v)
    }

    private mutating func line() throws -> String {
        guard let nl = data[i...].firstIndex(of: 0x0A), nl - i <= 256 else {
            throw fail("GLOBAL name is not a short line", at: i)
        }
        defer { i = nl + 1 }
        return String(decoding: UnsafeRawBufferPointer(rebasing: data[i..<nl]), as: UTF8.self)
    }

    private mutating func pop() throws -> Value {
        guard let v = stack.popLast() else { throw fail("stack underflow") }
        if let m = marks.last, stack.count < m { throw fail("pop across a MARK") }
        return v
    }

    private mutating func popMark() throws -> [Value] {
        guard let m = marks.popLast() else { throw fail("no MARK") }
        guard m <= stack.count else { throw fail("MARK above the stack") }
        let items = Array(stack[m...])
        stack.removeSubrange(m...)
        return items
    }

    private func deeper(_ items: [Value]) throws -> Int {
        let d = (items.map(\.depth).max() ?? 0) + 1
        guard d <= Unpickler.maxDepth else { throw fail("nesting deeper than \(Unpickler.maxDepth)") }
        return d
    }

    /// Marks `v` as placed inside a container.
    private func seal(_ v: Value) {
        if case .list(let l) = v { l.sealed = true }
        if case .dict(let d) = v { d.sealed = true }
    }

    private func string(_ b: UnsafeRawBufferPointer) throws -> Value {
        guard let s = String(validating: b, as: UTF8.self) else { throw fail("string is not valid UTF-8") }
        return .string(s)
    }

    private mutating func appendItems(_ items: [Value]) throws {
        guard case .list(let l)? = stack.last else {
            throw fail("APPEND to a \(stack.last?.kind ?? "nothing")")
        }
        guard !l.sealed else {
            throw fail(
                "a list is changed after being placed in another container (cyclic data is not supported)")
        }
        for v in items {
            if case .list(let x) = v, x === l { throw fail("a list contains itself") }
            seal(v)
        }
        l.items.append(contentsOf: items)
        l.depth = max(l.depth, try deeper(items))
    }

    private mutating func setItems(_ items: [Value]) throws {
        guard items.count % 2 == 0 else { throw fail("SETITEMS with an odd number of values") }
        guard case .dict(let d)? = stack.last else {
            throw fail("SETITEM on a \(stack.last?.kind ?? "nothing")")
        }
        guard !d.sealed else {
            throw fail(
                "a dict is changed after being placed in another container (cyclic data is not supported)")
        }
        var k = 0
        while k < items.count {
            let key = items[k], value = items[k + 1]
            switch key {
            case .string, .int, .bool, .none, .float: break
            default: throw fail("dict key of type \(key.kind) is not supported")
            }
            if case .dict(let x) = value, x === d { throw fail("a dict contains itself") }
            seal(value)
            d.items.append((key, value))
            k += 2
        }
        d.depth = max(d.depth, try deeper(items))
    }

    private func int(_ v: Value, _ what: String) throws -> Int {
        if case .int(let x) = v { return x }
        if case .bool(let b) = v { return b ? 1 : 0 }
        throw fail("\(what) is a \(v.kind), not an int")
    }

    private func ints(_ v: Value, _ what: String) throws -> [Int] {
        guard case .tuple(let items, _) = v else { throw fail("\(what) is a \(v.kind), not a tuple") }
        return try items.map { try int($0, what) }
    }

    /// Most elements a strided view may have beyond its storage's own count (zero strides).
    static let maxExpandedElements = 1 << 24

    /// `_rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])`.
    private func rebuildTensor(_ args: [Value]) throws -> Value {
        guard args.count == 6 || args.count == 7 else {
            throw fail("_rebuild_tensor_v2 takes 6 or 7 arguments, got \(args.count)")
        }
        guard case .storage(let s) = args[0] else {
            throw fail("_rebuild_tensor_v2: first argument is a \(args[0].kind), not a storage")
        }
        let offset = try int(args[1], "storage offset")
        let shape = try ints(args[2], "size")
        let strides = try ints(args[3], "stride")
        guard shape.count == strides.count, shape.count <= 32 else {
            throw fail("size \(fmtShape(shape)) and stride \(fmtShape(strides)) differ in rank")
        }
        guard offset >= 0, shape.allSatisfy({ $0 >= 0 }), strides.allSatisfy({ $0 >= 0 }) else {
            throw fail(
                "negative offset, size or stride (offset \(offset), size \(fmtShape(shape)), stride \(fmtShape(strides)))"
            )
        }
        guard let count = checkedElementCount(shape) else {
            throw fail("size \(fmtShape(shape)) is too large")
        }
        if count > 0 {
            var last = offset
            for (n, st) in zip(shape, strides) {
                let (m, o1) = (n - 1).multipliedReportingOverflow(by: st)
                let (sum, o2) = last.addingReportingOverflow(m)
                guard !o1, !o2 else {
                    throw fail("size \(fmtShape(shape)) with stride \(fmtShape(strides)) overflows")
                }
                last = sum
            }
            guard last < s.count else {
                throw fail(
                    "a tensor of size \(fmtShape(shape)), stride \(fmtShape(strides)), offset \(offset) reaches element \(last) "
                        + "of storage '\(s.key)', which has \(s.count)")
            }
            // Zero strides let a small storage claim any number of elements; reading such a view
            // allocates them all. Refuse a view much larger than its storage.
            guard count <= max(s.count, Unpickler.maxExpandedElements) else {
                throw fail(
                    "a tensor of size \(fmtShape(shape)) with stride \(fmtShape(strides)) has \(count) elements "
                        + "but storage '\(s.key)' holds \(s.count) (zero strides expand it); refused")
            }
        }
        return .tensor(TensorRef(storage: s, offset: offset, shape: shape, strides: strides))
    }

    private mutating func reduce() throws {
        let args = try pop()
        let callable = try pop()
        guard case .global(let name) = callable else {
            throw fail("REDUCE calls a \(callable.kind), which is not allowed")
        }
        guard case .tuple(let a, _) = args else {
            throw fail("REDUCE arguments are a \(args.kind), not a tuple")
        }
        switch name {
        case Unpickler.rebuildTensor:
            stack.append(try rebuildTensor(a))
        case Unpickler.rebuildParameter:
            guard a.count >= 1, case .tensor = a[0] else { throw fail("_rebuild_parameter needs a tensor") }
            stack.append(a[0])
        case Unpickler.orderedDict:
            let d = DictBox()
            if let first = a.first {
                // OrderedDict([(k, v), ...])
                guard a.count == 1, case .list(let pairs) = first else {
                    throw fail("OrderedDict takes a list of pairs")
                }
                stack.append(.dict(d))
                for p in pairs.items {
                    guard case .tuple(let kv, _) = p, kv.count == 2 else {
                        throw fail("OrderedDict item is not a pair")
                    }
                    try setItems(kv)
                }
                return
            }
            stack.append(.dict(d))
        default:
            throw fail("calling \(name) is not allowed")
        }
    }

    private mutating func persistentLoad(_ pid: Value) throws -> Value {
        guard case .tuple(let t, _) = pid, t.count == 5, case .string("storage") = t[0] else {
            throw fail("persistent id is not ('storage', type, key, location, numel)")
        }
        guard case .global(let typeName) = t[1], let dtype = Unpickler.storageTypes[typeName] else {
            throw fail("persistent id names storage type \(t[1].kind), which is not supported")
        }
        guard case .string(let key) = t[2] else { throw fail("storage key is a \(t[2].kind), not a str") }
        let count = try int(t[4], "storage numel")
        guard count >= 0 else { throw fail("storage '\(key)' has negative size \(count)") }
        guard let available = storageBytes(key) else {
            throw fail("storage '\(key)' has no data entry in the archive")
        }
        let (need, o) = count.multipliedReportingOverflow(by: dtype.byteSize)
        guard !o, need <= available else {
            throw fail(
                "storage '\(key)' declares \(count) \(dtype.rawValue) elements but its entry has \(available) bytes"
            )
        }
        return .storage(StorageRef(key: key, dtype: dtype, count: count))
    }

    /// Runs the pickle to its STOP opcode and returns the value.
    mutating func load() throws -> Value {
        while true {
            let op = try byte()
            switch op {
            case 0x80:  // PROTO
                let v = try byte()
                guard v >= 2 && v <= 5 else {
                    throw fail("pickle protocol \(v) is not supported (2 to 5 are)")
                }
            case 0x95: _ = try bytes(8)  // FRAME
            case 0x2E:  // STOP
                guard stack.count == 1, marks.isEmpty else {
                    throw fail("STOP with \(stack.count) values on the stack")
                }
                return stack[0]
            case 0x7D: stack.append(.dict(DictBox()))  // EMPTY_DICT }
            case 0x5D: stack.append(.list(ListBox()))  // EMPTY_LIST ]
            case 0x29: stack.append(.tuple([], depth: 1))  // EMPTY_TUPLE )
            case 0x28: marks.append(stack.count)  // MARK (
            case 0x4E: stack.append(.none)  // NONE
            case 0x88: stack.append(.bool(true))  // NEWTRUE
            case 0x89: stack.append(.bool(false))  // NEWFALSE
            case 0x4A:  // BININT
                let b = try bytes(4)
                stack.append(.int(Int(Int32(littleEndian: b.loadUnaligned(as: Int32.self)))))
            case 0x4B: stack.append(.int(Int(try byte())))  // BININT1
            case 0x4D: stack.append(.int(try uint(2)))  // BININT2
            case 0x8A, 0x8B:  // LONG1, LONG4
                let n = op == 0x8A ? Int(try byte()) : try uint(4)
                guard n <= 8 else { throw fail("integer of \(n) bytes is too large") }
                let b = try bytes(n)
                var v: UInt64 = 0
                for k in (0..<n).reversed() { v = v << 8 | UInt64(b[k]) }
                if n > 0 && n < 8 && b[n - 1] & 0x80 != 0 { v |= UInt64.max << (8 * UInt64(n)) }  // sign-extend
                stack.append(.int(Int(Int64(bitPattern: v))))
            case 0x47:  // BINFLOAT (big-endian)
                let b = try bytes(8)
                stack.append(.float(Double(bitPattern: UInt64(bigEndian: b.loadUnaligned(as: UInt64.self)))))
            case 0x58: stack.append(try string(try bytes(try uint(4))))  // BINUNICODE X
            case 0x8C: stack.append(try string(try bytes(Int(try byte()))))  // SHORT_BINUNICODE
            case 0x8D: stack.append(try string(try bytes(try uint(8))))  // BINUNICODE8
            case 0x54, 0x55:  // BINSTRING, SHORT_BINSTRING (Python 2 str): bytes as Latin-1
                let b = try bytes(op == 0x54 ? try uint(4) : Int(try byte()))
                stack.append(.string(String(b.map { Character(Unicode.Scalar($0)) })))
            case 0x42: stack.append(.bytes(Array(try bytes(try uint(4)))))  // BINBYTES
            case 0x43: stack.append(.bytes(Array(try bytes(Int(try byte())))))  // SHORT_BINBYTES
            case 0x8E: stack.append(.bytes(Array(try bytes(try uint(8)))))  // BINBYTES8
            case 0x74:  // TUPLE
                let items = try popMark()
                items.forEach(seal)
                stack.append(.tuple(items, depth: try deeper(items)))
            case 0x85, 0x86, 0x87:  // TUPLE1..3
                let n = Int(op - 0x84)
                guard stack.count - (marks.last ?? 0) >= n else { throw fail("stack underflow") }
                let items = Array(stack.suffix(n))
                stack.removeLast(n)
                items.forEach(seal)
                stack.append(.tuple(items, depth: try deeper(items)))
            case 0x6C:  // LIST
                let items = try popMark()
                stack.append(.list(ListBox()))
                try appendItems(items)
            case 0x64:  // DICT
                let items = try popMark()
                stack.append(.dict(DictBox()))
                try setItems(items)
            case 0x61: try appendItems([try pop()])  // APPEND
            case 0x65: try appendItems(try popMark())  // APPENDS
            case 0x73:  // SETITEM
                let v = try pop()
                let k = try pop()
                try setItems([k, v])
            case 0x75: try setItems(try popMark())  // SETITEMS
            case 0x71, 0x72, 0x94:  // BINPUT, LONG_BINPUT, MEMOIZE
                let idx = op == 0x71 ? Int(try byte()) : op == 0x72 ? try uint(4) : memo.count
                guard let top = stack.last else { throw fail("memoize with an empty stack") }
                memo[idx] = top
            case 0x68, 0x6A:  // BINGET, LONG_BINGET
                let idx = op == 0x68 ? Int(try byte()) : try uint(4)
                guard let v = memo[idx] else { throw fail("memo \(idx) is not set") }
                stack.append(v)
            case 0x63:  // GLOBAL
                let module = try line()
                let name = try line()
                let full = module + "." + name
                guard Unpickler.allowedGlobals.contains(full) else {
                    throw fail(
                        "refused global '\(full)': a state dict may only name tensor rebuild functions, storage types and OrderedDict"
                    )
                }
                stack.append(.global(full))
            case 0x93:  // STACK_GLOBAL
                let name = try pop()
                let module = try pop()
                guard case .string(let n) = name, case .string(let m) = module else {
                    throw fail("STACK_GLOBAL needs two strings")
                }
                let full = m + "." + n
                guard Unpickler.allowedGlobals.contains(full) else {
                    throw fail(
                        "refused global '\(full)': a state dict may only name tensor rebuild functions, storage types and OrderedDict"
                    )
                }
                stack.append(.global(full))
            case 0x52: try reduce()  // REDUCE
            case 0x51: stack.append(try persistentLoad(try pop()))  // BINPERSID
            case 0x62:  // BUILD: only OrderedDict state (its _metadata), kept out of the tensors
                let state = try pop()
                guard case .dict? = stack.last else {
                    throw fail("BUILD on a \(stack.last?.kind ?? "nothing") is not allowed")
                }
                switch state {
                case .none, .dict, .tuple: break
                default: throw fail("BUILD with a \(state.kind) state is not allowed")
                }
            case 0x30: _ = try pop()  // POP
            case 0x31: _ = try popMark()  // POP_MARK
            case 0x32:  // DUP
                guard let top = stack.last else { throw fail("DUP with an empty stack") }
                stack.append(top)
            default:
                let known: [UInt8: String] = [
                    0x69: "INST", 0x6F: "OBJ", 0x81: "NEWOBJ", 0x92: "NEWOBJ_EX", 0x82: "EXT1", 0x83: "EXT2",
                    0x84: "EXT4",
                    0x50: "PERSID", 0x49: "INT", 0x4C: "LONG", 0x46: "FLOAT", 0x53: "STRING", 0x56: "UNICODE",
                    0x70: "PUT", 0x67: "GET", 0x8F: "EMPTY_SET", 0x90: "ADDITEMS", 0x91: "FROZENSET",
                    0x96: "BYTEARRAY8", 0x97: "NEXT_BUFFER", 0x98: "READONLY_BUFFER",
                ]
                let name =
                    known[op].map { "\($0) (0x\(String(op, radix: 16)))" } ?? "0x\(String(op, radix: 16))"
                throw fail("opcode \(name) is not allowed in a state dict")
            }
        }
    }
}
