#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// JSON in and out for every OCI document, so all share one error style and one output form.
/// Public so other modules read and write OCI documents the same way.
public enum JSONCoding {
    /// Decodes `bytes`; failures become one line starting with `what` (a file or blob name)
    /// and naming the offending field.
    public static func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8], what: String) throws -> T {
        do {
            return try JSONDecoder().decode(type, from: Data(bytes))
        } catch let error as DecodingError {
            throw OCIError("\(what): \(describe(error))")
        } catch {
            throw OCIError("\(what): not valid JSON: \(error)")
        }
    }

    /// Deterministic output: sorted keys, '/' left unescaped, no whitespace.
    public static func encode<T: Encodable>(_ value: T) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        do {
            return Array(try encoder.encode(value))
        } catch {
            throw OCIError("cannot encode \(T.self) as JSON: \(error)")
        }
    }

    static func describe(_ error: DecodingError) -> String {
        switch error {
        case .typeMismatch(let type, let context):
            return "field \(path(context.codingPath)): wrong type (expected \(typeName(type)))"
        case .valueNotFound(let type, let context):
            return "field \(path(context.codingPath)): null where \(typeName(type)) is required"
        case .keyNotFound(let key, let context):
            return "missing field \(path(context.codingPath + [key]))"
        case .dataCorrupted(let context):
            if context.codingPath.isEmpty {
                let reason = context.underlyingError.map { "\($0)" } ?? context.debugDescription
                return "not valid JSON (\(reason))"
            }
            return "field \(path(context.codingPath)): \(context.debugDescription)"
        @unknown default:
            return "\(error)"
        }
    }

    /// "layers[2].digest", the way a reader finds it in the file.
    static func path(_ keys: [CodingKey]) -> String {
        var out = ""
        for key in keys {
            if let i = key.intValue, key.stringValue.hasPrefix("Index ") || key.stringValue == "\(i)" {
                out += "[\(i)]"
            } else {
                out += out.isEmpty ? key.stringValue : ".\(key.stringValue)"
            }
        }
        return out.isEmpty ? "(top level)" : "\"\(out)\""
    }

    static func typeName(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: return "string"
        case is Int.Type, is Int64.Type: return "integer"
        case is Bool.Type: return "boolean"
        case is [Any].Type: return "array"
        case is [String: Any].Type: return "object"
        default:
            let name = "\(type)"
            if name.hasPrefix("Array") { return "array" }
            if name.hasPrefix("Dictionary") { return "object" }
            return name
        }
    }
}
