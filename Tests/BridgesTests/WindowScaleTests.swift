import Bridges
import Testing

@Test func chainOfSightPretrainScalesGive32Tokens() throws {
    // 224 px, patch 14: a 16x16 grid; one global window with 16 queries plus 4x4 windows with 16.
    let scales = [WindowScale(windowSize: 16, queries: 16), WindowScale(windowSize: 4, queries: 16)]
    let layouts = try scales.map { try $0.layout(grid: 16) }
    #expect(layouts.map(\.windows) == [1, 16])
    #expect(layouts.map(\.queriesPerWindow) == [16, 1])
    #expect(layouts.reduce(0) { $0 + $1.windows * $1.queriesPerWindow } == 32)
    #expect(throws: WindowScale.TilingError.self) { try WindowScale(windowSize: 5, queries: 16).layout(grid: 16) }
    #expect(throws: WindowScale.TilingError.self) { try WindowScale(windowSize: 4, queries: 8).layout(grid: 16) }
}
