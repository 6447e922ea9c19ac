import StrataHash

/// A content digest, "<algorithm>:<encoded>" (image-spec descriptor.md).
/// Any well-formed algorithm parses, so foreign indexes still load; only sha256 is verified
/// (`requireVerifiable`), which is the algorithm every blob we read or write uses.
public struct Digest: Hashable, Sendable, CustomStringConvertible, Codable {
    public let algorithm: String
    public let hex: String
    public var description: String { "\(algorithm):\(hex)" }

    /// Parses and validates a digest string; the error quotes the string.
    public init(parsing text: String) throws {
        guard let colon = text.firstIndex(of: ":") else {
            throw OCIError("invalid digest \"\(text)\": expected <algorithm>:<hex>")
        }
        let algorithm = String(text[..<colon])
        let encoded = String(text[text.index(after: colon)...])
        guard Digest.isValidAlgorithm(algorithm) else {
            throw OCIError("invalid digest \"\(text)\": malformed algorithm \"\(algorithm)\"")
        }
        guard !encoded.isEmpty, encoded.utf8.allSatisfy(Digest.isEncodedByte) else {
            throw OCIError("invalid digest \"\(text)\": malformed encoded part")
        }
        // Registered algorithms have a fixed lowercase-hex form; check it so a typo is not
        // reported later as a missing blob.
        if let length = Digest.registeredHexLength[algorithm] {
            guard encoded.utf8.count == length, encoded.utf8.allSatisfy(Digest.isLowerHex) else {
                throw OCIError("invalid digest \"\(text)\": \(algorithm) needs \(length) lowercase hex digits")
            }
        }
        self.algorithm = algorithm
        self.hex = encoded
    }

    /// A sha256 digest from 64 lowercase hex digits, as `SHA256Hasher.finalizeHex()` gives.
    public init(sha256Hex hex: String) {
        precondition(hex.utf8.count == 64 && hex.utf8.allSatisfy(Digest.isLowerHex), "not a sha256 hex digest: \(hex)")
        self.algorithm = "sha256"
        self.hex = hex
    }

    /// The sha256 digest of `bytes`.
    public static func sha256(of bytes: [UInt8]) -> Digest {
        Digest(sha256Hex: SHA256Hasher.hex(of: bytes))
    }

    /// True for the algorithms this module can verify.
    public var isVerifiable: Bool { algorithm == "sha256" }

    /// Throws when the digest cannot be verified here; `what` names the blob for the message.
    public func requireVerifiable(_ what: String) throws {
        guard isVerifiable else {
            throw OCIError("\(what): digest algorithm \(algorithm) is not supported for verification (only sha256)")
        }
    }

    // Encoded as the plain string, as in every OCI document.
    public init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        do {
            try self.init(parsing: text)
        } catch let error as OCIError {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: error.message)
        }
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }

    static let registeredHexLength: [String: Int] = ["sha256": 64, "sha512": 128]

    // algorithm ::= component (separator component)*, component ::= [a-z0-9]+, separator ::= [+._-]
    static func isValidAlgorithm(_ s: String) -> Bool {
        var previousWasSeparator = true   // so a leading separator is refused
        for b in s.utf8 {
            let isComponent = (b >= 0x61 && b <= 0x7a) || (b >= 0x30 && b <= 0x39)
            if isComponent {
                previousWasSeparator = false
            } else if b == 0x2b || b == 0x2e || b == 0x5f || b == 0x2d {
                if previousWasSeparator { return false }
                previousWasSeparator = true
            } else {
                return false
            }
        }
        return !previousWasSeparator
    }

    // encoded ::= [a-zA-Z0-9=_-]+ (no '/' or '.', so it is safe as a file name)
    static func isEncodedByte(_ b: UInt8) -> Bool {
        (b >= 0x61 && b <= 0x7a) || (b >= 0x41 && b <= 0x5a) || (b >= 0x30 && b <= 0x39)
            || b == 0x3d || b == 0x5f || b == 0x2d
    }

    static func isLowerHex(_ b: UInt8) -> Bool {
        (b >= 0x30 && b <= 0x39) || (b >= 0x61 && b <= 0x66)
    }
}
