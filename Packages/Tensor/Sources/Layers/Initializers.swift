import Foundation

/// Parameter initialisers, each matching the PyTorch function of the same purpose.
public enum Initializer {
    /// U(-bound, bound).
    case uniform(bound: Float)
    /// N(mean, std).
    case normal(mean: Float = 0, std: Float)
    /// N(mean, std) truncated to the absolute interval [a, b] (`nn.init.trunc_normal_`).
    case truncatedNormal(mean: Float = 0, std: Float, a: Float = -2, b: Float = 2)
    case zeros
    case ones
    case constant(Float)

    /// PyTorch's default for `Linear`/`Conv` weights (`kaiming_uniform_(a=sqrt(5))`) and their biases:
    /// U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
    public static func pytorchDefault(fanIn: Int) -> Initializer {
        .uniform(bound: fanIn > 0 ? 1 / Float(fanIn).squareRoot() : 0)
    }

    /// A tensor of `shape` drawn from this initialiser.
    public func make(_ shape: [Int], generator: inout RandomGenerator) -> Tensor {
        switch self {
        case .uniform(let bound):
            return Tensor.uniform(shape, low: -bound, high: bound, generator: &generator)
        case .normal(let mean, let std):
            return Tensor.normal(shape, mean: mean, std: std, generator: &generator)
        case .truncatedNormal(let mean, let std, let a, let b):
            return Tensor.truncatedNormal(shape, mean: mean, std: std, a: a, b: b, generator: &generator)
        case .zeros: return Tensor.zeros(shape)
        case .ones: return Tensor.ones(shape)
        case .constant(let v): return Tensor.full(shape, v)
        }
    }

    /// Replaces `parameter`'s values with a fresh draw of the same shape.
    public func apply(to parameter: Parameter, generator: inout RandomGenerator) {
        parameter.data = make(parameter.shape, generator: &generator)
    }
}
