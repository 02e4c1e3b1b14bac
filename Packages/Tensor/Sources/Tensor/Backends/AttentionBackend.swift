/// Blocked scaled-dot-product attention, forward and backward.
/// Requirements are implemented in `CPUBackend+Attention.swift` and `ReferenceBackend+Attention.swift`.
public protocol AttentionBackend {}
