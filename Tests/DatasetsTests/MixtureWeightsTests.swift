import Datasets
import Testing

@Test func mm1DefaultMixtureNormalises() throws {
    let w = try #require(MixtureWeights().normalized)
    #expect(abs(w[0] - 0.45) < 1e-12 && abs(w[1] - 0.45) < 1e-12 && abs(w[2] - 0.10) < 1e-12)
    #expect(MixtureWeights(interleaved: 9, imageCaption: 9, textOnly: 2).normalized == w)
    #expect(MixtureWeights(interleaved: -1).normalized == nil)
    #expect(MixtureWeights(interleaved: 0, imageCaption: 0, textOnly: 0).normalized == nil)
}

@Test func mixtureRealisesItsWeightsDeterministically() throws {
    var m = try Mixture(MixtureWeights(), seed: 42)
    let a = (0..<10_000).map { _ in m.next() }
    for (r, w) in zip(m.realised, [0.45, 0.45, 0.10]) { #expect(abs(r - w) < 0.01, "\(m.realised)") }
    var again = try Mixture(MixtureWeights(), seed: 42)
    #expect((0..<10_000).map { _ in again.next() } == a)
    var other = try Mixture(MixtureWeights(), seed: 43)
    #expect((0..<100).map { _ in other.next() } != Array(a.prefix(100)))
    #expect(throws: DatasetError.self) { try Mixture(weights: [1, -1], seed: 0) }
}
