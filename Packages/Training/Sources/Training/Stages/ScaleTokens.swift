import Bridges
import Foundation
import Layers
import TensorFiles
import Vision

/// Compound token scaling without training (the `scale-tokens` stage): the Chain-of-Sight connector
/// is inflated with a named extension (more windows x more queries; every new scale a bit-for-bit
/// copy of its source scale, queries repeated), and the vision tower's position embeddings are
/// resampled to the new image size, so the pair runs natively at the new resolution.
public enum ScaleTokens {
    /// The resampling rule named in the config: `chain_of_sight`, `hf` or `timm`.
    /// - Throws: `ConfigError` for another name.
    public static func interpolation(named name: String) throws -> PositionInterpolation {
        switch name {
        case "chain_of_sight": return .chainOfSight
        case "hf": return .huggingFace
        case "timm": return .timm
        default:
            throw ConfigError(keyPath: "scale-tokens.interpolation", source: "scale-tokens", "unknown rule \(name)")
        }
    }

    /// The extension preset called `name`.
    /// - Throws: `ConfigError` listing the presets.
    public static func extensionPreset(named name: String) throws -> ChainOfSightExtension {
        guard let spec = ChainOfSightExtension.presets.first(where: { $0.name == name }) else {
            throw ConfigError(
                keyPath: "scale-tokens.extension", source: "scale-tokens",
                "unknown extension \(name) (\(ChainOfSightExtension.presets.map(\.name).joined(separator: ", ")))")
        }
        return spec
    }

    /// A pure function of its inputs: a new tower (a copy of `tower` with position embeddings resampled
    /// to `imageSize`) and the inflated connector for the new patch grid. Neither input is modified.
    /// - Returns: the new tower, the new connector, and the visual-token count per image.
    /// - Throws: `TensorError` / `VisionError` when the extension does not fit the connector or the
    ///   new grid (naming the scale and the numbers).
    public static func scale(
        connector: ChainOfSight, tower: CLIPVisionModel, with spec: ChainOfSightExtension, imageSize: Int,
        interpolation: PositionInterpolation
    ) throws -> (tower: CLIPVisionModel, connector: ChainOfSight, tokens: Int) {
        let p = tower.config.patchSize
        guard imageSize % p == 0 else {
            throw VisionError("scale-tokens", "image size \(imageSize) is not a multiple of the patch size \(p)")
        }
        let grid = Grid.square(imageSize / p)
        let scaled = try ChainOfSight.inflate(connector, with: spec, grid: grid)
        let newTower = try CLIPVisionModel(config: tower.config)
        try newTower.load(from: InMemoryTensors(NamedTensors(tower.stateDict()), path: "scale-tokens"))
        newTower.interpolation = interpolation
        newTower.featureLayers = tower.featureLayers
        newTower.keepClassToken = tower.keepClassToken
        try newTower.resizePositionEmbeddings(imageSize: imageSize, method: interpolation)
        newTower.isFrozen = tower.isFrozen
        return (newTower, scaled, try scaled.tokenCount(grid: grid))
    }

    /// The output tokens of the inflated connector that must equal the trained connector's, and which
    /// trained token each equals, when the new connector reads the trained one's features upsampled by
    /// nearest neighbour to the new grid (`nearestUpsample`).
    ///
    /// A new scale keeps its source's outputs when it copies the queries without splitting windows
    /// (m = 1, or m = 2: each query twice in the same window) and its window covers the same image
    /// region (window ratio r equal to the grid ratio): attention over a window whose keys are each
    /// repeated k^2 times gives the same weighted average. With m = k^2 the child windows see a part of
    /// the parent's window, so their outputs differ by design.
    /// - Returns: (new token index, trained token index) pairs.
    public static func preservedTokens(trained: ChainOfSightConfig, spec: ChainOfSightExtension, newGrid: Grid) throws
        -> [(new: Int, old: Int)]
    {
        let scaled = try ChainOfSight.inflatedConfig(trained, with: spec, grid: newGrid)
        guard newGrid.height % trained.grid.height == 0, newGrid.width % trained.grid.width == 0,
            newGrid.height / trained.grid.height == newGrid.width / trained.grid.width
        else { return [] }
        let ratio = Double(newGrid.height / trained.grid.height)
        let oldOffsets = trained.scales.reduce(into: [0]) { $0.append($0.last! + $1.queries) }
        var newOffset = 0
        var out: [(Int, Int)] = []
        for (i, e) in spec.newScales.enumerated() {
            if (e.queryRepeat == 1 || e.queryRepeat == 2) && e.windowRatio == ratio {
                for j in 0..<scaled.scales[i].queries { out.append((newOffset + j, oldOffsets[e.source] + j / e.queryRepeat)) }
            }
            newOffset += scaled.scales[i].queries
        }
        return out
    }

    /// Patch tokens on a `grid` repeated `factor` times along both axes (nearest neighbour).
    /// - Parameter x: `[B, H*W, C]`
    /// - Returns: `[B, (H*f)*(W*f), C]`
    public static func nearestUpsample(_ x: Tensor, grid: Grid, factor: Int) throws -> Tensor {
        let (b, c) = (x.shape[0], x.shape[2])
        let map = try x.reshaped([b, grid.height, 1, grid.width, 1, c])
            .expand([b, grid.height, factor, grid.width, factor, c])
        return try map.reshaped([b, grid.height * factor * grid.width * factor, c])
    }
}

/// The `scale-tokens` stage on disk: reads `<output>/pretrain/{vision,connector}` and writes
/// `<output>/scale-tokens/` with the resized tower (`vision/`, an HF directory), the inflated connector
/// (`connector/`), `tokens.json` (extension, image size, grid, visual tokens per image) and
/// `config.yaml`. A `language/` folder of the pre-trained checkpoint is copied unchanged.
public enum ScaleTokensStage {
    /// What the stage wrote.
    public struct Result {
        public var directory: String
        public var tokens: Int
        public var tower: CLIPVisionModel
        public var connector: ChainOfSight
    }

    /// - Parameter input: the pre-trained checkpoint folder (default `<output>/pretrain`).
    @discardableResult
    public static func run(config: TrainingConfig, output: String, input: String? = nil) throws -> Result {
        let from = input ?? output + "/pretrain"
        let tower = try CLIPVisionModel.fromPretrained(directory: from + "/vision").model
        guard let connector = try connectorFromPretrained(directory: from + "/connector").connector as? ChainOfSight else {
            throw ConfigError(
                keyPath: "model.connector.type", source: from + "/connector",
                "compound token scaling needs a Chain-of-Sight connector")
        }
        let spec = try ScaleTokens.extensionPreset(named: config.scaleTokens.extension)
        let rule = try ScaleTokens.interpolation(named: config.scaleTokens.interpolation)
        let scaled = try ScaleTokens.scale(
            connector: connector, tower: tower, with: spec, imageSize: config.scaleTokens.imageSize, interpolation: rule)
        let directory = output + "/scale-tokens"
        let fm = FileManager.default
        try fm.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try config.save(to: directory + "/config.yaml")
        try scaled.tower.save(to: directory + "/vision")
        try scaled.connector.save(to: directory + "/connector")
        if fm.fileExists(atPath: from + "/language") {
            try? fm.removeItem(atPath: directory + "/language")
            try fm.copyItem(atPath: from + "/language", toPath: directory + "/language")
        }
        let info: [String: Any] = [
            "extension": spec.name, "image_size": config.scaleTokens.imageSize,
            "grid": scaled.connector.config.grid.height, "visual_tokens": scaled.tokens,
            "trained_visual_tokens": connector.config.totalQueries, "interpolation": config.scaleTokens.interpolation,
        ]
        try DurableFile.write(
            JSONSerialization.data(withJSONObject: info, options: [.prettyPrinted, .sortedKeys]),
            to: directory + "/tokens.json")
        return Result(directory: directory, tokens: scaled.tokens, tower: scaled.tower, connector: scaled.connector)
    }
}
