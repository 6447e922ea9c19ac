#if canImport(Glibc)
import Glibc
#endif
import Testing
import StrataSystem
import StrataTestSupport

/// A long seeded random sequence of file operations, applied to a strata mount with an upper
/// directory and to a plain copy of the extracted image; the two trees must stay equal.
@Suite(.serialized, .mountTimeLimit) struct UpperDifferentialTests {
    static let steps = 1200
    static let checkEvery = 200

    @Test func randomOperationsMatchAPlainDirectory() throws {
        let seed = UInt64(getenv("STRATA_DIFF_SEED").flatMap { UInt64(String(cString: $0)) } ?? 0x5eed_0001)
        let f = try UpperFixture()
        let reference = try f.extract("reference")
        if let failure = try Self.run(f, reference: reference, seed: seed, steps: Self.steps, checkEvery: Self.checkEvery) {
            // Shortest failing prefix: bisect between the last good check and the failing one.
            var good = failure.lastGood, bad = failure.step
            while bad - good > 1 {
                let mid = (good + bad) / 2
                let trial = try UpperFixture()
                let r = try trial.extract("reference")
                if try Self.run(trial, reference: r, seed: seed, steps: mid, checkEvery: mid) != nil { bad = mid } else { good = mid }
            }
            Issue.record("seed \(seed): trees differ; shortest failing prefix: \(bad) steps (last op: \(failure.log.last ?? ""))\n\(failure.differences.prefix(20).joined(separator: "\n"))")
        }
    }

    struct Failure { var step: Int; var lastGood: Int; var differences: [String]; var log: [String] }

    /// Runs `steps` operations; checks every `checkEvery` and at the end. nil when all agree.
    static func run(_ f: UpperFixture, reference: String, seed: UInt64, steps: Int, checkEvery: Int) throws -> Failure? {
        try f.mount()
        defer { try? f.unmount() }
        var rng = SplitMix(seed: seed)
        var log: [String] = []
        var lastGood = 0
        var succeeded = 0
        for step in 1...steps {
            let paths = try TreeSnapshot.capture(root: reference, hashContents: false)
            let op = Operation.random(&rng, paths: paths)
            let a = op.apply(root: reference), b = op.apply(root: f.mountpoint)
            log.append("\(op) -> \(a)/\(b)")
            if a == 0 { succeeded += 1 }
            if a != b {
                return Failure(step: step, lastGood: lastGood, differences: ["\(op): plain \(a), strata \(b)"], log: log)
            }
            if step % checkEvery == 0 || step == steps {
                let plain = try TreeSnapshot.capture(root: reference)
                let strata = try TreeSnapshot.capture(root: f.mountpoint)
                let d = strata.differences(from: plain, ignoring: [.mtime, .dirMtime, .dirNlink])
                if !d.isEmpty { return Failure(step: step, lastGood: lastGood, differences: d, log: log) }
                lastGood = step
            }
        }
        // The sequence must exercise the filesystem, not just collect errors.
        #expect(succeeded * 3 > steps, "only \(succeeded) of \(steps) operations succeeded")
        return nil
    }
}


/// One file operation on paths relative to a root; `apply` returns 0 or the errno.
enum Operation: CustomStringConvertible {
    case create(String), write(String, Int, Int), truncate(String, Int), rename(String, String)
    case unlink(String), mkdir(String), rmdir(String), link(String, String), symlink(String, String)
    case chmod(String, UInt32), setxattr(String, String)

    static func random(_ rng: inout SplitMix, paths snapshot: TreeSnapshot) -> Operation {
        let all = snapshot.paths.filter { $0 != "" && $0 != "." }
        let dirs = [""] + all.filter { snapshot.entry($0)?.type == .directory }
        let files = all.filter { snapshot.entry($0)?.type == .regular }
        func any() -> String { all.isEmpty ? "x" : all[rng.below(all.count)] }
        func file() -> String { files.isEmpty ? "x" : files[rng.below(files.count)] }
        func fresh() -> String {
            let d = dirs[rng.below(dirs.count)]
            return (d.isEmpty ? "" : d + "/") + "n\(rng.below(40))"
        }
        switch rng.below(12) {
        case 0: return .create(fresh())
        case 1, 2: return .write(file(), rng.below(4_000_000), 1 + rng.below(5000))
        case 3: return .truncate(file(), rng.below(10000))
        case 4: return .rename(any(), rng.below(3) == 0 ? any() : fresh())
        case 5: return .unlink(file())
        case 6: return .mkdir(fresh())
        case 7: return .rmdir(dirs[rng.below(dirs.count)])
        case 8: return .link(file(), fresh())
        case 9: return .symlink("target\(rng.below(5))", fresh())
        case 10: return .chmod(any(), UInt32([0o644, 0o600, 0o755, 0o700, 0o2755][rng.below(5)]))
        default: return .setxattr(any(), "v\(rng.below(100))")
        }
    }

    var description: String {
        switch self {
        case .create(let p): return "create \(p)"
        case .write(let p, let o, let n): return "write \(p) @\(o) +\(n)"
        case .truncate(let p, let n): return "truncate \(p) \(n)"
        case .rename(let a, let b): return "rename \(a) \(b)"
        case .unlink(let p): return "unlink \(p)"
        case .mkdir(let p): return "mkdir \(p)"
        case .rmdir(let p): return "rmdir \(p)"
        case .link(let a, let b): return "link \(a) \(b)"
        case .symlink(let t, let p): return "symlink \(t) \(p)"
        case .chmod(let p, let m): return "chmod \(p) \(String(m, radix: 8))"
        case .setxattr(let p, let v): return "setxattr \(p) \(v)"
        }
    }

    func apply(root: String) -> Int32 {
        func at(_ p: String) -> String { p.isEmpty ? root : root + "/" + p }
        func result(_ r: Int32) -> Int32 { r == 0 ? 0 : errno }
        switch self {
        case .create(let p):
            let fd = open(at(p), O_CREAT | O_EXCL | O_WRONLY, 0o644)
            if fd < 0 { return errno }
            close(fd); return 0
        case .write(let p, let offset, let count):
            let fd = open(at(p), O_WRONLY)
            if fd < 0 { return errno }
            defer { close(fd) }
            let bytes = (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ offset) }
            return pwrite(fd, bytes, count, off_t(offset)) == count ? 0 : errno
        case .truncate(let p, let n): return result(Glibc.truncate(at(p), off_t(n)))
        case .rename(let a, let b): return result(Glibc.rename(at(a), at(b)))
        case .unlink(let p): return result(Glibc.unlink(at(p)))
        case .mkdir(let p): return result(Glibc.mkdir(at(p), 0o755))
        case .rmdir(let p): return p.isEmpty ? EBUSY : result(Glibc.rmdir(at(p)))
        case .link(let a, let b): return result(Glibc.link(at(a), at(b)))
        case .symlink(let t, let p): return result(Glibc.symlink(t, at(p)))
        case .chmod(let p, let m):
            var st = stat()
            if lstat(at(p), &st) == 0 && st.st_mode & S_IFMT == S_IFLNK { return 0 }
            return result(Glibc.chmod(at(p), m))
        case .setxattr(let p, let v):
            return result(LinuxCalls.lsetxattr(at(p), "user.d", v, v.utf8.count, 0))
        }
    }
}
