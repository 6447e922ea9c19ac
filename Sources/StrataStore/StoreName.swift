import Foundation
import StrataOCI
import StrataRegistry

/// The names c/storage looks up in an Additional Layer Store mounted with `:ref`
/// (containers/storage 1.43, `drivers/overlay`: `getAdditionalLayerPath`):
/// `<store>/<base64 of the reference>/<layer digest>/{diff,info,blob}`. The reference is what
/// c/image's `SrcRef.String()` gives, `HOST[:PORT]/REPO[:TAG][@sha256:HEX]` (no transport).
public enum StoreName {
    /// The reference a first-level name stands for, as a `docker://` reference; nil when the
    /// name is not the standard base64 (with padding) of a valid reference.
    public static func reference(_ name: [UInt8]) -> RegistryReference? {
        guard !name.isEmpty, name.count <= 1024,
              let text = String(bytes: name, encoding: .ascii),
              let data = Data(base64Encoded: text),
              // Only the one encoding c/storage writes: a name that decodes but is written
              // otherwise (no padding, stray bits) would be a second path to the same layers.
              data.base64EncodedString() == text,
              let decoded = String(data: data, encoding: .utf8),
              !decoded.hasPrefix(RegistryReference.prefix) else { return nil }
        return try? RegistryReference.parse(RegistryReference.prefix + decoded)
    }

    /// The first-level name of a reference (what c/storage looks up): base64 of the
    /// reference without its `docker://` prefix.
    public static func encode(_ reference: String) -> String {
        let bare = reference.hasPrefix(RegistryReference.prefix) ? String(reference.dropFirst(RegistryReference.prefix.count)) : reference
        return Data(bare.utf8).base64EncodedString()
    }

    /// A second-level name: `sha256:` and 64 lowercase hex digits; nil otherwise.
    public static func digest(_ name: [UInt8]) -> Digest? {
        guard name.count == 71, let text = String(bytes: name, encoding: .ascii), text.hasPrefix("sha256:"),
              text.dropFirst(7).allSatisfy({ ("0"..."9").contains($0) || ("a"..."f").contains($0) }) else { return nil }
        return try? Digest(parsing: text)
    }

    /// The files of a layer directory.
    public enum LayerFile: String, CaseIterable, Sendable {
        case diff, info, blob
    }
}
