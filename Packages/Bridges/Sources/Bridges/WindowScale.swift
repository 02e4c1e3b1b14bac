/// One scale of a Chain-of-Sight resampler: the patch grid is cut into `windowSize x windowSize`
/// windows (in patches) and `queries` learnable queries are shared out among them.
public struct WindowScale: Codable, Equatable, Sendable {
    /// Window side in patches.
    public var windowSize: Int
    /// Queries in total for this scale, over all windows.
    public var queries: Int

    public init(windowSize: Int, queries: Int) {
        self.windowSize = windowSize
        self.queries = queries
    }

    /// Errors for a scale that does not tile a grid.
    public struct TilingError: Error, CustomStringConvertible, Equatable {
        public var description: String
    }

    /// Windows over a `grid x grid` patch grid and queries per window.
    /// - Throws: `TilingError` when the window does not tile the grid or the queries do not divide
    ///   evenly among windows.
    public func layout(grid: Int) throws -> (windows: Int, queriesPerWindow: Int) {
        guard windowSize > 0, grid % windowSize == 0 else {
            throw TilingError(description: "window size \(windowSize) does not tile a \(grid)x\(grid) grid")
        }
        let windows = (grid / windowSize) * (grid / windowSize)
        guard queries >= windows, queries % windows == 0 else {
            throw TilingError(
                description: "\(queries) queries cannot be shared by \(windows) windows of \(windowSize)x\(windowSize)")
        }
        return (windows, queries / windows)
    }
}
