import Foundation
import Language

/// The tokenizer a model was trained with, as an export writes it next to the weights.
public enum ModelTokenizer: Sendable, Equatable {
    /// The synthetic world's word vocabulary (`SyntheticVocabulary`; the stages' tokenizer when
    /// `data.tokenizer` is ""), written as a HF `WordLevel` `tokenizer.json`.
    case syntheticWords
    /// A HF `tokenizer.json` (byte-level or sentencepiece-style BPE, or WordLevel), copied as it is.
    case file(String)

    /// The tokenizer of a run folder's stage: `tokenizer.json` in one of the folders (an imported
    /// model's), else the nearest stage's `config.yaml` (`data.tokenizer`, "" for the synthetic words), else the synthetic
    /// words when the model has exactly their vocabulary size; nil when nothing says.
    /// - Parameters:
    ///   - stages: stage folders to look in, nearest first.
    ///   - vocabularySize: the model's embedding rows.
    public static func detect(stages: [String], vocabularySize: Int) -> ModelTokenizer? {
        let fm = FileManager.default
        for stage in stages where fm.fileExists(atPath: stage + "/" + TokenizerFiles.tokenizer) {
            return .file(stage + "/" + TokenizerFiles.tokenizer)
        }
        for stage in stages {
            let yaml = stage + "/config.yaml"
            if fm.fileExists(atPath: yaml), let config = try? TrainingConfig.load(path: yaml) {
                if !config.data.tokenizer.isEmpty { return .file(config.data.tokenizer) }
                return vocabularySize == SyntheticVocabulary().count ? .syntheticWords : nil
            }
        }
        return vocabularySize == SyntheticVocabulary().count ? .syntheticWords : nil
    }
}

/// File names of a HF tokenizer.
public enum TokenizerFiles {
    public static let tokenizer = "tokenizer.json"
    public static let config = "tokenizer_config.json"
    public static let specialTokensMap = "special_tokens_map.json"
}

extension SyntheticVocabulary {
    /// The vocabulary as a HF `tokenizer.json` that encodes world text exactly as `encode` does: a
    /// `WordLevel` model over `words` (`<unk>` for anything else), words split at spaces and newlines
    /// with `.`, `,`, `?` on their own, the five specials as added special tokens (`<image>` is matched
    /// anywhere), and a template that puts `<s>` first (what the stages put before every document).
    /// No decoder: ids decode to their tokens joined by spaces.
    public func tokenizerJSON() throws -> Data {
        typealias Object = [String: Any]
        let bos = words[Self.bos]
        let specialBOS: Object = ["SpecialToken": ["id": bos, "type_id": 0] as Object]
        let sequence: Object = ["Sequence": ["id": "A", "type_id": 0] as Object]
        let added: [Object] = words.prefix(5).enumerated().map { i, w -> Object in
            [
                "id": i, "content": w, "single_word": false, "lstrip": false, "rstrip": false,
                "normalized": false, "special": true,
            ]
        }
        let splitSpaces: Object = [
            "type": "Split", "pattern": ["Regex": "[ \\n]+"] as Object, "behavior": "Removed", "invert": false,
        ]
        let splitPunctuation: Object = [
            "type": "Split", "pattern": ["Regex": "[.,?]"] as Object, "behavior": "Isolated", "invert": false,
        ]
        let postProcessor: Object = [
            "type": "TemplateProcessing",
            "single": [specialBOS, sequence],
            "pair": [
                specialBOS, sequence, ["SpecialToken": ["id": bos, "type_id": 1] as Object] as Object,
                ["Sequence": ["id": "B", "type_id": 1] as Object] as Object,
            ],
            "special_tokens": [bos: ["id": bos, "ids": [Self.bos], "tokens": [bos]] as Object] as Object,
        ]
        let model: Object = [
            "type": "WordLevel", "unk_token": words[Self.unknown],
            "vocab": Dictionary(uniqueKeysWithValues: words.enumerated().map { ($0.element, $0.offset) }),
        ]
        let object: Object = [
            "version": "1.0", "truncation": NSNull(), "padding": NSNull(), "added_tokens": added,
            "normalizer": NSNull(),
            "pre_tokenizer": ["type": "Sequence", "pretokenizers": [splitSpaces, splitPunctuation]] as Object,
            "post_processor": postProcessor, "decoder": NSNull(), "model": model,
        ]
        return try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
    }
}

extension ModelExport {
    /// Writes a model's tokenizer for transformers' `AutoTokenizer` / `AutoProcessor`:
    /// `tokenizer.json` and `tokenizer_config.json` (`PreTrainedTokenizerFast`; `bos`/`eos`/`pad`/`unk`
    /// tokens named from the decoder config's ids; `image_token` = the token of `imageTokenId`; no
    /// clean-up of spaces when decoding).
    /// - Returns: the files written.
    /// - Throws: `TrainingError` naming the file when it cannot be read by `Tokenizer`, has no token
    ///   for the model's image token id, or has more ids than the model has embedding rows.
    public static func writeTokenizer(_ tokenizer: ModelTokenizer, for model: MultimodalModel, to dir: String) throws
        -> [String]
    {
        let data: Data
        let source: String
        switch tokenizer {
        case .syntheticWords:
            data = try SyntheticVocabulary().tokenizerJSON()
            source = "the synthetic vocabulary"
        case .file(let path):
            do {
                data = try Data(contentsOf: URL(fileURLWithPath: path))
            } catch {
                throw TrainingError("\(path): cannot read the tokenizer: \(error.localizedDescription)")
            }
            source = path
        }
        let parsed: Tokenizer
        do {
            parsed = try Tokenizer(json: data)
        } catch {
            throw TrainingError("\(source): not a tokenizer Sightline reads: \(error)")
        }
        let l = model.config.languageModel
        guard parsed.vocabularySize <= l.vocabSize else {
            throw TrainingError(
                "\(source): the tokenizer has \(parsed.vocabularySize) ids, the model's embeddings \(l.vocabSize) rows")
        }
        let imageId = model.config.imageTokenId
        guard let image = parsed.token(of: imageId) else {
            throw TrainingError("\(source): no token has the model's image token id \(imageId)")
        }
        var config: [String: Any] = [
            "tokenizer_class": "PreTrainedTokenizerFast", "clean_up_tokenization_spaces": false,
            "model_max_length": l.maxPositionEmbeddings, "image_token": image,
            "extra_special_tokens": ["image_token": image] as [String: Any],
        ]
        for (key, id) in [("bos_token", l.bosTokenId), ("eos_token", l.eosTokenId), ("pad_token", l.padTokenId)] {
            if let id, let t = parsed.token(of: id) { config[key] = t }
        }
        if let unk = parsed.model.unknownToken { config["unk_token"] = unk }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let file = dir + "/" + TokenizerFiles.tokenizer
        try data.write(to: URL(fileURLWithPath: file), options: .atomic)
        return [file, try writeJSON(config, to: dir + "/" + TokenizerFiles.config)]
    }
}
