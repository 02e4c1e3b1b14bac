/// Loss (fused cross-entropy), embedding, indexing and dropout kernels.
/// Requirements are implemented in `CPUBackend+Loss.swift` and `ReferenceBackend+Loss.swift`.
public protocol LossBackend {}
