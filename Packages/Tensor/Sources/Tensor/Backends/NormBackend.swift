/// Normalisation kernels (layer, RMS, group and batch norm) with fused backward.
/// Requirements are implemented in `CPUBackend+Norm.swift` and `ReferenceBackend+Norm.swift`.
public protocol NormBackend {}
