import Foundation
import SightlineTestSupport
import Testing
#if canImport(FoundationXML)
    import FoundationXML
#endif
import Training

@Suite struct MetricsTests {
    @Test func crc32cKnownVectors() {
        // RFC 3720 (iSCSI) B.4 test vectors and the classic check value.
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
        #expect(CRC32C.checksum([UInt8](repeating: 0, count: 32)) == 0x8A91_36AA)
        #expect(CRC32C.checksum([UInt8](repeating: 0xFF, count: 32)) == 0x62A8_AB43)
        #expect(CRC32C.checksum((0..<32).map { UInt8($0) }) == 0x46DD_794E)
        #expect(CRC32C.checksum((0..<32).map { UInt8(31 - $0) }) == 0x113F_DB5C)
        #expect(CRC32C.checksum([UInt8]()) == 0)
        // Masking: rotate right by 15, add 0xa282ead8.
        let c = CRC32C.checksum(Array("123456789".utf8))
        #expect(CRC32C.masked(Array("123456789".utf8)) == ((c >> 15) | (c << 17)) &+ 0xA282_EAD8)
    }

    @Test func recordFramingHasLengthAndChecksums() {
        let payload: [UInt8] = Array("hello".utf8)
        let f = TensorBoardWriter.frame(payload)
        #expect(f.count == 8 + 4 + 5 + 4)
        #expect(Array(f[0..<8]) == [5, 0, 0, 0, 0, 0, 0, 0])
        let lengthCRC = UInt32(f[8]) | UInt32(f[9]) << 8 | UInt32(f[10]) << 16 | UInt32(f[11]) << 24
        #expect(lengthCRC == CRC32C.masked(Array(f[0..<8])))
        #expect(Array(f[12..<17]) == payload)
        let dataCRC = UInt32(f[17]) | UInt32(f[18]) << 8 | UInt32(f[19]) << 16 | UInt32(f[20]) << 24
        #expect(dataCRC == CRC32C.masked(payload))
    }

    /// Writes a stage's metrics through `RunMetrics`.
    func writeRun(_ dir: String) throws -> RunMetrics {
        var lines: [String] = []
        let m = try RunMetrics(directory: dir, settings: MetricsSection(), write: { lines.append($0) })
        m.begin(stage: "pretrain", totalSteps: 5)
        for step in 1...5 {
            let s = Double(step)
            try m.record(
                stage: "pretrain", step: step,
                scalars: ["loss": 3 / s + 0.123456789, "lr": 1e-4 * s, "grad_norm": 0.5 + s, "z_loss": 1e-5 * s])
        }
        try m.record(stage: "pretrain", step: 5, scalars: ["eval_loss": 1.25, "eval_perplexity": 3.49])
        m.begin(stage: "finetune", totalSteps: 2)
        try m.record(stage: "finetune", step: 1, scalars: ["loss": 0.7, "lr": 2e-4])
        try m.finish(stage: "finetune")
        #expect(lines.count == 6)  // plain lines (not a terminal): one per record with a loss
        #expect(lines[0].hasPrefix("pretrain 1/5 | loss 3.1235 | z 1.00e-05 | lr 1.00e-04 | gnorm 1.500"))
        return m
    }

    @Test func jsonlPlotsAndProgress() throws {
        let dir = try scratchDirectory("metrics")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let run = try writeRun(dir)
        // Plots are redrawn atomically (temporary file + rename): redraws leave no temporary behind.
        try run.drawPlots()
        try run.drawPlots()
        let names = try FileManager.default.contentsOfDirectory(atPath: dir)
        #expect(names.contains("loss.svg") && names.contains("lr.svg") && !names.contains { $0.hasPrefix(".") }, "\(names)")
        let records = try JSONLMetricsSink.read(path: dir + "/metrics.jsonl")
        #expect(records.count == 7)
        #expect(records[0].stage == "pretrain" && records[0].step == 1)
        #expect(records[0].scalars["loss"] == 3 + 0.123456789)
        #expect(records[5].scalars["eval_loss"] == 1.25)
        let loss = try String(contentsOfFile: dir + "/loss.svg", encoding: .utf8)
        #expect(loss.hasPrefix("<svg") && loss.contains("pretrain train") && loss.contains("pretrain eval"))
        #expect(loss.contains("<polyline"))
        let lr = try String(contentsOfFile: dir + "/lr.svg", encoding: .utf8)
        #expect(lr.contains("finetune"))
        // The SVG is well-formed XML.
        #expect(XMLParser(data: Data(loss.utf8)).parse())
    }

    @Test func progressLineFormat() {
        let line = ProgressLine.format(
            stage: "clip", step: 50, total: 200, scalars: ["loss": 1.5, "tokens_per_s": 1234.4, "images_per_s": 9.25],
            elapsed: 10, stepsDone: 50, peakRSSBytes: 512 * 1_048_576)
        #expect(line == "clip 50/200 | loss 1.5000 | tok/s 1234 | img/s 9.2 | eta 30s | rss 512MiB")
        #expect(peakResidentBytes() ?? 0 > 0)
        // The trainer's long names read the same.
        #expect(
            ProgressLine.format(
                stage: "p", step: 1, total: 2, scalars: ["learning_rate": 1e-3, "tokens_per_second": 10],
                elapsed: nil, stepsDone: 0, peakRSSBytes: nil) == "p 1/2 | lr 1.00e-03 | tok/s 10")
        var text = ""
        let p = ProgressLine(stage: "s", totalSteps: 3, mode: "terminal", write: { text += $0 })
        p.report(step: 1, scalars: ["loss": 2])
        p.report(step: 2, scalars: ["loss": 1])
        p.finish()
        #expect(text.hasPrefix("\rs 1/3 | loss 2.0000"))
        #expect(text.contains("\rs 2/3 | loss 1.0000"))
        #expect(text.hasSuffix("\n") && text.filter { $0 == "\n" }.count == 1)
    }

    @Test(Python.requires("tensorboard.backend.event_processing.event_accumulator"))
    func tensorboardReadsTheSameScalarsAsJSONL() throws {
        let dir = try scratchDirectory("tensorboard")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        _ = try writeRun(dir)
        let script = """
            import json, sys, os
            from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
            out = {}
            root = sys.argv[1]
            for stage in sorted(os.listdir(root)):
                acc = EventAccumulator(os.path.join(root, stage), size_guidance={'scalars': 0})
                acc.Reload()
                for tag in acc.Tags()['scalars']:
                    for e in acc.Scalars(tag):
                        out.setdefault(stage, []).append([e.step, tag, e.value])
            print(json.dumps(out))
            """
        let run = try Python.run(["-c", script, dir + "/tensorboard"])
        try #require(run.status == 0, "python failed: \(run.output)")
        let text = run.stdout
        let object = try JSONSerialization.jsonObject(with: Data(text.utf8)) as! [String: [[Any]]]
        var fromTB: [String] = []
        for (stage, rows) in object {
            for r in rows {
                fromTB.append("\(stage) \(r[0] as! Int) \(r[1] as! String) \(Float((r[2] as! NSNumber).doubleValue))")
            }
        }
        var fromJSONL: [String] = []
        for r in try JSONLMetricsSink.read(path: dir + "/metrics.jsonl") {
            for (k, v) in r.scalars { fromJSONL.append("\(r.stage) \(r.step) \(k) \(Float(v))") }
        }
        #expect(fromTB.count == 24)
        #expect(fromTB.sorted() == fromJSONL.sorted())
    }
}
