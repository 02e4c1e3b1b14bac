/// One scale of a Chain-of-Sight resampler: the patch grid is cut into non-overlapping
/// `windowSize x windowSize` windows (in patches), numbered row-major over the window grid, and
/// `queries` learnable queries are shared out among them: window w owns queries
/// `[w * queriesPerWindow, (w + 1) * queriesPerWindow)`.
public struct WindowScale: Codable, Hashable, Sendable, CustomStringConvertible {
    /// Window side in patches.
    public var windowSize: Int
    /// Queries in total for this scale, over all windows.
    public var queries: Int

    public init(windowSize: Int, queries: Int) {
        self.windowSize = windowSize
        self.queries = queries
    }

    public var description: String { "window \(windowSize), \(queries) queries" }

    /// The window grid and queries per window of this scale on `grid`.
    public struct Layout: Equatable, Sendable {
        /// Windows along the height and the width.
        public var windowRows: Int
        public var windowColumns: Int
        /// Queries each window owns.
        public var queriesPerWindow: Int
        /// Windows in total.
        public var windows: Int { windowRows * windowColumns }
    }

    /// Lays this scale on `grid`.
    /// - Parameter scaleIndex: used in error messages only.
    /// - Throws: `TensorError` when the window does not tile the grid, or the queries are fewer than
    ///   the windows or not a multiple of their number.
    public func layout(grid: Grid, scaleIndex: Int? = nil) throws -> Layout {
        let name = scaleIndex.map { "scale \($0) (\(self))" } ?? "scale (\(self))"
        guard windowSize > 0, grid.height > 0, grid.width > 0,
            grid.height % windowSize == 0, grid.width % windowSize == 0
        else {
            throw TensorError(
                "ChainOfSight", "\(name): window size \(windowSize) does not tile the \(grid) patch grid")
        }
        let rows = grid.height / windowSize, cols = grid.width / windowSize
        let windows = rows * cols
        guard queries >= windows, queries % windows == 0 else {
            throw TensorError(
                "ChainOfSight",
                "\(name): \(queries) queries cannot be shared evenly by the \(windows) windows (\(rows)x\(cols)) of a \(grid) grid"
            )
        }
        return Layout(windowRows: rows, windowColumns: cols, queriesPerWindow: queries / windows)
    }

    /// Windows over a `grid x grid` patch grid and queries per window.
    public func layout(grid: Int) throws -> (windows: Int, queriesPerWindow: Int) {
        let l = try layout(grid: .square(grid))
        return (l.windows, l.queriesPerWindow)
    }
}
