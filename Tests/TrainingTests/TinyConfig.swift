import Foundation
import Training

/// A tiny run of the synthetic world: 64-pixel images, 4-pixel patches (a 16 x 16 grid, the grid of
/// the `pt32` Chain-of-Sight layout), a two-layer 32-wide tower and text tower.
func tinyConfig(output: String) throws -> TrainingConfig {
    try TrainingConfig.defaults.applying(overrides: [
        "run.output=\(output)", "metrics.progress=off",
        "data.synthetic.image_size=64", "data.synthetic.patch_size=4",
        "model.vision.image_size=64", "model.vision.patch_size=4", "model.vision.hidden_size=32",
        "model.vision.num_hidden_layers=2", "model.vision.num_attention_heads=2",
        "model.vision.intermediate_size=64",
        "clip.text.hidden_size=32", "clip.text.num_hidden_layers=1", "clip.text.num_attention_heads=2",
        "clip.text.intermediate_size=64", "clip.projection_dim=32",
        "clip.optimization.steps=40", "clip.optimization.global_batch=16", "clip.optimization.micro_batch=16",
        "clip.optimization.lr=0.002", "clip.optimization.warmup_steps=4", "clip.optimization.weight_decay=0.0",
        "clip.cadence.log_every=5", "clip.cadence.eval_every=40", "clip.cadence.eval_batches=2",
        "scale-tokens.image_size=128",
    ])
}
