import Datasets
import Foundation
import Tensor

extension PipelineImages {
    /// Decodes every image format the sources accept: binary PPM (P6) with the built-in codec, JPEG and
    /// PNG with Vision's codecs. The decoder `trainer data check` validates with.
    /// - Returns: `[3, H, W]` RGB in [0, 1].
    /// - Throws: `DatasetError` naming the image for a missing, corrupt or unsupported file.
    public static func decodeAnyFormat(_ ref: ImageReference) throws -> Tensor {
        let head: Data
        switch ref {
        case .file(let u):
            let h = try? FileHandle(forReadingFrom: u)
            head = (try? h?.read(upToCount: 2)) ?? Data()
            try? h?.close()
        case .bytes(let d, _): head = d.prefix(2)
        }
        if head.starts(with: [0x50, 0x36]) { return try BuiltinImageCodec.decode(ref) }
        return try decode(ref)
    }
}
