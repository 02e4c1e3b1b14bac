import Foundation

/// Line plots as standalone SVG (no dependencies): axes with ticks, one polyline per series, a legend.
public enum SVGPlot {
    /// One named series of (x, y) points.
    public struct Series {
        public var name: String
        public var points: [(x: Double, y: Double)]
        public init(name: String, points: [(x: Double, y: Double)]) {
            self.name = name
            self.points = points
        }
    }

    static let colours = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"]

    /// An SVG document plotting `series` (non-finite points are left out).
    /// - Parameters:
    ///   - logY: a logarithmic y axis (positive values only).
    public static func render(
        title: String, xLabel: String, yLabel: String, series: [Series], width: Int = 640, height: Int = 400,
        logY: Bool = false
    ) -> String {
        let (left, right, top, bottom) = (70.0, 20.0, 40.0, 50.0)
        let w = Double(width) - left - right, h = Double(height) - top - bottom
        let ty: (Double) -> Double = { logY ? log10($0) : $0 }
        let all = series.flatMap(\.points).filter { $0.x.isFinite && $0.y.isFinite && (!logY || $0.y > 0) }
        var (x0, x1) = (all.map(\.x).min() ?? 0, all.map(\.x).max() ?? 1)
        var (y0, y1) = (all.map { ty($0.y) }.min() ?? 0, all.map { ty($0.y) }.max() ?? 1)
        if x1 <= x0 { x1 = x0 + 1 }
        if y1 <= y0 {
            y0 -= 0.5
            y1 += 0.5
        }
        let pad = (y1 - y0) * 0.05
        y0 -= pad
        y1 += pad
        func px(_ x: Double) -> Double { left + (x - x0) / (x1 - x0) * w }
        func py(_ y: Double) -> Double { top + (1 - (ty(y) - y0) / (y1 - y0)) * h }
        func fmt(_ v: Double) -> String {
            if v == 0 { return "0" }
            if abs(v) >= 1e4 || abs(v) < 1e-3 { return String(format: "%.1e", v) }
            return String(format: abs(v) >= 100 ? "%.0f" : (abs(v) >= 1 ? "%.2f" : "%.4f"), v)
        }
        func esc(_ s: String) -> String {
            s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
                .replacingOccurrences(of: ">", with: "&gt;")
        }
        var s = """
            <svg xmlns="http://www.w3.org/2000/svg" width="\(width)" height="\(height)" viewBox="0 0 \(width) \(height)" font-family="sans-serif" font-size="12">
            <rect width="100%" height="100%" fill="white"/>
            <text x="\(Double(width) / 2)" y="22" text-anchor="middle" font-size="15">\(esc(title))</text>
            <rect x="\(left)" y="\(top)" width="\(w)" height="\(h)" fill="none" stroke="#444"/>

            """
        for i in 0...5 {
            let fx = x0 + (x1 - x0) * Double(i) / 5
            let fy = y0 + (y1 - y0) * Double(i) / 5
            let gx = px(fx), gy = top + (1 - Double(i) / 5) * h
            let label = logY ? fmt(pow(10, fy)) : fmt(fy)
            s += "<line x1=\"\(gx)\" y1=\"\(top)\" x2=\"\(gx)\" y2=\"\(top + h)\" stroke=\"#eee\"/>\n"
            s += "<line x1=\"\(left)\" y1=\"\(gy)\" x2=\"\(left + w)\" y2=\"\(gy)\" stroke=\"#eee\"/>\n"
            s += "<text x=\"\(gx)\" y=\"\(top + h + 16)\" text-anchor=\"middle\">\(fmt(fx))</text>\n"
            s += "<text x=\"\(left - 6)\" y=\"\(gy + 4)\" text-anchor=\"end\">\(label)</text>\n"
        }
        s += "<text x=\"\(left + w / 2)\" y=\"\(Double(height) - 12)\" text-anchor=\"middle\">\(esc(xLabel))</text>\n"
        s += "<text x=\"16\" y=\"\(top + h / 2)\" text-anchor=\"middle\" transform=\"rotate(-90 16 \(top + h / 2))\">\(esc(yLabel))</text>\n"
        for (i, serie) in series.enumerated() {
            let colour = colours[i % colours.count]
            let pts = serie.points.filter { $0.x.isFinite && $0.y.isFinite && (!logY || $0.y > 0) }
            if pts.count == 1 {
                s += "<circle cx=\"\(px(pts[0].x))\" cy=\"\(py(pts[0].y))\" r=\"3\" fill=\"\(colour)\"/>\n"
            } else if pts.count > 1 {
                let path = pts.map { String(format: "%.2f,%.2f", px($0.x), py($0.y)) }.joined(separator: " ")
                s += "<polyline fill=\"none\" stroke=\"\(colour)\" stroke-width=\"1.5\" points=\"\(path)\"/>\n"
            }
            let ly = top + 16 + Double(i) * 16
            s += "<line x1=\"\(left + w - 120)\" y1=\"\(ly - 4)\" x2=\"\(left + w - 100)\" y2=\"\(ly - 4)\" stroke=\"\(colour)\" stroke-width=\"2\"/>\n"
            s += "<text x=\"\(left + w - 95)\" y=\"\(ly)\">\(esc(serie.name))</text>\n"
        }
        return s + "</svg>\n"
    }
}
