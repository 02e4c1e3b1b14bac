import Foundation
import TensorKernels

// Direct loops with Double accumulation: direct convolution (no im2col), pooling windows walked tap
// by tap, interpolation evaluated per output pixel as a 2-D weighted sum (not separably).

extension ReferenceBackend {
    public func conv2d(_ x: ConstPtr, weight: ConstPtr, bias: ConstPtr?, _ y: MutPtr, _ g: Conv2dGeometry) {
        let cg = g.inPerGroup, og = g.outPerGroup
        let (h, w, ho, wo, kh, kw) = (
            g.inHeight, g.inWidth, g.outHeight, g.outWidth, g.kernelHeight, g.kernelWidth
        )
        for n in 0..<g.batch {
            for o in 0..<g.outChannels {
                let grp = o / og
                for oy in 0..<ho {
                    for ox in 0..<wo {
                        var acc = Double(bias?[o] ?? 0)
                        for c in 0..<cg {
                            let ci = grp * cg + c
                            for ky in 0..<kh {
                                let iy = oy * g.strideHeight - g.padHeight + ky * g.dilationHeight
                                if iy < 0 || iy >= h { continue }
                                for kx in 0..<kw {
                                    let ix = ox * g.strideWidth - g.padWidth + kx * g.dilationWidth
                                    if ix < 0 || ix >= w { continue }
                                    acc +=
                                        Double(weight[((o * cg + c) * kh + ky) * kw + kx])
                                        * Double(x[((n * g.inChannels + ci) * h + iy) * w + ix])
                                }
                            }
                        }
                        y[((n * g.outChannels + o) * ho + oy) * wo + ox] = Float(acc)
                    }
                }
            }
        }
    }

    public func conv2dBackwardInput(dy: ConstPtr, weight: ConstPtr, dx: MutPtr, _ g: Conv2dGeometry) {
        let cg = g.inPerGroup, og = g.outPerGroup
        let (h, w, ho, wo, kh, kw) = (
            g.inHeight, g.inWidth, g.outHeight, g.outWidth, g.kernelHeight, g.kernelWidth
        )
        var acc = [Double](repeating: 0, count: g.batch * g.inChannels * h * w)
        for n in 0..<g.batch {
            for o in 0..<g.outChannels {
                let grp = o / og
                for oy in 0..<ho {
                    for ox in 0..<wo {
                        let gv = Double(dy[((n * g.outChannels + o) * ho + oy) * wo + ox])
                        for c in 0..<cg {
                            let ci = grp * cg + c
                            for ky in 0..<kh {
                                let iy = oy * g.strideHeight - g.padHeight + ky * g.dilationHeight
                                if iy < 0 || iy >= h { continue }
                                for kx in 0..<kw {
                                    let ix = ox * g.strideWidth - g.padWidth + kx * g.dilationWidth
                                    if ix < 0 || ix >= w { continue }
                                    acc[((n * g.inChannels + ci) * h + iy) * w + ix] +=
                                        gv * Double(weight[((o * cg + c) * kh + ky) * kw + kx])
                                }
                            }
                        }
                    }
                }
            }
        }
        for i in 0..<acc.count { dx[i] = Float(acc[i]) }
    }

    public func conv2dBackwardWeight(
        dy: ConstPtr, x: ConstPtr, dWeight: MutPtr?, dBias: MutPtr?, _ g: Conv2dGeometry
    ) {
        let cg = g.inPerGroup, og = g.outPerGroup
        let (h, w, ho, wo, kh, kw) = (
            g.inHeight, g.inWidth, g.outHeight, g.outWidth, g.kernelHeight, g.kernelWidth
        )
        if let dBias {
            for o in 0..<g.outChannels {
                var s = 0.0
                for n in 0..<g.batch {
                    for i in 0..<(ho * wo) { s += Double(dy[(n * g.outChannels + o) * ho * wo + i]) }
                }
                dBias[o] = Float(s)
            }
        }
        guard let dWeight else { return }
        for o in 0..<g.outChannels {
            let grp = o / og
            for c in 0..<cg {
                let ci = grp * cg + c
                for ky in 0..<kh {
                    for kx in 0..<kw {
                        var s = 0.0
                        for n in 0..<g.batch {
                            for oy in 0..<ho {
                                let iy = oy * g.strideHeight - g.padHeight + ky * g.dilationHeight
                                if iy < 0 || iy >= h { continue }
                                for ox in 0..<wo {
                                    let ix = ox * g.strideWidth - g.padWidth + kx * g.dilationWidth
                                    if ix < 0 || ix >= w { continue }
                                    s +=
                                        Double(dy[((n * g.outChannels + o) * ho + oy) * wo + ox])
                                        * Double(x[((n * g.inChannels + ci) * h + iy) * w + ix])
                                }
                            }
                        }
                        dWeight[((o * cg + c) * kh + ky) * kw + kx] = Float(s)
                    }
                }
            }
        }
    }

    public func maxPool2d(
        _ x: ConstPtr, _ y: MutPtr, indices: UnsafeMutablePointer<Int32>, _ g: Pool2dGeometry
    ) {
        let (h, w, ho, wo) = (g.inHeight, g.inWidth, g.outHeight, g.outWidth)
        for plane in 0..<g.planes {
            for oy in 0..<ho {
                for ox in 0..<wo {
                    var best = -Float.infinity
                    var at: Int32 = -1
                    for ky in 0..<g.kernelHeight {
                        let iy = oy * g.strideHeight - g.padHeight + ky * g.dilationHeight
                        if iy < 0 || iy >= h { continue }
                        for kx in 0..<g.kernelWidth {
                            let ix = ox * g.strideWidth - g.padWidth + kx * g.dilationWidth
                            if ix < 0 || ix >= w { continue }
                            let v = x[(plane * h + iy) * w + ix]
                            // The window's first element stands until something larger (or NaN) comes.
                            if at < 0 { at = Int32(iy * w + ix) }
                            if v > best || v.isNaN {
                                best = v
                                at = Int32(iy * w + ix)
                            }
                        }
                    }
                    y[(plane * ho + oy) * wo + ox] = best
                    indices[(plane * ho + oy) * wo + ox] = at
                }
            }
        }
    }

    public func maxPool2dBackward(
        dy: ConstPtr, indices: UnsafePointer<Int32>, dx: MutPtr, _ g: Pool2dGeometry
    ) {
        let hw = g.inHeight * g.inWidth, p = g.outHeight * g.outWidth
        var acc = [Double](repeating: 0, count: g.planes * hw)
        for plane in 0..<g.planes {
            for i in 0..<p where indices[plane * p + i] >= 0 {
                acc[plane * hw + Int(indices[plane * p + i])] += Double(dy[plane * p + i])
            }
        }
        for i in 0..<acc.count { dx[i] = Float(acc[i]) }
    }

    /// Taps of one average-pooling window: the in-input elements and the divisor.
    private func avgTaps(_ oy: Int, _ ox: Int, _ g: Pool2dGeometry, countIncludePad: Bool) -> (
        taps: [Int], divisor: Double
    ) {
        var taps: [Int] = []
        var padded = 0
        for ky in 0..<g.kernelHeight {
            let iy = oy * g.strideHeight - g.padHeight + ky
            for kx in 0..<g.kernelWidth {
                let ix = ox * g.strideWidth - g.padWidth + kx
                // Window positions beyond the padding (ceil mode) count for nothing.
                if iy < g.inHeight + g.padHeight && ix < g.inWidth + g.padWidth { padded += 1 }
                if iy >= 0 && iy < g.inHeight && ix >= 0 && ix < g.inWidth {
                    taps.append(iy * g.inWidth + ix)
                }
            }
        }
        return (taps, Double(countIncludePad ? padded : taps.count))
    }

    public func avgPool2d(_ x: ConstPtr, _ y: MutPtr, _ g: Pool2dGeometry, countIncludePad: Bool) {
        let hw = g.inHeight * g.inWidth
        for plane in 0..<g.planes {
            for oy in 0..<g.outHeight {
                for ox in 0..<g.outWidth {
                    let (taps, div) = avgTaps(oy, ox, g, countIncludePad: countIncludePad)
                    let s = taps.reduce(0.0) { $0 + Double(x[plane * hw + $1]) }
                    y[(plane * g.outHeight + oy) * g.outWidth + ox] = taps.isEmpty ? 0 : Float(s / div)
                }
            }
        }
    }

    public func avgPool2dBackward(dy: ConstPtr, dx: MutPtr, _ g: Pool2dGeometry, countIncludePad: Bool) {
        let hw = g.inHeight * g.inWidth
        var acc = [Double](repeating: 0, count: g.planes * hw)
        for plane in 0..<g.planes {
            for oy in 0..<g.outHeight {
                for ox in 0..<g.outWidth {
                    let (taps, div) = avgTaps(oy, ox, g, countIncludePad: countIncludePad)
                    let v = Double(dy[(plane * g.outHeight + oy) * g.outWidth + ox]) / div
                    for t in taps { acc[plane * hw + t] += v }
                }
            }
        }
        for i in 0..<acc.count { dx[i] = Float(acc[i]) }
    }

    private func bin(_ i: Int, _ inSize: Int, _ outSize: Int) -> Range<Int> {
        let lo = Int((Double(i * inSize) / Double(outSize)).rounded(.down))
        let hi = Int((Double((i + 1) * inSize) / Double(outSize)).rounded(.up))
        return lo..<hi
    }

    public func adaptiveAvgPool2d(
        _ x: ConstPtr, _ y: MutPtr, planes: Int, inHeight: Int, inWidth: Int, outHeight: Int, outWidth: Int
    ) {
        for plane in 0..<planes {
            for oy in 0..<outHeight {
                let ry = bin(oy, inHeight, outHeight)
                for ox in 0..<outWidth {
                    let rx = bin(ox, inWidth, outWidth)
                    var s = 0.0
                    for iy in ry { for ix in rx { s += Double(x[(plane * inHeight + iy) * inWidth + ix]) } }
                    y[(plane * outHeight + oy) * outWidth + ox] = Float(s / Double(ry.count * rx.count))
                }
            }
        }
    }

    public func adaptiveAvgPool2dBackward(
        dy: ConstPtr, dx: MutPtr, planes: Int, inHeight: Int, inWidth: Int, outHeight: Int, outWidth: Int
    ) {
        var acc = [Double](repeating: 0, count: planes * inHeight * inWidth)
        for plane in 0..<planes {
            for oy in 0..<outHeight {
                let ry = bin(oy, inHeight, outHeight)
                for ox in 0..<outWidth {
                    let rx = bin(ox, inWidth, outWidth)
                    let v = Double(dy[(plane * outHeight + oy) * outWidth + ox]) / Double(ry.count * rx.count)
                    for iy in ry { for ix in rx { acc[(plane * inHeight + iy) * inWidth + ix] += v } }
                }
            }
        }
        for i in 0..<acc.count { dx[i] = Float(acc[i]) }
    }

    /// The (index, weight) taps of output `o` along one axis.
    private func taps(_ t: ResampleTable, _ o: Int) -> [(Int, Double)] {
        (0..<Int(t.count[o])).map { k in (Int(t.index[o * t.taps + k]), Double(t.weight[o * t.taps + k])) }
    }

    public func resize2d(_ x: ConstPtr, _ y: MutPtr, _ g: Resize2dGeometry) {
        let (th, tw) = g.tables()
        let colTaps = (0..<g.outWidth).map { taps(tw, $0) }
        for plane in 0..<g.planes {
            for oy in 0..<g.outHeight {
                let rowTaps = taps(th, oy)
                for ox in 0..<g.outWidth {
                    var s = 0.0
                    for (iy, wy) in rowTaps {
                        for (ix, wx) in colTaps[ox] {
                            s += wy * wx * Double(x[(plane * g.inHeight + iy) * g.inWidth + ix])
                        }
                    }
                    y[(plane * g.outHeight + oy) * g.outWidth + ox] = Float(s)
                }
            }
        }
    }

    public func resize2dBackward(dy: ConstPtr, dx: MutPtr, _ g: Resize2dGeometry) {
        let (th, tw) = g.tables()
        let colTaps = (0..<g.outWidth).map { taps(tw, $0) }
        var acc = [Double](repeating: 0, count: g.planes * g.inHeight * g.inWidth)
        for plane in 0..<g.planes {
            for oy in 0..<g.outHeight {
                let rowTaps = taps(th, oy)
                for ox in 0..<g.outWidth {
                    let v = Double(dy[(plane * g.outHeight + oy) * g.outWidth + ox])
                    for (iy, wy) in rowTaps {
                        for (ix, wx) in colTaps[ox] {
                            acc[(plane * g.inHeight + iy) * g.inWidth + ix] += wy * wx * v
                        }
                    }
                }
            }
        }
        for i in 0..<acc.count { dx[i] = Float(acc[i]) }
    }
}
