import Foundation
import Glibc
import StrataSystem
import StrataTestSupport
import Testing

/// The commands every `--help` describes, in the order `strata --help` lists them.
let allCommands = ["mount", "unmount", "restart", "index", "inspect", "bundle", "commit", "convert", "snapshot", "gc", "store", "status", "version"]

/// The usage forms of a help text: each `usage:` line and each further `strata ...` line of
/// its synopsis, with continuation lines joined and runs of spaces made one.
func usageForms(_ help: String) -> [String] {
    var forms: [String] = []
    var inSynopsis = false
    for line in help.split(separator: "\n", omittingEmptySubsequences: false) {
        var text = line.trimmingCharacters(in: .whitespaces)
        if text.hasPrefix("usage: ") {
            inSynopsis = true
            text.removeFirst(7)
            forms.append(text)
        } else if inSynopsis && text.isEmpty {
            inSynopsis = false
        } else if inSynopsis && text.hasPrefix("strata ") {
            forms.append(text)
        } else if inSynopsis, !forms.isEmpty {
            forms[forms.count - 1] += " " + text
        }
    }
    return forms.map(normalized)
}

func normalized(_ text: String) -> String {
    text.split(separator: " ", omittingEmptySubsequences: true).joined(separator: " ")
}

/// The README's synopsis: the indented block of `## Command line`, continuation lines joined.
func readmeSynopsis() throws -> [String] {
    let readme = String(decoding: try FileIO.readAll(StrataBinary.packageRoot + "/README.md"), as: UTF8.self)
    let lines = readme.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
    let start = try #require(lines.firstIndex(of: "## Command line"), "README has no '## Command line' section")
    var forms: [String] = []
    var index = start + 1
    while index < lines.count, !lines[index].hasPrefix("## ") {
        let line = lines[index]
        index += 1
        guard line.hasPrefix("    ") else { continue }
        let text = line.trimmingCharacters(in: .whitespaces)
        if text.hasPrefix("strata ") { forms.append(text) } else if !forms.isEmpty { forms[forms.count - 1] += " " + text }
    }
    return forms.map(normalized)
}

@Suite("Command-line conventions: version, help, exit status, --json, README synopsis")
struct CLIConventionTests {
    @Test func versionNamesEveryComponent() throws {
        let long = try StrataBinary.run(["--version"])
        let short = try StrataBinary.subcommand("version")
        #expect(long.status == 0 && short.status == 0, "\(long.stderr) \(short.stderr)")
        #expect(long.stdoutString == short.stdoutString)
        let lines = long.stdoutString.split(separator: "\n").map(String.init)
        #expect(lines.first?.hasPrefix("strata 0.3.0") == true)
        for field in ["commit", "index format", "merged tree format", "libfuse", "zlib", "zstd", "isa-l", "kernel",
                      "fuse passthrough", "fuse io_uring"] {
            let line = lines.first { $0.hasPrefix(field + "  ") }
            #expect(line != nil, "no \(field) line in \(long.stdoutString)")
        }
        // Runtime versions, not placeholders: libfuse 3.x, zlib 1.x, zstd 1.x, isa-l 2.x.
        for (field, major) in [("libfuse", "3."), ("zlib", "1."), ("zstd", "1."), ("isa-l", "2.")] {
            let value = lines.first { $0.hasPrefix(field + "  ") }?.dropFirst(field.count).trimmingCharacters(in: .whitespaces)
            #expect(value?.hasPrefix(major) == true, "\(field): \(value ?? "missing")")
        }
        #expect(lines.contains { $0.hasPrefix("index format") && $0.hasSuffix(" 8") })
        #expect(lines.contains { $0.hasPrefix("merged tree format") && $0.hasSuffix(" 3") })
    }

    /// A commit file beside the binary (scripts/test and scripts/install write one) is shown.
    @Test func versionShowsTheRecordedCommit() throws {
        let tmp = try TempDirectory()
        defer { withExtendedLifetime(tmp) {} }
        let copy = tmp.child("strata")
        try FileIO.writeAtomically(copy, try FileIO.readAll(try StrataBinary.path()), mode: 0o755)
        try FileIO.writeAtomically(tmp.child("strata-commit"), Array("0123456789abcdef0123456789abcdef01234567\n".utf8))
        let r = try Command.run(copy, ["--version"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdoutString.contains("commit              0123456789abcdef0123456789abcdef01234567"), "\(r.stdoutString)")
        try FileIO.writeAtomically(tmp.child("strata-commit"), [])
        #expect(try Command.run(copy, ["--version"]).stdoutString.contains("commit              unknown"))
    }

    @Test(arguments: allCommands)
    func everyHelpStatesTheExitStatus(_ command: String) throws {
        let r = try StrataBinary.run([command, "--help"])
        #expect(r.status == 0)
        #expect(r.stdoutString.contains("exit status: 0 success, 1 failure"), "\(command) --help")
        #expect(r.stdoutString.contains("2 usage error"), "\(command) --help")
    }

    @Test func usageErrorsExitTwoAndFailuresOne() throws {
        let tmp = try TempDirectory()
        defer { withExtendedLifetime(tmp) {} }
        #expect(try StrataBinary.run([]).status == 2)
        #expect(try StrataBinary.subcommand("frobnicate").status == 2)
        #expect(try StrataBinary.run(["inspect", "--no-such-option", "x"]).status == 2)
        #expect(try StrataBinary.run(["inspect"]).status == 2)
        #expect(try StrataBinary.run(["mount", "--log-level", "loud", "a", "b"]).status == 2)
        #expect(try StrataBinary.run(["bundle", "--remove", "--read-only", "b"]).status == 2)
        let missing = try StrataBinary.run(["inspect", tmp.child("no-layout")])
        #expect(missing.status == 1)
        #expect(missing.stderr.split(separator: "\n").count == 1)
        #expect(try StrataBinary.run(["help", "mount"]).stdoutString.hasPrefix("usage: strata mount"))
    }

    /// Man pages are made from the help text: every option of `mount --help` is in the page.
    @Test func manPagesComeFromTheHelpText() throws {
        let page = try StrataBinary.run(["help", "--man", "mount"])
        #expect(page.status == 0)
        #expect(page.stdoutString.hasPrefix(".TH STRATA-MOUNT 1"))
        #expect(page.stdoutString.contains(".SH SYNOPSIS"))
        for option in ["--cache", "--upper", "--log", "--log-level", "--stats"] {
            #expect(page.stdoutString.contains(option.replacingOccurrences(of: "-", with: "\\-")), "\(option)")
        }
        let main = try StrataBinary.run(["help", "--man"])
        #expect(main.stdoutString.hasPrefix(".TH STRATA 1"))
        #expect(try StrataBinary.run(["help", "--man", "nonsense"]).status == 2)
    }

    /// Every usage form of every command's --help is in the README's synopsis, options and
    /// all, and the synopsis shows no form the binary does not have.
    @Test func readmeSynopsisMatchesEveryHelp() throws {
        let synopsis = try readmeSynopsis()
        var helpForms: [String] = []
        for command in allCommands {
            let r = try StrataBinary.run([command, "--help"])
            let forms = usageForms(r.stdoutString)
            #expect(!forms.isEmpty, "\(command) --help has no usage line")
            helpForms += forms
            for form in forms {
                let listed = synopsis.contains(form)
                #expect(listed, "README synopsis lacks: \(form)")
            }
        }
        for form in synopsis {
            let known = helpForms.contains(form)
            #expect(known, "README synopsis shows what no --help has: \(form)")
        }
    }
}
