import Foundation

extension ReferenceBackend {
    public func groupedNormForward(
        _ x: ConstPtr, rows: Int, groups: Int, channels: Int, inner: Int, weight: ConstPtr?, bias: ConstPtr?,
        eps: Float, rms: Bool, y: MutPtr, mean: MutPtr, rstd: MutPtr
    ) {
        let cpg = channels / groups, m = cpg * inner
        for u in 0..<(rows * groups) {
            let g = u % groups
            var mu = 0.0, v = 0.0
            if !rms && m > 0 {
                for i in 0..<m { mu += Double(x[u * m + i]) }
                mu /= Double(m)
            }
            for i in 0..<m {
                let d = Double(x[u * m + i]) - mu
                v += d * d
            }
            if m > 0 { v /= Double(m) }
            let rs = 1 / (v + Double(eps)).squareRoot()
            mean[u] = Float(mu)
            rstd[u] = Float(rs)
            for i in 0..<m {
                let c = g * cpg + i / inner
                let w = weight.map { Double($0[c]) } ?? 1, b = bias.map { Double($0[c]) } ?? 0
                y[u * m + i] = Float((Double(x[u * m + i]) - mu) * rs * w + b)
            }
        }
    }

    public func groupedNormBackward(
        _ x: ConstPtr, dy: ConstPtr, mean: ConstPtr, rstd: ConstPtr, weight: ConstPtr?, rows: Int,
        groups: Int,
        channels: Int, inner: Int, rms: Bool, dx: MutPtr?, dweight: MutPtr?, dbias: MutPtr?
    ) {
        let cpg = channels / groups, m = cpg * inner
        var dw = [Double](repeating: 0, count: channels), db = [Double](repeating: 0, count: channels)
        for u in 0..<(rows * groups) {
            let g = u % groups
            let mu = Double(mean[u]), rs = Double(rstd[u])
            var sumG = 0.0, sumGX = 0.0
            for i in 0..<m {
                let c = g * cpg + i / inner
                let xhat = (Double(x[u * m + i]) - mu) * rs
                let gy = Double(dy[u * m + i])
                let gw = gy * (weight.map { Double($0[c]) } ?? 1)
                sumG += gw
                sumGX += gw * xhat
                dw[c] += gy * xhat
                db[c] += gy
            }
            guard let dx else { continue }
            let meanG = rms || m == 0 ? 0 : sumG / Double(m), meanGX = m == 0 ? 0 : sumGX / Double(m)
            for i in 0..<m {
                let c = g * cpg + i / inner
                let xhat = (Double(x[u * m + i]) - mu) * rs
                let gw = Double(dy[u * m + i]) * (weight.map { Double($0[c]) } ?? 1)
                dx[u * m + i] = Float(rs * (gw - meanG - xhat * meanGX))
            }
        }
        for c in 0..<channels {
            dweight?[c] = Float(dw[c])
            dbias?[c] = Float(db[c])
        }
    }

    public func batchNormStatistics(
        _ x: ConstPtr, batch: Int, channels: Int, inner: Int, mean: MutPtr, variance: MutPtr
    ) {
        let n = Double(Swift.max(batch * inner, 1))
        for c in 0..<channels {
            var s = 0.0
            for b in 0..<batch { for i in 0..<inner { s += Double(x[(b * channels + c) * inner + i]) } }
            let mu = s / n
            var v = 0.0
            for b in 0..<batch {
                for i in 0..<inner {
                    let d = Double(x[(b * channels + c) * inner + i]) - mu
                    v += d * d
                }
            }
            mean[c] = Float(mu)
            variance[c] = Float(v / n)
        }
    }

    public func batchNormForward(
        _ x: ConstPtr, batch: Int, channels: Int, inner: Int, mean: ConstPtr, rstd: ConstPtr,
        weight: ConstPtr?,
        bias: ConstPtr?, y: MutPtr
    ) {
        for b in 0..<batch {
            for c in 0..<channels {
                let w = weight.map { Double($0[c]) } ?? 1, bb = bias.map { Double($0[c]) } ?? 0
                for i in 0..<inner {
                    let o = (b * channels + c) * inner + i
                    y[o] = Float((Double(x[o]) - Double(mean[c])) * Double(rstd[c]) * w + bb)
                }
            }
        }
    }

    public func batchNormBackward(
        _ x: ConstPtr, dy: ConstPtr, batch: Int, channels: Int, inner: Int, mean: ConstPtr, rstd: ConstPtr,
        weight: ConstPtr?, training: Bool, dx: MutPtr?, dweight: MutPtr?, dbias: MutPtr?
    ) {
        let n = Double(Swift.max(batch * inner, 1))
        for c in 0..<channels {
            let mu = Double(mean[c]), rs = Double(rstd[c]), w = weight.map { Double($0[c]) } ?? 1
            var sumG = 0.0, sumGX = 0.0
            for b in 0..<batch {
                for i in 0..<inner {
                    let o = (b * channels + c) * inner + i
                    sumG += Double(dy[o])
                    sumGX += Double(dy[o]) * (Double(x[o]) - mu) * rs
                }
            }
            dweight?[c] = Float(sumGX)
            dbias?[c] = Float(sumG)
            guard let dx else { continue }
            for b in 0..<batch {
                for i in 0..<inner {
                    let o = (b * channels + c) * inner + i
                    let g = Double(dy[o])
                    if training {
                        let xhat = (Double(x[o]) - mu) * rs
                        dx[o] = Float(w * rs * (g - sumG / n - xhat * sumGX / n))
                    } else {
                        dx[o] = Float(w * rs * g)
                    }
                }
            }
        }
    }
}
