import Datasets
import Testing

@Test func mm1DefaultMixtureNormalises() throws {
    let w = try #require(MixtureWeights().normalized)
    #expect(abs(w[0] - 0.45) < 1e-12 && abs(w[1] - 0.45) < 1e-12 && abs(w[2] - 0.10) < 1e-12)
    #expect(MixtureWeights(interleaved: 9, imageCaption: 9, textOnly: 2).normalized == w)
    #expect(MixtureWeights(interleaved: -1).normalized == nil)
    #expect(MixtureWeights(interleaved: 0, imageCaption: 0, textOnly: 0).normalized == nil)
}
