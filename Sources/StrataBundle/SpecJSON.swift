#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// config.json as people read it and tools diff it: sorted keys, indented, '/' unescaped,
/// a final newline. The same spec always gives the same bytes.
public enum SpecJSON {
    public static func encode(_ spec: RuntimeSpec) throws(BundleError) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        do {
            return Array(try encoder.encode(spec)) + [0x0a]
        } catch {
            throw BundleError("cannot encode config.json: \(error)")
        }
    }

    public static func decode(_ bytes: [UInt8], what: String) throws(BundleError) -> RuntimeSpec {
        do {
            return try JSONDecoder().decode(RuntimeSpec.self, from: Data(bytes))
        } catch {
            throw BundleError("\(what): not a config.json Strata can read: \(error)")
        }
    }
}
