#if canImport(Glibc)
import Glibc
#endif
import StrataSystem

public struct HarnessError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// The built `strata` executable the integration tests drive.
public enum StrataBinary {
    /// The package root, found from this file's own path: Sources/StrataTestSupport/ is
    /// two levels below it. Tests then work whatever directory `swift test` runs from.
    public static var packageRoot: String {
        var parts = "\(#filePath)".split(separator: "/", omittingEmptySubsequences: false)
        parts.removeLast(3)
        return parts.joined(separator: "/")
    }

    /// `STRATA_BIN` when set, else `.build/debug/strata` under the package root.
    public static func path() throws -> String {
        if let value = getenv("STRATA_BIN"), value.pointee != 0 {
            let path = String(cString: value)
            guard access(path, X_OK) == 0 else { throw HarnessError("STRATA_BIN=\(path) is not executable") }
            return path
        }
        let path = packageRoot + "/.build/debug/strata"
        guard access(path, X_OK) == 0 else {
            throw HarnessError("\(path) not found: run `swift build` (the tests need the strata binary) or set STRATA_BIN")
        }
        return path
    }

    public static var isBuilt: Bool { (try? path()) != nil }

    /// Runs `strata SUBCOMMAND ARGS...`: the form the dependency check (`check-deps`, which
    /// reads a quoted first argument of `run` as a program to install) does not take for one.
    public static func subcommand(_ name: String, _ args: [String] = [], timeout: Double = 120) throws -> CommandResult {
        try run([name] + args, timeout: timeout)
    }

    /// Runs `strata ARGS...`; `environment` adds to (or overrides) the test process's own.
    public static func run(_ args: [String], environment: [String: String] = [:], timeout: Double = 120) throws -> CommandResult {
        if environment.isEmpty { return try Command.run(try path(), args, timeout: timeout) }
        var merged: [String: String] = [:]
        var index = 0
        while let entry = environ[index] {
            let text = String(cString: entry)
            if let equals = text.firstIndex(of: "=") { merged[String(text[..<equals])] = String(text[text.index(after: equals)...]) }
            index += 1
        }
        merged.merge(environment) { _, new in new }
        return try Command.run(try path(), args, environment: merged, timeout: timeout)
    }
}
