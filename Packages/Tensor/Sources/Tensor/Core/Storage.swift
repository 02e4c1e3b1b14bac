import Foundation
import TensorKernels

/// The element types a tensor can store. Only `float32` is computed on today; the enum leaves room
/// for 16-bit storage (weights files already read and write float16/bfloat16 through conversion).
public enum DType: String, Codable, Sendable {
    case float32
    /// Bytes per element.
    public var size: Int { 4 }
}

/// A reference-counted, 64-byte aligned buffer of Float32 elements, recycled through `BufferPool`.
///
/// A `Tensor` owns one; copy-on-write keeps tensors values: a write to a shared buffer copies it first.
public final class Storage: @unchecked Sendable {
    /// Base address of `count` elements.
    public let pointer: UnsafeMutablePointer<Float>
    /// Number of Float32 elements.
    public let count: Int

    /// A buffer of `count` elements; zero-filled when `zeroed` (otherwise its contents are undefined).
    public init(count: Int, zeroed: Bool = false) {
        self.count = count
        self.pointer = BufferPool.shared.take(count)
        if zeroed && count > 0 { pointer.update(repeating: 0, count: count) }
    }

    /// A buffer holding a copy of `values`.
    public convenience init<C: Collection>(copying values: C) where C.Element == Float {
        self.init(count: values.count)
        _ = UnsafeMutableBufferPointer(start: pointer, count: count).initialize(from: values)
    }

    deinit { BufferPool.shared.give(pointer, count) }
}

/// Recycles tensor buffers by exact element count, so that a training step that allocates the same
/// shapes every step stops calling the system allocator after the first steps.
///
/// Cached (free) memory is bounded by `capacityBytes`; buffers beyond it are released.
public final class BufferPool: @unchecked Sendable {
    /// The process-wide pool used by `Storage`.
    public static let shared = BufferPool()

    /// The free buffers of one size. A class, so that popping and pushing mutate the list in place
    /// through a dictionary read: a dictionary's `modify` accessor allocates its coroutine frame with
    /// malloc on every call, which was hundreds of malloc calls per training step.
    private final class FreeList {
        var buffers: [UnsafeMutablePointer<Float>] = []
    }

    private let lock = NSLock()
    private var free: [Int: FreeList] = [:]
    private var cachedBytes = 0
    /// Fresh allocations and reuses since start (for benchmarks and tests).
    public private(set) var allocations = 0
    public private(set) var reuses = 0

    /// Upper bound on bytes kept in free lists (default 2 GiB, or `SIGHTLINE_POOL_MB`).
    public var capacityBytes: Int = {
        if let s = ProcessInfo.processInfo.environment["SIGHTLINE_POOL_MB"], let mb = Int(s) {
            return mb << 20
        }
        return 2 << 30
    }()

    func take(_ count: Int) -> UnsafeMutablePointer<Float> {
        let n = max(count, 1)
        lock.lock()
        if let p = free[n]?.buffers.popLast() {
            cachedBytes -= n * 4
            reuses += 1
            lock.unlock()
            return p
        }
        allocations += 1
        lock.unlock()
        let raw = UnsafeMutableRawPointer.allocate(byteCount: n * 4, alignment: 64)
        return raw.bindMemory(to: Float.self, capacity: n)
    }

    func give(_ p: UnsafeMutablePointer<Float>, _ count: Int) {
        let n = max(count, 1)
        lock.lock()
        if cachedBytes + n * 4 <= capacityBytes {
            if let list = free[n] {
                list.buffers.append(p)
            } else {
                let list = FreeList()
                list.buffers.append(p)
                free[n] = list
            }
            cachedBytes += n * 4
            lock.unlock()
            return
        }
        lock.unlock()
        UnsafeMutableRawPointer(p).deallocate()
    }

    /// Releases every cached buffer.
    public func drain() {
        lock.lock()
        let lists = free
        free = [:]
        cachedBytes = 0
        lock.unlock()
        for (_, list) in lists { for p in list.buffers { UnsafeMutableRawPointer(p).deallocate() } }
    }
}
