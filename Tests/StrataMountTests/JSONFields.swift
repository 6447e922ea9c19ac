import Foundation
import Testing

/// JSON the CLI printed or wrote, read with `#require`: a regression in the output is a
/// failed test with the text, never a crash that ends the whole run before its cleanups.
func jsonObject(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> [String: Any] {
    try jsonObject(Array(text.utf8), sourceLocation: sourceLocation)
}

func jsonObject(_ bytes: [UInt8], sourceLocation: SourceLocation = #_sourceLocation) throws -> [String: Any] {
    let parsed = try JSONSerialization.jsonObject(with: Data(bytes))
    return try #require(parsed as? [String: Any], "not a JSON object: \(String(decoding: bytes, as: UTF8.self))",
                        sourceLocation: sourceLocation)
}

/// `object[key]` as a `T`, or a recorded failure naming the key and what was there.
func field<T>(_ object: [String: Any], _ key: String, as type: T.Type = T.self,
              sourceLocation: SourceLocation = #_sourceLocation) throws -> T {
    try #require(object[key] as? T, "\(key): expected \(T.self), found \(String(describing: object[key]))",
                 sourceLocation: sourceLocation)
}
