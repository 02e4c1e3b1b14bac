import Checkpoint
import Testing

@Test func linksHDF5AtLeast1_10() {
    let v = HDF5Library.version
    #expect(v.major > 1 || (v.major == 1 && v.minor >= 10))
}
