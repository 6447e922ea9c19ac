#if canImport(Glibc)
import Glibc
#endif
import Foundation
import StrataOCI
import StrataSystem
import StrataTestSupport

/// The image the registry tests push: a small base layer, and a layer of incompressible files
/// large enough for several spans (so a read fetches only part of the blob).
enum RegistryImage {
    static let big1 = Items.pseudoRandom(count: 6 << 20, seed: 11)
    static let big2 = Items.pseudoRandom(count: 6 << 20, seed: 12)

    /// LAYOUT:v1, built in code.
    @discardableResult
    static func make(layout: String) throws -> ImageBuilder {
        let b = try ImageBuilder(layout: layout)
        try b.addLayer(entries: [
            Items.dir("etc"), Items.file("etc/os-release", "ID=strata-test\n"), Items.dir("usr"), Items.dir("usr/bin"),
            Items.file("usr/bin/tool", "#!/bin/sh\necho tool\n", mode: 0o755), Items.symlink("bin", to: "usr/bin"),
            Items.file("etc/gone", "removed above\n"), Items.hardlink("etc/os-release.link", to: "etc/os-release"),
        ])
        try b.addLayer(entries: [
            Items.dir("data"), Items.file(Array("data/big1".utf8), big1), Items.file("data/small", "small file\n"),
            Items.file(Array("data/big2".utf8), big2), Items.whiteout("etc/gone"),
        ])
        try b.write(tag: "v1")
        return b
    }

    /// A cache holding only what a first mount left of `source` that is not blob data: the
    /// indexes, verified diff_ids and merged trees (as if another machine indexed the image).
    static func indexOnlyCache(from source: String, to target: String) throws {
        try FileIO.makeDirectories(target)
        for dir in ["index", "diffid", "tree"] where FileIO.exists("\(source)/\(dir)") {
            try Command.check("/bin/cp", ["-a", "\(source)/\(dir)", "\(target)/\(dir)"])
        }
    }
}

/// `strata status --json MOUNTPOINT`, decoded.
struct StatusReport {
    let json: [String: Any]
    var layers: [[String: Any]] { json["layers"] as? [[String: Any]] ?? [] }

    static func read(_ mountpoint: String) throws -> StatusReport {
        let r = try StrataBinary.subcommand("status", ["--json", mountpoint])
        guard r.succeeded else { throw HarnessError("strata status \(mountpoint) failed (\(r.status)): \(r.stderr)") }
        let object = try JSONSerialization.jsonObject(with: Data(r.stdout))
        guard let json = object as? [String: Any] else { throw HarnessError("status is not an object: \(r.stdoutString)") }
        return StatusReport(json: json)
    }

    func layer(_ digest: Digest) -> [String: Any]? { layers.first { $0["digest"] as? String == digest.description } }
    func number(_ digest: Digest, _ key: String) -> UInt64 { (layer(digest)?[key] as? NSNumber)?.uint64Value ?? 0 }
    func text(_ digest: Digest, _ key: String) -> String? { layer(digest)?[key] as? String }
}
