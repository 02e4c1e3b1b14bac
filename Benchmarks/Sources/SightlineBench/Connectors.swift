import Bridges
import Foundation
import Tensor

/// Forward + backward time of every connector at the `small` benchmark shape (224 image, patch 14:
/// a 16x16 grid; vision width 384, LLM width 512, batch 4), with its token count, in one run.
/// Chain-of-Sight reads two feature levels; the others one.
func connectorSuite(_ report: Report, repeats: Int) throws {
    let grid = Grid.square(16), c = 384, llm = 512, batch = 4
    let configs: [(String, ConnectorConfiguration)] = [
        ("linear projection", .projection(ProjectionConfig(visionDim: c, llmDim: llm, depth: 1))),
        ("MLP projection (2 layers)", .projection(ProjectionConfig(visionDim: c, llmDim: llm, depth: 2))),
        (
            "average pooling 8x8",
            .averagePooling(AveragePoolingConfig(visionDim: c, llmDim: llm, outputGrid: .square(8)))
        ),
        (
            "attention pooling 64",
            .attentionPooling(AttentionPoolingConfig(visionDim: c, llmDim: llm, queries: 64, heads: c / 64))
        ),
        (
            "C-Abstractor 64 (depth 3)",
            .cAbstractor(
                CAbstractorConfig(
                    visionDim: c, hiddenSize: c, llmDim: llm, depth: 3, numQueries: 64, inputGrid: grid))
        ),
        (
            "resampler 80 (one window)",
            try ConnectorConfiguration.resampler(visionDim: c, llmDim: llm, grid: grid, queries: 80)
        ),
        (
            "Chain-of-Sight pt32",
            .chainOfSight(
                ChainOfSightConfig.preset(.pt32, visionDim: c, llmDim: llm, featureLevels: [8, 11]))
        ),
        (
            "Chain-of-Sight v1 (80)",
            .chainOfSight(ChainOfSightConfig.preset(.v1, visionDim: c, llmDim: llm, featureLevels: [8, 11]))
        ),
        (
            "Chain-of-Sight demo (144)",
            .chainOfSight(
                ChainOfSightConfig.preset(.demo_q16_64_64, visionDim: c, llmDim: llm, featureLevels: [8, 11]))
        ),
    ]
    var gen = RandomGenerator(seed: 12)
    let featureTensors = (0..<2).map { _ in
        Tensor.normal([batch, grid.height * grid.width, c], generator: &gen)
    }
    for (name, config) in configs {
        let connector = try makeConnector(config, seed: 1)
        let tokens = try connector.tokenCount(grid: grid)
        let levels = config.featureLevels.count
        let params = connector.namedParameters()
        let r = try measure(repeats: repeats, warmup: 1, work: 1e3) {
            _ = try valueAndGradient(at: params) {
                let inputs = featureTensors.prefix(levels).map { FeatureLevel($0, grid: grid) }
                return try connector(Array(inputs)).square().mean()
            }
        }
        // work = 1e3 ms: the rate is calls per 1000 s; report milliseconds per call instead.
        _ = report.add(
            "connectors", "\(name): \(tokens) tokens, fwd+bwd ms", unit: "ms", (1e6 / r.best, 1e6 / r.median))
    }
}
