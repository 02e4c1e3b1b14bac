import Foundation
import Tensor

/// A built-in world of coloured shapes that needs no download: scenes drawn deterministically from a
/// seed, rendered as RGB images, described by captions, questions with answers, interleaved multi-image
/// documents and text-only documents from one small grammar, with a held-out split.
///
/// Layout: the image (default 224 x 224) is divided into a 4 x 4 grid of cells; each object fills one
/// cell at most. Positions are named by the cell's row ("top", "upper middle", "lower middle",
/// "bottom") and column ("left", "center left", "center right", "right"). Sizes: `small` is at most one
/// patch of the 16 x 16 patch grid (`patchSize - 2` pixels, placed inside one patch), `medium` is two
/// patches, `large` three. No two objects of a scene share both colour and shape, so every object can
/// be named by its colour and shape.
public struct SyntheticWorld: Sendable {
    public enum Shape: String, CaseIterable, Sendable { case square, circle, triangle, cross }
    public enum Colour: String, CaseIterable, Sendable {
        case red, green, blue, yellow, purple, orange, white

        /// The colour's RGB bytes.
        public var rgb: (UInt8, UInt8, UInt8) {
            switch self {
            case .red: return (220, 30, 30)
            case .green: return (30, 190, 60)
            case .blue: return (40, 80, 230)
            case .yellow: return (240, 220, 40)
            case .purple: return (150, 50, 200)
            case .orange: return (250, 140, 20)
            case .white: return (245, 245, 245)
            }
        }
    }
    public enum Size: String, CaseIterable, Sendable { case small, medium, large }
    public enum Split: String, Sendable { case train, heldOut }

    /// The background's RGB bytes.
    public static let background: (UInt8, UInt8, UInt8) = (40, 40, 40)
    public static let rowNames = ["top", "upper middle", "lower middle", "bottom"]
    public static let columnNames = ["left", "center left", "center right", "right"]
    public static let countWords = ["zero", "one", "two", "three", "four", "five", "six"]
    public static let grid = 4

    /// One object: what it is, its cell, and the pixel box it is drawn in.
    public struct Object: Equatable, Sendable {
        public var shape: Shape
        public var colour: Colour
        public var size: Size
        public var row: Int
        public var column: Int
        /// Top-left pixel of the object's box.
        public var x: Int
        public var y: Int
        /// Side of the object's box in pixels.
        public var pixels: Int

        /// "small red circle".
        public var phrase: String { "\(size.rawValue) \(colour.rawValue) \(shape.rawValue)" }
        /// "top left".
        public var place: String { "\(SyntheticWorld.rowNames[row]) \(SyntheticWorld.columnNames[column])" }
    }

    /// A scene: its objects in drawing order.
    public struct Scene: Equatable, Sendable {
        public var objects: [Object]
        /// A canonical description of the scene (objects sorted by cell); equal scenes have equal keys.
        public var key: String {
            objects.sorted { ($0.row, $0.column) < ($1.row, $1.column) }
                .map { "\($0.row)\($0.column)\($0.phrase)" }.joined(separator: ";")
        }
    }

    /// A question about a scene and its answer.
    public struct Question: Equatable, Sendable {
        public enum Kind: String, CaseIterable, Sendable { case colour, shape, position, count, relation }
        public var kind: Kind
        public var question: String
        public var answer: String
    }

    public let seed: UInt64
    public let imageSize: Int
    public let patchSize: Int
    /// One scene in `heldOutEvery` (by a hash of its content) belongs to the held-out split.
    public let heldOutEvery: Int

    /// - Throws: `DatasetError` when the image is not a whole number of patches, or a cell cannot hold
    ///   a large object.
    public init(seed: UInt64 = 0, imageSize: Int = 224, patchSize: Int = 14, heldOutEvery: Int = 10) throws {
        guard patchSize >= 4, imageSize % (patchSize * Self.grid) == 0, imageSize / Self.grid >= 3 * patchSize,
            heldOutEvery >= 2
        else {
            throw DatasetError(
                "SyntheticWorld",
                "image \(imageSize) must be a multiple of \(Self.grid) cells of whole patches (patch \(patchSize)) and hold 3 patches per cell; held out every \(heldOutEvery)"
            )
        }
        self.seed = seed
        self.imageSize = imageSize
        self.patchSize = patchSize
        self.heldOutEvery = heldOutEvery
    }

    /// Pixel side of each size: small fits one patch with a one-pixel margin.
    public func pixels(of size: Size) -> Int {
        switch size {
        case .small: return patchSize - 2
        case .medium: return 2 * patchSize
        case .large: return 3 * patchSize
        }
    }

    static func fnv(_ s: String) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in s.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        return h
    }

    /// The split a scene belongs to, from a hash of its content (so the splits never share a scene).
    public func split(of scene: Scene) -> Split {
        Self.fnv(scene.key) % UInt64(heldOutEvery) == 0 ? .heldOut : .train
    }

    func rng(_ stream: UInt64, _ index: Int, _ attempt: Int) -> SplitMix64 {
        var r = SplitMix64(seed: seed ^ (stream &* 0x9E37_79B9_7F4A_7C15))
        let a = r.next()
        var q = SplitMix64(seed: a ^ (UInt64(index) &* 0xBF58_476D_1CE4_E5B9) ^ (UInt64(attempt) << 48))
        _ = q.next()
        return q
    }

    func drawScene(_ g: inout SplitMix64, maxObjects: Int = 5) -> Scene {
        let n = 1 + g.next(below: maxObjects)
        var cells = Array(0..<(Self.grid * Self.grid))
        for i in stride(from: cells.count - 1, to: 0, by: -1) { cells.swapAt(i, g.next(below: i + 1)) }
        var used = Set<String>()
        var objects: [Object] = []
        let cell = imageSize / Self.grid
        for k in 0..<n {
            var shape: Shape, colour: Colour
            repeat {
                shape = Shape.allCases[g.next(below: Shape.allCases.count)]
                colour = Colour.allCases[g.next(below: Colour.allCases.count)]
            } while used.contains("\(colour)\(shape)")
            used.insert("\(colour)\(shape)")
            let size = Size.allCases[g.next(below: Size.allCases.count)]
            let (row, column) = (cells[k] / Self.grid, cells[k] % Self.grid)
            let p = pixels(of: size)
            let x: Int, y: Int
            if size == .small {
                // Inside one patch of the cell, one pixel in from its edges.
                let patches = cell / patchSize
                x = column * cell + g.next(below: patches) * patchSize + 1
                y = row * cell + g.next(below: patches) * patchSize + 1
            } else {
                x = column * cell + g.next(below: cell - p + 1)
                y = row * cell + g.next(below: cell - p + 1)
            }
            objects.append(
                Object(shape: shape, colour: colour, size: size, row: row, column: column, x: x, y: y, pixels: p))
        }
        return Scene(objects: objects)
    }

    /// Scene `index` of a split (for each index, the first draw that falls in the split).
    /// - Parameter stream: separates independent families of scenes (captions, documents, ...).
    public func scene(_ index: Int, split: Split = .train, stream: UInt64 = 0) -> Scene {
        var attempt = 0
        while true {
            var g = rng(stream &+ (split == .train ? 0 : 0x5EED), index, attempt)
            let s = drawScene(&g)
            if self.split(of: s) == split { return s }
            attempt += 1
        }
    }

    /// Whether pixel (`px`, `py`) of an object's box is inside its shape.
    public static func covers(_ o: Object, _ px: Int, _ py: Int) -> Bool {
        let (u, v) = (px - o.x, py - o.y)
        let s = o.pixels
        guard u >= 0, v >= 0, u < s, v < s else { return false }
        switch o.shape {
        case .square: return true
        case .circle:
            let d = Double(s) / 2
            let (dx, dy) = (Double(u) + 0.5 - d, Double(v) + 0.5 - d)
            return dx * dx + dy * dy <= d * d
        case .triangle:
            // Apex at the top centre, base along the bottom row.
            let half = Double(s) / 2 * Double(v + 1) / Double(s)
            return abs(Double(u) + 0.5 - Double(s) / 2) <= half
        case .cross:
            let t = max(1, s / 3)
            let lo = (s - t) / 2
            return (u >= lo && u < lo + t) || (v >= lo && v < lo + t)
        }
    }

    /// The scene as RGB bytes, row-major `[H, W, 3]`.
    public func renderBytes(_ scene: Scene) -> [UInt8] {
        let n = imageSize
        var px = [UInt8](repeating: 0, count: n * n * 3)
        let bg = Self.background
        for p in 0..<(n * n) { px[3 * p] = bg.0; px[3 * p + 1] = bg.1; px[3 * p + 2] = bg.2 }
        for o in scene.objects {
            let c = o.colour.rgb
            for y in o.y..<(o.y + o.pixels) {
                for x in o.x..<(o.x + o.pixels) where Self.covers(o, x, y) {
                    let p = 3 * (y * n + x)
                    px[p] = c.0; px[p + 1] = c.1; px[p + 2] = c.2
                }
            }
        }
        return px
    }

    /// The scene rendered.
    /// - Returns: `[3, H, W]` in [0, 1] (each value a multiple of 1/255, so PNG round trips are exact).
    public func render(_ scene: Scene) -> Tensor {
        let b = renderBytes(scene)
        let hw = imageSize * imageSize
        var out = [Float](repeating: 0, count: 3 * hw)
        for p in 0..<hw { for c in 0..<3 { out[c * hw + p] = Float(b[3 * p + c]) / 255 } }
        return try! Tensor(shape: [3, imageSize, imageSize], scalars: out)
    }

    /// The scene as a PNG file's bytes.
    public func png(_ scene: Scene) -> Data { try! PipelineImages.encodePNG(render(scene)) }

    // MARK: Text

    /// "a small red circle at the top left and a large blue square at the bottom right."
    public func caption(_ scene: Scene) -> String {
        let items = scene.objects.map { "a \($0.phrase) at the \($0.place)" }
        let list: String
        if items.count == 1 {
            list = items[0]
        } else {
            list = items.dropLast().joined(separator: ", ") + " and " + items.last!
        }
        return "\(list)."
    }

    /// Sentences relating the first object to the others and counting them.
    public func description(_ scene: Scene) -> String {
        var s = "there \(scene.objects.count == 1 ? "is" : "are") \(Self.countWords[scene.objects.count]) "
            + "\(scene.objects.count == 1 ? "object" : "objects"). " + caption(scene)
        if let a = scene.objects.first {
            for b in scene.objects.dropFirst() {
                s += " the \(a.colour.rawValue) \(a.shape.rawValue) is \(Self.relation(a, b)) the "
                    + "\(b.colour.rawValue) \(b.shape.rawValue)."
            }
        }
        return s
    }

    /// "left of", "right of", "above" or "below" (columns first).
    public static func relation(_ a: Object, _ b: Object) -> String {
        if a.column != b.column { return a.column < b.column ? "left of" : "right of" }
        return a.row < b.row ? "above" : "below"
    }

    /// One question of each kind about the scene, drawn from `g`.
    public func questions(_ scene: Scene, _ g: inout SplitMix64) -> [Question] {
        let objs = scene.objects
        let o = objs[g.next(below: objs.count)]
        var out: [Question] = [
            Question(kind: .colour, question: "what colour is the \(o.shape.rawValue) at the \(o.place)?",
                answer: o.colour.rawValue),
            Question(kind: .shape, question: "what shape is at the \(o.place)?", answer: o.shape.rawValue),
            Question(kind: .position, question: "where is the \(o.colour.rawValue) \(o.shape.rawValue)?",
                answer: "at the \(o.place)"),
        ]
        let c = Colour.allCases[g.next(below: Colour.allCases.count)]
        let n = objs.filter { $0.colour == c }.count
        out.append(
            Question(kind: .count, question: "how many \(c.rawValue) objects are there?",
                answer: Self.countWords[n]))
        if objs.count >= 2 {
            let i = g.next(below: objs.count)
            var j = g.next(below: objs.count - 1)
            if j >= i { j += 1 }
            let (a, b) = (objs[i], objs[j])
            let asked = ["left of", "right of", "above", "below"][g.next(below: 4)]
            let truth: Bool
            switch asked {
            case "left of": truth = a.column < b.column
            case "right of": truth = a.column > b.column
            case "above": truth = a.row < b.row
            default: truth = a.row > b.row
            }
            out.append(
                Question(kind: .relation,
                    question: "is the \(a.colour.rawValue) \(a.shape.rawValue) \(asked) the \(b.colour.rawValue) \(b.shape.rawValue)?",
                    answer: truth ? "yes" : "no"))
        } else {
            out.append(
                Question(kind: .count, question: "how many objects are there?", answer: Self.countWords[1]))
        }
        return out
    }

    // MARK: Samples

    /// The stream numbers of the four kinds of documents.
    enum Stream: UInt64 { case caption = 1, interleaved = 2, text = 3, instruction = 4 }

    func ref(_ scene: Scene, _ name: String) -> ImageReference { .bytes(png(scene), name: name + ".png") }

    /// Image-caption pair `index`: the image, then its caption (supervised).
    public func captionSample(_ index: Int, split: Split = .train) -> Sample {
        let s = scene(index, split: split, stream: Stream.caption.rawValue)
        let name = "synthetic-\(split.rawValue)-caption-\(index)"
        return Sample(name: name, parts: [.image(ref(s, name)), .text(caption(s), supervised: true)])
    }

    /// The scenes of interleaved document `index` (two to four).
    public func interleavedScenes(_ index: Int, split: Split = .train) -> [Scene] {
        var g = rng(Stream.interleaved.rawValue &+ 100, index, 0)
        let n = 2 + g.next(below: 3)
        return (0..<n).map { scene(index * 8 + $0, split: split, stream: Stream.interleaved.rawValue) }
    }

    /// Interleaved document `index`: two to four images, each introduced, followed by its description,
    /// and compared with the one before.
    public func interleavedSample(_ index: Int, split: Split = .train) -> Sample {
        let scenes = interleavedScenes(index, split: split)
        let name = "synthetic-\(split.rawValue)-interleaved-\(index)"
        var parts: [Sample.Part] = [.text("a set of \(Self.countWords[scenes.count]) pictures.", supervised: true)]
        for (k, s) in scenes.enumerated() {
            parts.append(.image(ref(s, "\(name)-\(k)")))
            var t = " " + description(s)
            if k > 0 {
                let prev = scenes[k - 1].objects.count
                let cmp = s.objects.count == prev ? "as many objects as" : (s.objects.count > prev ? "more objects than" : "fewer objects than")
                t += " this picture has \(cmp) the one before."
            }
            parts.append(.text(t, supervised: true))
        }
        return Sample(name: name, parts: parts)
    }

    /// Text-only document `index`: descriptions of three to six scenes, with no images.
    public func textSample(_ index: Int, split: Split = .train) -> Sample {
        var g = rng(Stream.text.rawValue &+ 100, index, 0)
        let n = 3 + g.next(below: 4)
        let text = (0..<n).map { k in
            "imagine a picture. " + description(scene(index * 8 + k, split: split, stream: Stream.text.rawValue))
        }.joined(separator: " ")
        return Sample(name: "synthetic-\(split.rawValue)-text-\(index)", parts: [.text(text, supervised: true)])
    }

    /// The scene and questions of instruction sample `index`.
    public func instruction(_ index: Int, split: Split = .train) -> (scene: Scene, questions: [Question]) {
        let s = scene(index, split: split, stream: Stream.instruction.rawValue)
        var g = rng(Stream.instruction.rawValue &+ 100, index, 0)
        return (s, questions(s, &g))
    }

    /// Instruction sample `index` in LLaVA's form: the image in the first user turn, then one turn per
    /// question; loss only on the answers.
    public func instructionSample(_ index: Int, split: Split = .train) -> Sample {
        let (s, qs) = instruction(index, split: split)
        let name = "synthetic-\(split.rawValue)-qa-\(index)"
        var parts: [Sample.Part] = []
        // The same parts as LLaVA's reader makes of `instructionTurns` (the image, then "\n" + question).
        for (k, q) in qs.enumerated() {
            parts.append(.text("USER: ", supervised: false))
            if k == 0 { parts.append(.image(ref(s, name))) }
            parts.append(.text(k == 0 ? "\n" + q.question : q.question, supervised: false))
            parts.append(.text("\n", supervised: false))
            parts.append(.text("ASSISTANT: ", supervised: false))
            parts.append(.text(q.answer, supervised: true))
            parts.append(.text("\n", supervised: true))
        }
        return Sample(name: name, parts: parts)
    }

    /// Question `question` of instruction sample `index` on its own, in LLaVA's form (what the reader
    /// makes of `singleQuestionTurns(index)[question]`): `USER: `, the image, the question,
    /// `ASSISTANT: `, then the supervised answer.
    public func singleQuestionSample(_ index: Int, question: Int, split: Split = .train) -> Sample {
        let (s, qs) = instruction(index, split: split)
        let q = qs[question]
        let name = "synthetic-\(split.rawValue)-qa-\(index)"
        return Sample(
            name: "\(name)-\(question)",
            parts: [
                .text("USER: ", supervised: false), .image(ref(s, name)), .text("\n" + q.question, supervised: false),
                .text("\n", supervised: false), .text("ASSISTANT: ", supervised: false),
                .text(q.answer, supervised: true), .text("\n", supervised: true),
            ])
    }

    /// Every word and punctuation mark the grammar uses (for word-level tokenizers in tests).
    public static var vocabulary: [String] {
        var w = Set<String>()
        let text = [
            "a set of pictures . , ? at the and there is are object objects imagine picture",
            "left right of above below this has as many more fewer than one before what colour shape",
            "where how yes no top upper lower middle bottom center USER: ASSISTANT:",
        ].joined(separator: " ")
        for t in text.split(separator: " ") { w.insert(String(t)) }
        for s in Shape.allCases { w.insert(s.rawValue) }
        for c in Colour.allCases { w.insert(c.rawValue) }
        for s in Size.allCases { w.insert(s.rawValue) }
        for c in countWords { w.insert(c) }
        return w.sorted()
    }

    /// Splits world text into words and punctuation marks.
    public static func words(_ text: String) -> [String] {
        var out: [String] = []
        var cur = ""
        for ch in text {
            if ch == " " || ch == "\n" {
                if !cur.isEmpty { out.append(cur); cur = "" }
            } else if ch == "." || ch == "," || ch == "?" {
                if !cur.isEmpty { out.append(cur); cur = "" }
                out.append(String(ch))
            } else {
                cur.append(ch)
            }
        }
        if !cur.isEmpty { out.append(cur) }
        return out
    }
}
