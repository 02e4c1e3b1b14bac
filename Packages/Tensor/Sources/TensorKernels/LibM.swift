import Foundation

@inline(__always) func _logf(_ x: Float) -> Float { Foundation.log(x) }
