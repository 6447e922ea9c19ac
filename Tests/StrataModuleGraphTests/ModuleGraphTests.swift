import Testing
import StrataSystem
import StrataTestSupport

/// The README's module table (under the Architecture diagram), Package.swift and every import
/// of Sources/ agree: scripts/check-imports, run on this repository and on small trees it must reject.
@Suite struct ModuleGraphTests {
    /// The repository holding this file (Tests/StrataModuleGraphTests/ModuleGraphTests.swift).
    static let repo: String = {
        var parts = "\(#filePath)".split(separator: "/", omittingEmptySubsequences: false)
        parts.removeLast(3)
        return parts.joined(separator: "/")
    }()

    static func check(_ repo: String) throws -> CommandResult {
        try Command.run("python3", [ModuleGraphTests.repo + "/scripts/check-imports", "--repo", repo], timeout: 120)
    }

    @Test func importsAreEdgesOfTheReadmeTable() throws {
        let result = try Self.check(Self.repo)
        #expect(result.succeeded, "\(result.stdoutString)\(result.stderr)")
        #expect(result.stdoutString.isEmpty)
    }

    /// A tree with one module of each kind: `Low` (owns `CLow`), `High` → `Low`.
    static func makeTree(_ dir: TempDirectory, highImports: [String], table: String? = nil,
                         highDependencies: String = "\"Low\"") throws -> String {
        let root = dir.path
        try dir.makeDirectory("Sources/Low")
        try dir.makeDirectory("Sources/High")
        try FileIO.writeAtomically(root + "/Sources/Low/Low.swift", Array("import Glibc\npublic let low = 1\n".utf8))
        let body = highImports.map { "import \($0)\n" }.joined() + "let high = low\n"
        try FileIO.writeAtomically(root + "/Sources/High/High.swift", Array(body.utf8))
        let rows = table ?? "| `High` | `Low` |\n| `Low` | |\n"
        let readme = "# T\n\n<!-- module-graph:begin -->\n| module | may import |\n| --- | --- |\n\(rows)<!-- module-graph:end -->\n"
        try FileIO.writeAtomically(root + "/README.md", Array(readme.utf8))
        let package = """
            let package = Package(name: "T", targets: [
                .target(name: "Low"),
                .target(name: "High", dependencies: [\(highDependencies)]),
            ])

            """
        try FileIO.writeAtomically(root + "/Package.swift", Array(package.utf8))
        return root
    }

    @Test func aTreeThatHoldsPasses() throws {
        let dir = try TempDirectory()
        let result = try Self.check(Self.makeTree(dir, highImports: ["Glibc", "Low"]))
        #expect(result.succeeded, "\(result.stdoutString)\(result.stderr)")
    }

    @Test func anImportAgainstTheTableIsNamedByFileAndLine() throws {
        let dir = try TempDirectory()
        try Self.makeTree(dir, highImports: ["Low"])
        try FileIO.writeAtomically(dir.path + "/Sources/Low/Low.swift",
                                   Array("import Glibc\n@testable import High\npublic let low = 1\n".utf8))
        let result = try Self.check(dir.path)
        #expect(result.status == 1)
        #expect(result.stdoutString.contains("Sources/Low/Low.swift:2: imports High, not an edge Low → High"))
    }

    @Test func aCModuleOutsideItsOwnerIsRefused() throws {
        let dir = try TempDirectory()
        let root = try Self.makeTree(dir, highImports: ["Low", "CZlib"],
                                     table: "| `High` | `Low` `CZlib` |\n| `Low` | |\n",
                                     highDependencies: "\"Low\", \"CZlib\"")
        let result = try Self.check(root)
        #expect(result.status == 1)
        #expect(result.stdoutString.contains("Sources/High/High.swift:2: imports CZlib, a C module only StrataCodec may import"))
    }

    @Test func packageDependenciesMustMatchTheTable() throws {
        let dir = try TempDirectory()
        let root = try Self.makeTree(dir, highImports: ["Low"], highDependencies: "")
        let result = try Self.check(root)
        #expect(result.status == 1)
        #expect(result.stdoutString.contains("Sources/High/High.swift:1: imports Low, not a dependency of High in Package.swift"))
        #expect(result.stdoutString.contains("Package.swift: dependencies of High differ from the README's module table (table only: Low)"))
    }

    @Test func aCycleIsRefused() throws {
        let dir = try TempDirectory()
        let root = try Self.makeTree(dir, highImports: ["Low"], table: "| `High` | `Low` |\n| `Low` | `High` |\n")
        let result = try Self.check(root)
        #expect(result.status == 1)
        #expect(result.stdoutString.contains("module table has a cycle"))
    }
}
