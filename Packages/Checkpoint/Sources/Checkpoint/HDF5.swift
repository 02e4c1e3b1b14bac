import _CHDF5
import Foundation
@_spi(FileSupport) import TensorFiles
import Tensor

// A thin owner layer over libhdf5: every hid_t lives in an `H5Handle` that closes it on release,
// every call that can fail is checked, and failures become `TensorFileError`s that carry the file,
// the dataset and HDF5's own error stack as text. HDF5's automatic error printing is switched off.

/// Serialises use of libhdf5 (which may be built without thread safety) and keeps its error stack
/// quiet on the calling thread.
enum H5 {
    static let lock = NSRecursiveLock()

    /// Runs `body` holding the library lock, with automatic error printing off for this thread.
    static func run<T>(_ body: () throws -> T) rethrows -> T {
        lock.lock()
        defer { lock.unlock() }
        H5Eset_auto2(sl_h5e_default(), nil, nil)
        return try body()
    }

    /// The current thread's error stack as one line (outermost call first), then clears it.
    static func takeErrorStack() -> String {
        final class Box { var parts: [String] = [] }
        let box = Box()
        let ctx = Unmanaged.passUnretained(box).toOpaque()
        H5Ewalk2(
            sl_h5e_default(), H5E_WALK_DOWNWARD,
            { _, err, data in
                guard let err, let data else { return 0 }
                let b = Unmanaged<Box>.fromOpaque(data).takeUnretainedValue()
                if let d = err.pointee.desc {
                    var s = String(cString: d).split(whereSeparator: \.isNewline).joined(separator: " ")
                    if s.count > 200 { s = String(s.prefix(200)) + "..." }
                    if !s.isEmpty && !b.parts.contains(s) { b.parts.append(s) }
                }
                return 0
            }, ctx)
        H5Eclear2(sl_h5e_default())
        if box.parts.isEmpty { return "HDF5 reported no detail" }
        // The outermost entry says what failed, the innermost ones why.
        let parts = box.parts.count <= 3 ? box.parts : [box.parts[0]] + box.parts.suffix(2)
        return parts.joined(separator: ": ")
    }

    /// An error for `file` (and `tensor`) that ends with HDF5's error stack.
    static func error(_ file: String, _ tensor: String?, _ what: String) -> TensorFileError {
        TensorFileError(file: file, tensor: tensor, "\(what): \(takeErrorStack())")
    }

    /// `id` when valid, else an error naming `what`.
    static func check(_ id: hid_t, _ file: String, _ tensor: String?, _ what: String) throws -> hid_t {
        guard id >= 0 else { throw error(file, tensor, what) }
        return id
    }

    /// Succeeds when `status` is not negative.
    static func check(_ status: herr_t, _ file: String, _ tensor: String?, _ what: String) throws {
        guard status >= 0 else { throw error(file, tensor, what) }
    }
}

/// Owns one HDF5 identifier and closes it (with the matching H5?close) when released.
final class H5Handle {
    enum Kind { case file, group, dataset, dataspace, datatype, attribute, plist, object }
    private(set) var id: hid_t
    let kind: Kind

    init(_ id: hid_t, _ kind: Kind) {
        self.id = id
        self.kind = kind
    }

    /// Checked construction: throws when `id` is negative.
    convenience init(_ id: hid_t, _ kind: Kind, file: String, tensor: String? = nil, _ what: String) throws {
        self.init(try H5.check(id, file, tensor, what), kind)
    }

    /// Closes now; returns the close status (files flush here). Idempotent.
    @discardableResult
    func close() -> herr_t {
        guard id >= 0 else { return 0 }
        let status: herr_t = H5.run {
            switch kind {
            case .file: return H5Fclose(id)
            case .group: return H5Gclose(id)
            case .dataset: return H5Dclose(id)
            case .dataspace: return H5Sclose(id)
            case .datatype: return H5Tclose(id)
            case .attribute: return H5Aclose(id)
            case .plist: return H5Pclose(id)
            case .object: return H5Oclose(id)
            }
        }
        id = -1
        return status
    }

    deinit { close() }
}

/// Keeps handles alive until the end of a scope, then closes them newest first.
///
/// Swift may release an object right after its last use, which for a local `H5Handle` can be before
/// the C call that uses its id has run. Functions therefore keep their local handles in a scope that
/// they close in a `defer`:
/// ```swift
/// let s = H5Scope()
/// defer { s.close() }
/// let space = try s.open(H5Screate(H5S_SCALAR), .dataspace, file: path, "cannot create a dataspace")
/// ```
final class H5Scope {
    private var handles: [H5Handle] = []

    /// Keeps `h` until the scope closes.
    @discardableResult
    func keep(_ h: H5Handle) -> H5Handle {
        handles.append(h)
        return h
    }

    /// A checked handle for `id`, kept until the scope closes; returns the id.
    func open(_ id: hid_t, _ kind: H5Handle.Kind, file: String, tensor: String? = nil, _ what: String) throws
        -> hid_t
    {
        keep(try H5Handle(id, kind, file: file, tensor: tensor, what)).id
    }

    /// Closes every kept handle, newest first.
    func close() {
        for h in handles.reversed() { h.close() }
        handles.removeAll()
    }

    deinit { close() }
}

/// A value of an HDF5 attribute.
public enum AttributeValue: Equatable, Sendable, CustomStringConvertible {
    case string(String)
    case int(Int64)
    case double(Double)
    /// Anything else (arrays, compound types), described.
    case other(String)

    public var description: String {
        switch self {
        case .string(let s): return s
        case .int(let i): return String(i)
        case .double(let d): return String(d)
        case .other(let s): return s
        }
    }
}

/// Name rules for datasets and groups: non-empty, no `/` (HDF5's path separator), not `.`, no NUL.
func checkObjectName(_ name: String, file: String) throws {
    guard !name.isEmpty, !name.contains("/"), name != ".", !name.utf8.contains(0) else {
        throw TensorFileError(
            file: file, tensor: name, "is not a valid name (empty, '.', or contains '/' or NUL)")
    }
}

/// HDF5 operations on open files and groups. Every function must be called inside `H5.run`; each
/// keeps its local handles in an `H5Scope`. Handles it returns are the caller's to keep alive.
enum H5IO {
    // MARK: Types

    /// IEEE half (1 sign, 5 exponent, 10 mantissa bits), little-endian: h5py's `float16`.
    static func halfType(_ file: String) throws -> H5Handle {
        try customFloat(file, exponentBits: 5, mantissaBits: 10, bias: 15)
    }

    /// bfloat16 as an HDF5 float (1, 8, 7 bits), little-endian: read only (files from other tools).
    static func bfloatType(_ file: String) throws -> H5Handle {
        try customFloat(file, exponentBits: 8, mantissaBits: 7, bias: 127)
    }

    private static func customFloat(_ file: String, exponentBits: Int, mantissaBits: Int, bias: Int) throws
        -> H5Handle
    {
        let t = try H5Handle(
            H5Tcopy(sl_h5t_ieee_f32le()), .datatype, file: file, "cannot copy the float type")
        try H5.check(
            H5Tset_fields(t.id, 15, mantissaBits, exponentBits, 0, mantissaBits), file, nil,
            "cannot set 16-bit float fields")
        try H5.check(H5Tset_size(t.id, 2), file, nil, "cannot set the 16-bit float size")
        try H5.check(H5Tset_ebias(t.id, bias), file, nil, "cannot set the 16-bit float exponent bias")
        return t
    }

    /// A variable-length string type in `cset`.
    static func vlenString(_ file: String, cset: H5T_cset_t = H5T_CSET_UTF8) throws -> H5Handle {
        let t = try H5Handle(H5Tcopy(sl_h5t_c_s1()), .datatype, file: file, "cannot copy the string type")
        try H5.check(
            H5Tset_size(t.id, sl_h5t_variable()), file, nil, "cannot make a variable-length string type")
        try H5.check(H5Tset_cset(t.id, cset), file, nil, "cannot set the string character set")
        return t
    }

    /// A group-creation (or file-creation) property list that records and indexes link creation
    /// order, so that names list in the order they were written.
    static func orderedGroupPlist(_ file: String, fileCreation: Bool = false) throws -> H5Handle {
        let p = try H5Handle(
            H5Pcreate(fileCreation ? sl_h5p_file_create() : sl_h5p_group_create()), .plist, file: file,
            "cannot create a property list")
        try H5.check(
            H5Pset_link_creation_order(p.id, UInt32(H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED)), file,
            nil,
            "cannot track link creation order")
        return p
    }

    // MARK: Files

    /// Creates (truncating) an HDF5 file at `path`; errors name `reportAs`. Closing the file closes
    /// everything still open in it (strong close degree), so that `closeFile` really flushes it. The
    /// file starts with an empty 512-byte user block for the checksum `closeAndSeal` records.
    static func createFile(_ path: String, reportAs: String) throws -> H5Handle {
        let s = H5Scope()
        defer { s.close() }
        let fcpl = s.keep(try orderedGroupPlist(reportAs, fileCreation: true))
        try H5.check(
            H5Pset_userblock(fcpl.id, hsize_t(FileChecksum.blockSize)), reportAs, nil,
            "cannot reserve the checksum block")
        let fapl = try s.open(
            H5Pcreate(sl_h5p_file_access()), .plist, file: reportAs, "cannot create a property list")
        try H5.check(
            H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG), reportAs, nil, "cannot set the close degree")
        try H5.check(sl_disable_file_locking(fapl), reportAs, nil, "cannot disable file locking")
        return try H5Handle(
            H5Fcreate(path, sl_h5f_acc_trunc(), fcpl.id, fapl), .file, file: reportAs,
            "cannot create the HDF5 file")
    }

    /// Opens `path` read-only, after checking its checksum block (`FileChecksum`): a damaged file
    /// never reaches libhdf5.
    /// - Parameter requireChecksum: refuse a file without a checksum block.
    static func openFile(_ path: String, requireChecksum: Bool = false) throws -> H5Handle {
        try FileChecksum.verify(path, required: requireChecksum)
        let s = H5Scope()
        defer { s.close() }
        let fapl = try s.open(
            H5Pcreate(sl_h5p_file_access()), .plist, file: path, "cannot create a property list")
        try H5.check(sl_disable_file_locking(fapl), path, nil, "cannot disable file locking")
        return try H5Handle(
            H5Fopen(path, sl_h5f_acc_rdonly(), fapl), .file, file: path, "cannot open as HDF5")
    }

    /// Flushes and closes `file`, reporting failure.
    static func closeFile(_ file: H5Handle, _ path: String) throws {
        try H5.check(H5Fflush(file.id, H5F_SCOPE_GLOBAL), path, nil, "cannot flush")
        guard file.close() >= 0 else { throw H5.error(path, nil, "cannot close") }
    }

    /// Flushes and closes `file` (created by `createFile` at `tmp`), then records its checksum in
    /// the user block. Errors name `reportAs`.
    static func closeAndSeal(_ file: H5Handle, _ tmp: String, reportAs: String) throws {
        try closeFile(file, reportAs)
        try FileChecksum.seal(tmp, reportAs: reportAs)
    }

    /// Refuses a dataset whose values live outside the file: external raw storage (which can pull any
    /// local file into a tensor) or a virtual dataset (which maps other files).
    static func checkStoredInFile(_ ds: H5Handle, _ name: String, file: String) throws {
        let s = H5Scope()
        defer { s.close() }
        let dcpl = try s.open(
            H5Dget_create_plist(ds.id), .plist, file: file, tensor: name, "cannot read dataset properties")
        let external = H5Pget_external_count(dcpl)
        guard external >= 0 else { throw H5.error(file, name, "cannot read the external storage list") }
        guard external == 0 else {
            throw TensorFileError(
                file: file, tensor: name, "uses external storage (values in other files), which is refused")
        }
        let layout = H5Pget_layout(dcpl)
        guard layout != H5D_VIRTUAL else {
            throw TensorFileError(
                file: file, tensor: name, "is a virtual dataset (values mapped from other files), which is refused")
        }
        guard layout.rawValue >= 0 else { throw H5.error(file, name, "cannot read the dataset layout") }
    }

    // MARK: Groups and links

    static func createGroup(_ loc: H5Handle, _ name: String, file: String) throws -> H5Handle {
        try checkObjectName(name, file: file)
        let gcpl = try orderedGroupPlist(file)
        return try withExtendedLifetime(gcpl) {
            try H5Handle(
                H5Gcreate2(loc.id, name, sl_h5p_default(), gcpl.id, sl_h5p_default()), .group, file: file,
                tensor: name,
                "cannot create group")
        }
    }

    /// Opens group `name` of `loc` (`/` for the root group).
    static func openGroup(_ loc: H5Handle, _ name: String, file: String) throws -> H5Handle {
        guard name == "/" || sl_link_type(loc.id, name) == Int32(H5L_TYPE_HARD.rawValue) else {
            H5Eclear2(sl_h5e_default())
            throw TensorFileError(file: file, tensor: name, "no such group")
        }
        return try H5Handle(
            H5Gopen2(loc.id, name, sl_h5p_default()), .group, file: file, tensor: name, "cannot open group")
    }

    enum ObjectKind { case dataset, group, other }

    /// The hard links of group `loc` (creation order when the group indexes it, else name order) and
    /// what each names. Soft and external links are skipped.
    static func children(_ loc: H5Handle, file: String) throws -> [(name: String, kind: ObjectKind)] {
        let s = H5Scope()
        defer { s.close() }
        var info = H5G_info_t()
        try H5.check(H5Gget_info(loc.id, &info), file, nil, "cannot read group info")
        var index = H5_INDEX_NAME
        if let gcpl = try? s.open(
            H5Gget_create_plist(loc.id), .plist, file: file, "cannot read group properties")
        {
            var flags: UInt32 = 0
            if H5Pget_link_creation_order(gcpl, &flags) >= 0, flags & UInt32(H5P_CRT_ORDER_INDEXED) != 0 {
                index = H5_INDEX_CRT_ORDER
            }
        }
        H5Eclear2(sl_h5e_default())
        var out: [(String, ObjectKind)] = []
        var i: hsize_t = 0
        while i < info.nlinks {
            defer { i += 1 }
            let len = H5Lget_name_by_idx(loc.id, ".", index, H5_ITER_INC, i, nil, 0, sl_h5p_default())
            guard len >= 0, len < 1 << 20 else {
                throw H5.error(file, nil, "cannot read the name of link \(i)")
            }
            var buf = [CChar](repeating: 0, count: Int(len) + 1)
            guard
                H5Lget_name_by_idx(loc.id, ".", index, H5_ITER_INC, i, &buf, buf.count, sl_h5p_default()) >= 0
            else {
                throw H5.error(file, nil, "cannot read the name of link \(i)")
            }
            let name = String(cString: buf)
            guard sl_link_type(loc.id, name) == Int32(H5L_TYPE_HARD.rawValue) else {
                H5Eclear2(sl_h5e_default())
                continue
            }
            let obj = try s.open(
                H5Oopen(loc.id, name, sl_h5p_default()), .object, file: file, tensor: name, "cannot open")
            switch H5Iget_type(obj) {
            case H5I_DATASET: out.append((name, .dataset))
            case H5I_GROUP: out.append((name, .group))
            default: out.append((name, .other))
            }
        }
        return out
    }

    // MARK: Attributes

    static func writeAttribute(_ loc: H5Handle, _ name: String, string value: String, file: String) throws {
        let s = H5Scope()
        defer { s.close() }
        let t = s.keep(try vlenString(file)).id
        let space = try s.open(H5Screate(H5S_SCALAR), .dataspace, file: file, "cannot create a dataspace")
        let a = try s.open(
            H5Acreate2(loc.id, name, t, space, sl_h5p_default(), sl_h5p_default()), .attribute, file: file,
            "cannot create attribute '\(name)'")
        try value.withCString { c in
            var p: UnsafePointer<CChar>? = c
            try H5.check(H5Awrite(a, t, &p), file, nil, "cannot write attribute '\(name)'")
        }
    }

    static func writeAttribute(_ loc: H5Handle, _ name: String, int value: Int64, file: String) throws {
        let s = H5Scope()
        defer { s.close() }
        let space = try s.open(H5Screate(H5S_SCALAR), .dataspace, file: file, "cannot create a dataspace")
        let a = try s.open(
            H5Acreate2(loc.id, name, sl_h5t_std_i64le(), space, sl_h5p_default(), sl_h5p_default()),
            .attribute,
            file: file, "cannot create attribute '\(name)'")
        var v = value
        try H5.check(H5Awrite(a, sl_h5t_native_int64(), &v), file, nil, "cannot write attribute '\(name)'")
    }

    /// Names of the attributes of `loc`, in name order.
    static func attributeNames(_ loc: H5Handle, file: String, tensor: String? = nil) throws -> [String] {
        final class Box { var names: [String] = [] }
        let box = Box()
        var n: hsize_t = 0
        let status = withExtendedLifetime(box) {
            H5Aiterate2(
                loc.id, H5_INDEX_NAME, H5_ITER_INC, &n,
                { _, name, _, data in
                    guard let name, let data else { return -1 }
                    Unmanaged<Box>.fromOpaque(data).takeUnretainedValue().names.append(String(cString: name))
                    return 0
                }, Unmanaged.passUnretained(box).toOpaque())
        }
        try H5.check(status, file, tensor, "cannot list attributes")
        return box.names
    }

    /// The value of attribute `name` of `loc`, or nil when there is none.
    static func readAttribute(_ loc: H5Handle, _ name: String, file: String, tensor: String? = nil) throws
        -> AttributeValue?
    {
        let exists = H5Aexists(loc.id, name)
        guard exists >= 0 else { throw H5.error(file, tensor, "cannot look up attribute '\(name)'") }
        if exists == 0 { return nil }
        let s = H5Scope()
        defer { s.close() }
        let what = "attribute '\(name)'"
        let a = try s.open(
            H5Aopen(loc.id, name, sl_h5p_default()), .attribute, file: file, tensor: tensor,
            "cannot open \(what)")
        let t = try s.open(
            H5Aget_type(a), .datatype, file: file, tensor: tensor, "cannot read the type of \(what)")
        let space = try s.open(
            H5Aget_space(a), .dataspace, file: file, tensor: tensor, "cannot read the shape of \(what)")
        let points = H5Sget_simple_extent_npoints(space)
        guard points >= 0 else { throw H5.error(file, tensor, "cannot read the shape of \(what)") }
        let cls = H5Tget_class(t)
        guard points == 1 else { return .other("\(points) values of class \(cls.rawValue)") }
        switch cls {
        case H5T_STRING:
            let isVariable = H5Tis_variable_str(t)
            guard isVariable >= 0 else {
                throw H5.error(file, tensor, "cannot read the string type of \(what)")
            }
            if isVariable > 0 {
                let mt = s.keep(try vlenString(file, cset: H5Tget_cset(t))).id
                var p: UnsafeMutablePointer<CChar>? = nil
                try H5.check(H5Aread(a, mt, &p), file, tensor, "cannot read \(what)")
                guard let p else { return .string("") }
                defer { H5free_memory(p) }
                return .string(String(cString: p))
            }
            let size = H5Tget_size(t)
            guard size > 0, size < 1 << 26 else {
                throw TensorFileError(file: file, tensor: tensor, "\(what) has string size \(size)")
            }
            // Read into a null-terminated type one byte longer, so that a null-padded string of
            // exactly `size` characters keeps its last one.
            let mt = try s.open(H5Tcopy(sl_h5t_c_s1()), .datatype, file: file, "cannot copy the string type")
            try H5.check(H5Tset_size(mt, size + 1), file, tensor, "cannot size the string type")
            try H5.check(H5Tset_cset(mt, H5Tget_cset(t)), file, tensor, "cannot set the string character set")
            var buf = [UInt8](repeating: 0, count: size + 2)
            try H5.check(H5Aread(a, mt, &buf), file, tensor, "cannot read \(what)")
            let end = buf.firstIndex(of: 0) ?? size
            return .string(String(decoding: buf[..<end], as: UTF8.self))
        case H5T_INTEGER:
            var v: Int64 = 0
            try H5.check(H5Aread(a, sl_h5t_native_int64(), &v), file, tensor, "cannot read \(what)")
            return .int(v)
        case H5T_FLOAT:
            var v: Double = 0
            try H5.check(H5Aread(a, sl_h5t_native_double(), &v), file, tensor, "cannot read \(what)")
            return .double(v)
        default:
            return .other("a value of class \(cls.rawValue)")
        }
    }

    /// Every attribute of `loc` by name.
    static func readAttributes(_ loc: H5Handle, file: String, tensor: String? = nil) throws -> [(
        String, AttributeValue
    )] {
        try attributeNames(loc, file: file, tensor: tensor).map { n in
            (n, try readAttribute(loc, n, file: file, tensor: tensor) ?? .other("missing"))
        }
    }

    // MARK: Datasets

    /// Writes `tensor` as dataset `name` in `loc`, stored as `dtype`. bfloat16 is stored as 16-bit
    /// unsigned integers with the attribute `dtype = "bfloat16"`.
    static func writeTensor(
        _ loc: H5Handle, _ name: String, _ tensor: Tensor, dtype: WeightDType, file: String
    ) throws {
        try checkObjectName(name, file: file)
        let s = H5Scope()
        defer { s.close() }
        var dims = tensor.shape.map { hsize_t($0) }
        let space = try s.open(
            dims.isEmpty ? H5Screate(H5S_SCALAR) : H5Screate_simple(Int32(dims.count), &dims, nil),
            .dataspace,
            file: file, tensor: name, "cannot create a dataspace of shape \(fmtShape(tensor.shape))")
        let fileType: hid_t
        switch dtype {
        case .float32:
            fileType = try s.open(H5Tcopy(sl_h5t_ieee_f32le()), .datatype, file: file, "cannot copy a type")
        case .float16: fileType = s.keep(try halfType(file)).id
        case .bfloat16:
            fileType = try s.open(H5Tcopy(sl_h5t_std_u16le()), .datatype, file: file, "cannot copy a type")
        }
        let ds = s.keep(
            try H5Handle(
                H5Dcreate2(
                    loc.id, name, fileType, space, sl_h5p_default(), sl_h5p_default(), sl_h5p_default()),
                .dataset, file: file, tensor: name, "cannot create dataset"))
        if dtype == .bfloat16 { try writeAttribute(ds, "dtype", string: "bfloat16", file: file) }
        guard tensor.count > 0 else {
            guard ds.close() >= 0 else { throw H5.error(file, name, "cannot close dataset") }
            return
        }
        switch dtype {
        case .float32:
            try tensor.withUnsafeBufferPointer { v in
                try H5.check(
                    H5Dwrite(
                        ds.id, sl_h5t_native_float(), sl_h5s_all(), sl_h5s_all(), sl_h5p_default(),
                        v.baseAddress),
                    file, name, "cannot write dataset")
            }
        case .float16, .bfloat16:
            let bits = ElementConversion.halfBits(tensor, as: dtype)
            let memType = dtype == .float16 ? fileType : sl_h5t_native_uint16()
            try bits.withUnsafeBufferPointer { b in
                try H5.check(
                    H5Dwrite(ds.id, memType, sl_h5s_all(), sl_h5s_all(), sl_h5p_default(), b.baseAddress),
                    file, name,
                    "cannot write dataset")
            }
        }
        guard ds.close() >= 0 else { throw H5.error(file, name, "cannot close dataset") }
    }

    /// How a dataset's values are read.
    enum ReadPath { case native32, native64, half, bfloatFloat, bfloatBits, integer }

    /// Shape, stored type and read path of dataset `ds`.
    static func describe(_ ds: H5Handle, _ name: String, file: String) throws -> (TensorInfo, ReadPath) {
        let s = H5Scope()
        defer { s.close() }
        let space = try s.open(
            H5Dget_space(ds.id), .dataspace, file: file, tensor: name, "cannot read the dataspace")
        let rank = H5Sget_simple_extent_ndims(space)
        guard rank >= 0, rank <= 32 else { throw H5.error(file, name, "cannot read the rank") }
        var dims = [hsize_t](repeating: 0, count: Int(rank))
        guard H5Sget_simple_extent_dims(space, &dims, nil) >= 0 else {
            throw H5.error(file, name, "cannot read the shape")
        }
        var shape: [Int] = []
        for d in dims {
            guard d <= hsize_t(Int.max) else {
                throw TensorFileError(file: file, tensor: name, "size \(d) is too large")
            }
            shape.append(Int(d))
        }
        let t = try s.open(H5Dget_type(ds.id), .datatype, file: file, tensor: name, "cannot read the type")
        let size = H5Tget_size(t)
        let cls = H5Tget_class(t)
        func info(_ d: StoredDType, _ p: ReadPath) -> (TensorInfo, ReadPath) {
            (TensorInfo(name: name, shape: shape, dtype: d), p)
        }
        switch cls {
        case H5T_FLOAT:
            switch size {
            case 4: return info(.float32, .native32)
            case 8: return info(.float64, .native64)
            case 2:
                var spos = 0, epos = 0, esize = 0, mpos = 0, msize = 0
                guard H5Tget_fields(t, &spos, &epos, &esize, &mpos, &msize) >= 0 else {
                    throw H5.error(file, name, "cannot read the float layout")
                }
                let bias = H5Tget_ebias(t)
                if (spos, epos, esize, mpos, msize, bias) == (15, 10, 5, 0, 10, 15) {
                    return info(.float16, .half)
                }
                if (spos, epos, esize, mpos, msize, bias) == (15, 7, 8, 0, 7, 127) {
                    return info(.bfloat16, .bfloatFloat)
                }
                throw TensorFileError(
                    file: file, tensor: name,
                    "unsupported 16-bit float layout (exponent \(esize) bits, mantissa \(msize) bits)")
            default:
                throw TensorFileError(file: file, tensor: name, "unsupported \(size)-byte float type")
            }
        case H5T_INTEGER:
            let signed = H5Tget_sign(t) == H5T_SGN_2
            if size == 2 && !signed,
                case .string("bfloat16")? = try readAttribute(ds, "dtype", file: file, tensor: name)
            {
                return info(.bfloat16, .bfloatBits)
            }
            let d: StoredDType
            switch (size, signed) {
            case (1, true): d = .int8
            case (1, false): d = .uint8
            case (2, true): d = .int16
            case (2, false): d = .uint16
            case (4, true): d = .int32
            case (4, false): d = .uint32
            case (8, true): d = .int64
            case (8, false): d = .uint64
            default: throw TensorFileError(file: file, tensor: name, "unsupported \(size)-byte integer type")
            }
            return info(d, .integer)
        default:
            throw TensorFileError(
                file: file, tensor: name,
                "unsupported HDF5 type class \(cls.rawValue) (only numbers are tensors)")
        }
    }

    /// Reads dataset `name` of `loc` as Float32. `fileBytes` bounds what an unchunked dataset may
    /// claim, so that a corrupted shape cannot make this allocate more than the file could hold.
    static func readTensor(_ loc: H5Handle, _ name: String, file: String, fileBytes: Int) throws -> (
        Tensor, TensorInfo
    ) {
        let s = H5Scope()
        defer { s.close() }
        let ds = s.keep(
            try H5Handle(
                H5Dopen2(loc.id, name, sl_h5p_default()), .dataset, file: file, tensor: name,
                "cannot open dataset"))
        try checkStoredInFile(ds, name, file: file)
        let (info, path) = try describe(ds, name, file: file)
        guard let count = checkedElementCount(info.shape), count <= Int.max / 8 else {
            throw TensorFileError(file: file, tensor: name, "shape \(fmtShape(info.shape)) is too large")
        }
        let dcpl = try s.open(
            H5Dget_create_plist(ds.id), .plist, file: file, tensor: name, "cannot read dataset properties")
        let layout = H5Pget_layout(dcpl)
        let stored = count * info.dtype.byteSize
        if layout != H5D_CHUNKED && stored > fileBytes {
            throw TensorFileError(
                file: file, tensor: name,
                "shape \(fmtShape(info.shape)) of \(info.dtype.rawValue) needs \(stored) bytes but the file has \(fileBytes)"
            )
        }
        // Chunks may be compressed, but not beyond what deflate can reach (about 1000:1).
        if layout == H5D_CHUNKED && stored / 1100 > max(fileBytes, 1 << 16) {
            throw TensorFileError(
                file: file, tensor: name,
                "chunked shape \(fmtShape(info.shape)) of \(info.dtype.rawValue) needs \(stored) bytes, more than a \(fileBytes)-byte file can hold"
            )
        }
        let limit = Int(min(ProcessInfo.processInfo.physicalMemory / 2, UInt64(Int.max / 2)))
        guard count * 8 <= limit else {
            throw TensorFileError(
                file: file, tensor: name,
                "shape \(fmtShape(info.shape)) needs more memory than this machine has")
        }
        var out = Tensor.zeros(info.shape)
        guard count > 0 else { return (out, info) }
        func read(_ memType: hid_t, _ buffer: UnsafeMutableRawPointer) throws {
            try H5.check(
                H5Dread(ds.id, memType, sl_h5s_all(), sl_h5s_all(), sl_h5p_default(), buffer), file, name,
                "cannot read dataset")
        }
        switch path {
        case .native32:
            try out.withUnsafeMutableBufferPointer { try read(sl_h5t_native_float(), $0.baseAddress!) }
        case .native64, .integer:
            var d = [Double](repeating: 0, count: count)
            try d.withUnsafeMutableBufferPointer { try read(sl_h5t_native_double(), $0.baseAddress!) }
            out.withUnsafeMutableBufferPointer { o in for i in 0..<count { o[i] = Float(d[i]) } }
        case .half, .bfloatFloat, .bfloatBits:
            var bits = [UInt16](repeating: 0, count: count)
            let memType: hid_t
            switch path {
            case .half: memType = s.keep(try halfType(file)).id
            case .bfloatFloat: memType = s.keep(try bfloatType(file)).id
            default: memType = sl_h5t_native_uint16()
            }
            try bits.withUnsafeMutableBufferPointer { try read(memType, $0.baseAddress!) }
            out.withUnsafeMutableBufferPointer { o in
                if path == .half {
                    for i in 0..<count { o[i] = ElementConversion.float(float16Bits: bits[i]) }
                } else {
                    for i in 0..<count { o[i] = ElementConversion.float(bfloat16Bits: bits[i]) }
                }
            }
        }
        return (out, info)
    }

    /// Shape and type of every dataset directly in `loc`, in link order.
    static func datasetInfos(_ loc: H5Handle, file: String) throws -> [TensorInfo] {
        try children(loc, file: file).filter { $0.kind == .dataset }.map { c in
            let ds = try H5Handle(
                H5Dopen2(loc.id, c.name, sl_h5p_default()), .dataset, file: file, tensor: c.name,
                "cannot open dataset")
            try checkStoredInFile(ds, c.name, file: file)
            return try describe(ds, c.name, file: file).0
        }
    }
}

/// Size in bytes of the file at `path` (0 when it cannot be read).
func fileSize(_ path: String) -> Int {
    (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
}
