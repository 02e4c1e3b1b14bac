import Foundation

/// What `SyntheticWorld.write` put on disk: the files each source reads.
public struct SyntheticFiles: Sendable {
    /// `captions.jsonl`: `{"image": "images/....png", "caption": ...}` (`imageCaptionJSONL`).
    public var captions: URL
    /// `interleaved.jsonl`: OBELICS lists (`interleavedJSONL`).
    public var interleaved: URL
    /// `text.jsonl`: `{"text": ...}` (`textJSONL`).
    public var text: URL
    /// `llava.json`: LLaVA conversations with `<image>` (`llava`), all of an image's questions in one
    /// multi-turn chat.
    public var llava: URL
    /// `questions.json`: LLaVA conversations of one question each (`llava`), the image's questions in
    /// order, one record per question (`singleQuestionTurns`). Fine-tuning reads these: in one
    /// multi-turn chat the earlier answers give later ones away (the colour, shape and position
    /// questions name the same object), and each answer ends at `</s>`, the stop signal.
    public var questions: URL
    /// `shard-0000.tar`: the caption pairs (`key.png` + `key.txt`) and the interleaved documents
    /// (`key.json` + `key.<i>.png`) (`webDataset`).
    public var shard: URL

    /// The files `SyntheticWorld.write` puts in `directory`.
    public init(directory: URL) {
        captions = directory.appendingPathComponent("captions.jsonl")
        interleaved = directory.appendingPathComponent("interleaved.jsonl")
        text = directory.appendingPathComponent("text.jsonl")
        llava = directory.appendingPathComponent("llava.json")
        questions = directory.appendingPathComponent("questions.json")
        shard = directory.appendingPathComponent("shard-0000.tar")
    }
}

extension SyntheticWorld {
    /// The LLaVA conversation of instruction sample `index`: `<image>` in the first human turn.
    public func instructionTurns(_ index: Int, split: Split = .train) -> [[String: String]] {
        let qs = instruction(index, split: split).questions
        var turns: [[String: String]] = []
        for (k, q) in qs.enumerated() {
            turns.append(["from": "human", "value": k == 0 ? "<image>\n" + q.question : q.question])
            turns.append(["from": "gpt", "value": q.answer])
        }
        return turns
    }

    /// The single-question LLaVA conversations of instruction sample `index`: one per question, each
    /// `<image>\n{question}` then the answer.
    public func singleQuestionTurns(_ index: Int, split: Split = .train) -> [[[String: String]]] {
        instruction(index, split: split).questions.map { q in
            [["from": "human", "value": "<image>\n" + q.question], ["from": "gpt", "value": q.answer]]
        }
    }

    static func jsonLine(_ o: Any) throws -> Data {
        var d = try JSONSerialization.data(withJSONObject: o, options: [.sortedKeys, .withoutEscapingSlashes])
        d.append(0x0A)
        return d
    }

    /// Writes the first `count` documents of each kind of `split` in the real formats (PNG images with
    /// stored deflate blocks, JSONL manifests, LLaVA JSON and a WebDataset tar shard) under `directory`.
    /// Document `i` of each file is the in-memory `captionSample(i)`, `interleavedSample(i)`,
    /// `textSample(i)` and `instructionSample(i)`; `questions.json` holds `singleQuestionSample(i, k)`
    /// for each question `k` of sample `i`, in order; the shard holds the caption pairs, then the
    /// interleaved documents.
    /// - Throws: `DatasetError` when a file cannot be written.
    @discardableResult
    public func write(to directory: URL, count: Int, split: Split = .train) throws -> SyntheticFiles {
        let fm = FileManager.default
        let images = directory.appendingPathComponent("images")
        do {
            try fm.createDirectory(at: images, withIntermediateDirectories: true)
            let tag = split.rawValue
            var captions = Data(), interleaved = Data(), text = Data()
            var llava: [[String: Any]] = []
            var questions: [[String: Any]] = []
            var tar = TarWriter()
            var tarInterleaved: [(String, Data)] = []
            for i in 0..<count {
                // Image-caption pair.
                let cs = scene(i, split: split, stream: Stream.caption.rawValue)
                let png = self.png(cs)
                let capName = "\(tag)-caption-\(i).png"
                try png.write(to: images.appendingPathComponent(capName))
                captions += try Self.jsonLine(["image": "images/" + capName, "caption": caption(cs)])
                let key = String(format: "%@-caption-%06d", tag, i)
                tar.add(key + ".png", png)
                tar.add(key + ".txt", Data(caption(cs).utf8))

                // Interleaved document.
                let doc = interleavedSample(i, split: split)
                var texts: [Any] = [], paths: [Any] = []
                var tarTexts: [Any] = [], tarImages: [Any] = []
                let ikey = String(format: "%@-interleaved-%06d", tag, i)
                var members: [(String, Data)] = []
                var k = 0
                for p in doc.parts {
                    switch p {
                    case .text(let t, _):
                        texts.append(t); paths.append(NSNull())
                        tarTexts.append(t); tarImages.append(NSNull())
                    case .image(let r):
                        guard case .bytes(let d, _) = r else { continue }
                        let name = "\(tag)-interleaved-\(i)-\(k).png"
                        try d.write(to: images.appendingPathComponent(name))
                        texts.append(NSNull()); paths.append("images/" + name)
                        tarTexts.append(NSNull()); tarImages.append("\(k).png")
                        members.append(("\(ikey).\(k).png", d))
                        k += 1
                    }
                }
                interleaved += try Self.jsonLine(["texts": texts, "images": paths])
                tarInterleaved.append(
                    (ikey + ".json", try JSONSerialization.data(withJSONObject: ["texts": tarTexts, "images": tarImages])))
                tarInterleaved += members

                // Text-only document.
                if case .text(let t, _)? = textSample(i, split: split).parts.first {
                    text += try Self.jsonLine(["text": t])
                }

                // Instruction sample.
                let qa = instruction(i, split: split).scene
                let qaName = "\(tag)-qa-\(i).png"
                try self.png(qa).write(to: images.appendingPathComponent(qaName))
                llava.append([
                    "id": "\(tag)-qa-\(i)", "image": "images/" + qaName,
                    "conversations": instructionTurns(i, split: split),
                ])
                for (k, turns) in singleQuestionTurns(i, split: split).enumerated() {
                    questions.append(["id": "\(tag)-qa-\(i)-\(k)", "image": "images/" + qaName, "conversations": turns])
                }
            }
            let files = SyntheticFiles(directory: directory)
            try captions.write(to: files.captions)
            try interleaved.write(to: files.interleaved)
            try text.write(to: files.text)
            try JSONSerialization.data(withJSONObject: llava, options: [.sortedKeys, .withoutEscapingSlashes])
                .write(to: files.llava)
            try JSONSerialization.data(withJSONObject: questions, options: [.sortedKeys, .withoutEscapingSlashes])
                .write(to: files.questions)
            for (n, d) in tarInterleaved { tar.add(n, d) }
            try tar.archive.write(to: files.shard)
            return files
        } catch let e as DatasetError {
            throw e
        } catch {
            throw DatasetError("SyntheticWorld.write", "\(directory.path): \(error)")
        }
    }
}

extension SyntheticWorld {
    /// The text of the first `count` documents of each kind, one document per line (images left
    /// out; instruction samples as their USER/ASSISTANT turns): the corpus the world's tokenizer is
    /// trained on.
    public func corpus(count: Int, split: Split = .train) -> [String] {
        var lines: [String] = []
        func text(_ s: Sample) -> String {
            s.parts.compactMap { p -> String? in
                if case .text(let t, _) = p { return t } else { return nil }
            }.joined().replacingOccurrences(of: "\n", with: " ")
        }
        for i in 0..<count {
            lines.append(caption(scene(i, split: split, stream: Stream.caption.rawValue)))
            lines.append(text(interleavedSample(i, split: split)))
            lines.append(text(textSample(i, split: split)))
            lines.append(text(instructionSample(i, split: split)))
        }
        return lines
    }
}
