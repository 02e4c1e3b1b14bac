import Foundation
import Optim
import Testing

@Test func mm1LawMatchesClosedForm() {
    // 1.2e9 parameters: exp(-0.4214 * ln(1.2e9) - 0.5535) = 8.6e-5 (about 8.6e-5, MM1's 1B-scale rate).
    let lr = mm1PeakLearningRate(parameterCount: 1_200_000_000)
    #expect(abs(lr - exp(-0.4214 * log(1.2e9) - 0.5535)) < 1e-15)
    #expect(lr > 8e-5 && lr < 9.5e-5)
    // Larger models get smaller rates.
    #expect(mm1PeakLearningRate(parameterCount: 3_000_000_000) < lr)
}
