import Checkpoint
import Foundation
import SightlineTestSupport
import Testing
import Training

/// `mpirun` on the PATH (Open MPI's launcher), or nil.
private let mpirun: String? = {
    let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
    return path.split(separator: ":").map { "\($0)/mpirun" }.first { FileManager.default.isExecutableFile(atPath: $0) }
}()

private let trainerExecutable = builtExecutable("trainer", override: "SIGHTLINE_TRAINER_BIN")

/// A seconds-long pre-training run: 64-pixel images of 4-pixel patches (the `pt32` grid), a two-layer
/// 32-wide tower, a one-layer 32-wide decoder, 128-token rows; 3 steps of global batch 4, a checkpoint
/// at step 3; data parallelism with ZeRO-1 and small buckets, set in the file.
private func tinyRunYAML(output: String) -> String {
    """
    run:
      output: \(output)
    metrics:
      progress: off
      tensorboard: false
      plots: false
    data:
      synthetic:
        image_size: 64
        patch_size: 4
      sequence_length: 128
      max_images: 2
    model:
      vision:
        image_size: 64
        patch_size: 4
        hidden_size: 32
        num_hidden_layers: 2
        num_attention_heads: 2
        intermediate_size: 64
      language:
        hidden_size: 32
        intermediate_size: 64
        num_hidden_layers: 1
        num_attention_heads: 2
        num_key_value_heads: 1
        max_position_embeddings: 256
      connector:
        head_dim: 16
    pretrain:
      optimization:
        steps: 3
        global_batch: 4
        micro_batch: 2
        warmup_steps: 1
      cadence:
        log_every: 1
        checkpoint_every: 3
    data_parallel:
      bucket_mb: 0.25
      overlap: true
      zero_stage: 1
    """
}

@Suite(.enabled(if: mpirun != nil && trainerExecutable != nil, "needs mpirun (apt: openmpi-bin libopenmpi-dev) and the built trainer"))
struct TrainerDataParallelTests {
    /// `mpirun -np 2 trainer pretrain --config run.yaml` works unchanged: both ranks train (each
    /// micro-batch 2 of the global 4), ZeRO-1 comes from the file, rank 0 alone writes the stage's
    /// files, and the one checkpoint loads (the sharded moments gathered: every trainable tensor has
    /// both, as a single process writes them).
    @Test func mpirunTrainerPretrainWithZeROFromTheConfig() throws {
        let dir = ScratchDirectory()
        let run = dir.url.appendingPathComponent("run").path
        let config = try dir.write("run.yaml", tinyRunYAML(output: run))
        // The file is a valid run configuration with the data-parallel settings in it.
        let parsed = try TrainingConfig.load(path: config.path)
        #expect(parsed.dataParallel == DataParallelConfig(bucketMegabytes: 0.25, overlap: true, zeroStage: 1))
        let r = try runProcess(
            mpirun!,
            [
                "--allow-run-as-root", "--oversubscribe", "-np", "2", "--bind-to", "none",
                "--mca", "btl", "self,vader", "--mca", "btl_vader_single_copy_mechanism", "none",
                trainerExecutable!, "pretrain", "--config", config.path, "--threads", "1",
            ], in: dir.url, timeout: 300)
        #expect(!r.timedOut && !r.signaled)
        #expect(r.status == 0, "status \(r.status): \(r.stderr.suffix(3000))")
        // Two ranks, with the settings of the file.
        #expect(r.stderr.contains("pretrain: data parallel over 2 ranks: 0.25 MiB buckets, overlap off, ZeRO-1"), "\(r.stderr.suffix(3000))")
        // One report line: rank 1 trains but prints and writes nothing.
        let reports = r.stdout.split(separator: "\n").filter { $0.hasPrefix("pretrain:") }
        #expect(reports.count == 1, "\(r.stdout)")
        #expect(reports.first?.contains("3 steps") == true, "\(r.stdout)")
        let fm = FileManager.default
        let stage = run + "/pretrain"
        for part in ["config.yaml", "stage.json", "vision/config.json", "connector", "language/config.json"] {
            #expect(fm.fileExists(atPath: stage + "/" + part), "missing \(part)")
        }
        let files = try fm.contentsOfDirectory(atPath: stage + "/checkpoints").sorted()
        let checkpoints = files.filter { CheckpointDirectory.step(ofFileName: $0) != nil }
        #expect(checkpoints.count == 1 && files.count == 2, "\(files)")  // the step-3 file and `latest`
        // The checkpoint loads: the model strictly, and the optimizer's moments of every trainable tensor.
        let source = try CheckpointModel(checkpoint: stage)
        #expect(source.step == 3)
        let saved = try TrainingCheckpoint.read(from: source.path)
        #expect(saved.optimizer.step == 3)
        let trainable = source.model.trainableParameters().map(\.0)
        #expect(!trainable.isEmpty)
        for name in trainable {
            let slots = saved.optimizer.parameters[name]
            #expect(slots?.names.count == 2, "\(name): \(slots?.names ?? [])")
        }
        #expect(Set(saved.optimizer.parameters.keys) == Set(trainable))
        // The stage's report: rank 0's losses, one per step.
        let report = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: stage + "/stage.json")))
        let losses = try #require((report as? [String: Any])?["losses"] as? [[Double]])
        #expect(losses.map { Int($0[0]) } == [1, 2, 3] && losses.allSatisfy { $0[1].isFinite }, "\(losses)")
    }
}

@Suite(.enabled(if: trainerExecutable != nil, "needs the built trainer"))
struct TrainerSingleProcessTests {
    /// A process not started by a launcher needs no MPI: the trainer does not link `libmpi`, and a run
    /// whose config asks for ZeRO-1 trains as one process even when the library named by
    /// `SIGHTLINE_LIBMPI` does not exist (it is never opened).
    @Test func singleProcessNeedsNoMPI() throws {
        let ldd = try runProcess("/usr/bin/ldd", [trainerExecutable!], timeout: 60)
        #expect(ldd.status == 0, "\(ldd.stderr)")
        #expect(ldd.stdout.contains("libc.so") && !ldd.stdout.contains("libmpi"), "\(ldd.stdout)")
        let dir = ScratchDirectory()
        let run = dir.url.appendingPathComponent("run").path
        let config = try dir.write("run.yaml", tinyRunYAML(output: run))
        let r = try runProcess(
            trainerExecutable!, ["pretrain", "--config", config.path, "--threads", "1", "--set", "pretrain.optimization.steps=1",
                "--set", "pretrain.cadence.checkpoint_every=1"],
            in: dir.url, timeout: 300, environment: ["SIGHTLINE_LIBMPI": dir.url.appendingPathComponent("no-libmpi.so").path])
        #expect(r.status == 0, "status \(r.status): \(r.stderr.suffix(3000))")
        #expect(r.stdout.contains("pretrain: 1 steps"), "\(r.stdout)")
        #expect(try CheckpointModel(checkpoint: run + "/pretrain").step == 1)
    }

    /// `trainer pretrain` evaluates on the world's held-out split every `eval_every` steps and writes
    /// the run folder's metrics: every step's loss and each evaluation's loss and perplexity.
    @Test func pretrainEvaluatesOnHeldOutDataAndWritesTheRunMetrics() throws {
        let dir = ScratchDirectory()
        let run = dir.url.appendingPathComponent("run").path
        let config = try dir.write("run.yaml", tinyRunYAML(output: run))
        let r = try runProcess(
            trainerExecutable!, ["pretrain", "--config", config.path, "--threads", "1", "--set", "pretrain.optimization.steps=2",
                "--set", "pretrain.cadence.eval_every=1", "--set", "pretrain.cadence.eval_batches=1"],
            in: dir.url, timeout: 300)
        #expect(r.status == 0, "status \(r.status): \(r.stderr.suffix(3000))")
        let records = try JSONLMetricsSink.read(path: run + "/metrics.jsonl").filter { $0.stage == "pretrain" }
        #expect(records.filter { $0.scalars["loss"] != nil }.map(\.step) == [1, 2])
        let evals = records.filter { $0.scalars["eval_loss"] != nil }
        #expect(evals.map(\.step) == [1, 2])
        for e in evals {
            let loss = e.scalars["eval_loss"]!, ppl = e.scalars["eval_perplexity"] ?? .nan
            #expect(loss.isFinite && loss > 0 && abs(ppl - exp(loss)) <= 1e-6 * ppl, "step \(e.step): \(e.scalars)")
        }
    }
}
