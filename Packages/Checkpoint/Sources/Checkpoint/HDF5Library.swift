import _CHDF5

/// The HDF5 library this build links.
public enum HDF5Library {
    /// `major.minor.release` of the linked libhdf5.
    public static var version: (major: Int, minor: Int, release: Int) {
        var maj: UInt32 = 0
        var min: UInt32 = 0
        var rel: UInt32 = 0
        H5get_libversion(&maj, &min, &rel)
        return (Int(maj), Int(min), Int(rel))
    }
}
