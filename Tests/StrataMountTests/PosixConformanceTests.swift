#if canImport(Glibc)
import Glibc
#endif
import Testing
import StrataSystem
import StrataTestSupport

/// A differential conformance test: every scenario (Posix/PosixScenarios+*.swift) runs in a
/// fresh directory of the host's file system (the reference: ext4 here) and inside a strata
/// mount with an upper directory, in three placements, and must leave the same trace:
/// - upper: the scenario's directory and files are created through the mount (new entries);
/// - lower: they come from the image's layer (every change exercises copy-up);
/// - lowerdir: the directory comes from the image, the files are created through the mount.
/// STRATA_POSIX_ONLY=substring runs only the scenarios whose name contains it.
@Suite(.serialized, .mountTimeLimit) struct PosixConformanceTests {
    static let canRun = getuid() == 0 && StrataBinary.isBuilt

    enum Placement: String, CaseIterable { case upper, lower, lowerdir }

    static func selected() -> [PosixScenario] {
        let only = getenv("STRATA_POSIX_ONLY").map { String(cString: $0) } ?? ""
        return PosixScenarios.all.filter { only.isEmpty || $0.name.contains(only) }
    }

    static func directory(_ index: Int) -> String { "s\(index)" }

    @Test(.enabled(if: canRun, "needs root and a built strata")) func tracesMatchTheHostFileSystem() throws {
        let scenarios = Self.selected()
        #expect(Set(PosixScenarios.all.map(\.name)).count == PosixScenarios.all.count, "scenario names must be unique")
        let temp = try TempDirectory(prefix: "strata-test-posix-")
        defer { withExtendedLifetime(temp) {} }
        // The unprivileged steps must reach the host directory and the mount point.
        #expect(chmod(temp.path, 0o755) == 0)

        // The reference: the host file system.
        let host = temp.child("host")
        #expect(mkdir(host, 0o755) == 0)
        let reference = try Self.runAll(scenarios) { i, s in
            let base = host + "/" + Self.directory(i)
            try PosixSetup.materialize(s, at: base, makeBase: true)
            return base
        }

        // The image: the lower placement's directories with their files, the lowerdir's without.
        let builder = try ImageBuilder(layout: temp.child("layout"))
        var items = [Items.dir("l"), Items.dir("d")]
        for (i, s) in scenarios.enumerated() {
            items += PosixSetup.layerItems(s, base: "l/" + Self.directory(i), entries: true)
            items += PosixSetup.layerItems(s, base: "d/" + Self.directory(i), entries: false)
        }
        try builder.addLayer(entries: items)
        try builder.write(tag: "posix")
        let mnt = temp.child("mnt")
        let mount = try MountGuard(image: builder.reference("posix"), mountpoint: mnt,
                                   extraArgs: ["--cache", temp.child("cache"), "--upper", temp.child("upper"), "--allow-other"])
        defer { try? mount.unmount() }
        #expect(mkdir(mnt + "/u", 0o755) == 0)

        for placement in Placement.allCases {
            let traces = try Self.runAll(scenarios) { i, s in
                switch placement {
                case .upper:
                    let base = mnt + "/u/" + Self.directory(i)
                    try PosixSetup.materialize(s, at: base, makeBase: true)
                    return base
                case .lower:
                    return mnt + "/l/" + Self.directory(i)
                case .lowerdir:
                    let base = mnt + "/d/" + Self.directory(i)
                    try PosixSetup.materialize(s, at: base, makeBase: false)
                    return base
                }
            }
            for (i, s) in scenarios.enumerated() {
                Self.compare(s, placement, expected: reference[i], actual: traces[i])
            }
        }
        try mount.unmount()
    }

    /// What the host does but a strata mount cannot: these fail cleanly and leave nothing.
    /// O_TMPFILE: the kernel's FUSE client has no tmpfile operation (EOPNOTSUPP before the
    /// daemon is asked). RENAME_WHITEOUT is overlayfs's own business: refused (EINVAL).
    @Test(.enabled(if: canRun, "needs root and a built strata")) func tmpfileAndRenameWhiteoutFailCleanly() throws {
        let temp = try TempDirectory(prefix: "strata-test-posix-")
        defer { withExtendedLifetime(temp) {} }
        let builder = try ImageBuilder(layout: temp.child("layout"))
        try builder.addLayer(entries: [Items.dir("d"), Items.file("d/f", "f")])
        try builder.write(tag: "t")
        let mnt = temp.child("mnt"), upper = temp.child("upper")
        let mount = try MountGuard(image: builder.reference("t"), mountpoint: mnt,
                                   extraArgs: ["--cache", temp.child("cache"), "--upper", upper])
        defer { try? mount.unmount() }
        let oTmpfile: Int32 = 0o20000000 | O_DIRECTORY
        let fd = open(mnt + "/d", oTmpfile | O_RDWR, 0o600)
        let code = errno
        if fd >= 0 { close(fd) }
        #expect(fd < 0 && code == EOPNOTSUPP, "O_TMPFILE: fd \(fd), errno \(code)")
        #expect(PosixCalls.renameat2(mnt + "/d/f", mnt + "/d/g", 4) < 0 && errno == EINVAL)
        #expect(access(mnt + "/d/f", F_OK) == 0 && access(mnt + "/d/g", F_OK) != 0)
        try mount.unmount()
        // Nothing was made in the upper (no copy-up, no whiteout).
        let left = try Command.check("/usr/bin/find", [upper, "-mindepth", "1"]).stdoutString
        #expect(left == "", "upper: \(left)")
    }

    /// Runs each scenario on a thread of its own (the unprivileged steps change the thread's
    /// credentials); `prepare` puts its starting state in place and returns its directory.
    static func runAll(_ scenarios: [PosixScenario], prepare: @escaping (Int, PosixScenario) throws -> String) throws -> [[String]] {
        nonisolated(unsafe) var traces: [[String]] = []
        nonisolated(unsafe) var failure: Error?
        onOwnThread {
            do {
                for (i, s) in scenarios.enumerated() {
                    let trace = PosixTrace(base: try prepare(i, s))
                    s.steps(trace)
                    trace.finish()
                    traces.append(trace.lines)
                }
            } catch {
                failure = error
            }
        }
        if let failure { throw failure }
        return traces
    }

    static func compare(_ s: PosixScenario, _ placement: Placement, expected: [String], actual: [String]) {
        guard expected != actual else { return }
        let count = max(expected.count, actual.count)
        var report = ["\(placement.rawValue): \(s.name)"]
        for step in 0..<count {
            let e = step < expected.count ? expected[step] : "(nothing)"
            let a = step < actual.count ? actual[step] : "(nothing)"
            report.append(e == a ? "   \(step): \(e)" : "!! \(step): host:   \(e)\n         strata: \(a)")
        }
        Issue.record(Comment(rawValue: report.joined(separator: "\n")))
    }
}
