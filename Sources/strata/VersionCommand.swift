import StrataCodec
import StrataFuse
import StrataIndex
import StrataSystem
import StrataUnion
#if canImport(Glibc)
import Glibc
#endif

enum VersionCommand {
    /// The release; the commit comes from the build (see `commit`).
    static let version = "0.3.0"

    static let help = """
    usage: strata version
           strata --version

    Prints strata's version, the git commit it was built from, the index and merged-tree file
    formats it reads and writes, the versions of libfuse, zlib and zstd loaded now and of isa-l
    built against, the running kernel, and whether the kernel offers FUSE passthrough and FUSE
    over io_uring (strata uses neither yet: libfuse 3.14 has no API for them).
    \(ExitCodes.help)
    """

    static func run(_ args: ArraySlice<String>) throws {
        let a = try Arguments(args, spec: .init(valued: [], flags: []))
        guard a.positionals.isEmpty else { throw CLIError("version takes no arguments (see strata version --help)") }
        print(report())
    }

    static func report() -> String {
        let kernel = KernelFeatures.probe()
        let fuse = FuseLibraryVersion.loaded
        let rows: [(String, String)] = [
            ("commit", commit ?? "unknown (not recorded: built without scripts/install or scripts/test)"),
            ("index format", "\(indexFormatVersion)"),
            ("merged tree format", "\(mergedTreeFormatVersion)"),
            ("libfuse", fuse),
            ("zlib", CodecVersions.zlib),
            ("zstd", CodecVersions.zstd),
            ("isa-l", CodecVersions.isal + " (headers built against)"),
            ("kernel", kernel.release),
            ("fuse passthrough", "kernel: \(kernel.passthrough); libfuse \(fuse): \(atLeast(fuse, 3, 16) ? "yes" : "no (needs 3.16)"); not used by strata"),
            ("fuse io_uring", "kernel: \(kernel.ioUring); libfuse \(fuse): \(atLeast(fuse, 3, 18) ? "yes" : "no (needs 3.18)"); not used by strata"),
        ]
        let width = rows.map(\.0.count).max() ?? 0
        return (["strata \(version)"] + rows.map { $0.0 + String(repeating: " ", count: width - $0.0.count + 2) + $0.1 })
            .joined(separator: "\n")
    }

    static func atLeast(_ version: String, _ major: Int, _ minor: Int) -> Bool {
        let parts = version.split(separator: ".").compactMap { Int($0) }
        guard parts.count >= 2 else { return false }
        return (parts[0], parts[1]) >= (major, minor)
    }

    /// The git commit, recorded by scripts/install and scripts/test in a file beside the
    /// binary (`strata-commit`) or in PREFIX/lib/strata/commit: a plain `swift build` has none.
    static var commit: String? {
        guard let exe = executablePath() else { return nil }
        let dir = exe.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
        for candidate in [dir + "/strata-commit", dir + "/../lib/strata/commit"] {
            if let bytes = try? FileIO.readAll(candidate) {
                let text = String(decoding: bytes, as: UTF8.self).trimmingWhitespace
                if !text.isEmpty { return text }
            }
        }
        return nil
    }

    static func executablePath() -> String? {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard n > 0 else { return nil }
        return String(decoding: buffer.prefix(n).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// The exit status every command ends with, listed at the end of each `--help`.
enum ExitCodes {
    static let help = """

    exit status: 0 success, 1 failure (one line on stderr names the file, digest or entry at
    fault), 2 usage error (unknown command or option, missing argument).
    """
}
