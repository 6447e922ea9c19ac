import Foundation
import Testing
@testable import StrataOCI

private let hex64 = String(repeating: "ab", count: 32)

@Test func digestParsesSha256() throws {
    let d = try Digest(parsing: "sha256:\(hex64)")
    #expect(d.algorithm == "sha256")
    #expect(d.hex == hex64)
    #expect(d.description == "sha256:\(hex64)")
    #expect(d == Digest(sha256Hex: hex64))
    #expect(d.isVerifiable)
}

@Test func digestOfBytesMatchesKnownValue() {
    #expect(Digest.sha256(of: Array("abc".utf8)).hex == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
}

@Test func digestRejectsMalformed() {
    for text in ["", "sha256", "sha256:", ":abc", "sha256:\(hex64.uppercased())", "sha256:abc",
                 "sha256:\(hex64)00", "SHA256:\(hex64)", "sha256:../../etc", "-sha:abc", "sha256:\(hex64.dropLast())g"] {
        let message = errorMessage { _ = try Digest(parsing: text) }
        #expect(message.hasPrefix("invalid digest \"\(text)\""), "\(text): \(message)")
    }
}

@Test func sha512ParsesButIsRefusedForVerification() throws {
    let d = try Digest(parsing: "sha512:" + String(repeating: "0f", count: 64))
    #expect(!d.isVerifiable)
    let message = errorMessage { try d.requireVerifiable("blob \(d)") }
    #expect(message.contains("sha512") && message.contains("only sha256"))
}

@Test func digestCodableIsAPlainString() throws {
    let d = Digest(sha256Hex: hex64)
    let json = String(decoding: try JSONEncoder().encode([d]), as: UTF8.self)
    #expect(json == "[\"sha256:\(hex64)\"]")
    #expect(try JSONDecoder().decode([Digest].self, from: Data(json.utf8)) == [d])
}
