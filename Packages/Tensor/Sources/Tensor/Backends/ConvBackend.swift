/// Convolution, pooling and interpolation kernels (NCHW).
/// Requirements are implemented in `CPUBackend+Conv.swift` and `ReferenceBackend+Conv.swift`.
public protocol ConvBackend {}
