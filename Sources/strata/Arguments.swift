/// A small command-line parser: `--name value`, `--name=value`, flags, positionals, `--` ends
/// options. Each command declares what it takes, so unknown options are errors, not ignored.
struct Arguments {
    var options: [String: String] = [:]
    /// Every value of each valued option, in order (`options` keeps the last).
    var values: [String: [String]] = [:]
    var flags: Set<String> = []
    var positionals: [String] = []

    struct Spec {
        var valued: Set<String>
        var flags: Set<String>
    }

    init(_ args: ArraySlice<String>, spec: Spec) throws(CLIError) {
        var i = args.startIndex
        var onlyPositionals = false
        while i < args.endIndex {
            let arg = args[i]
            i += 1
            if onlyPositionals || !arg.hasPrefix("-") || arg == "-" {
                positionals.append(arg)
                continue
            }
            if arg == "--" { onlyPositionals = true; continue }
            var name = arg
            var inlineValue: String?
            if let eq = arg.firstIndex(of: "=") {
                name = String(arg[..<eq])
                inlineValue = String(arg[arg.index(after: eq)...])
            }
            if spec.flags.contains(name) {
                guard inlineValue == nil else { throw CLIError("option \(name) takes no value", usage: true) }
                flags.insert(name)
            } else if spec.valued.contains(name) {
                if let inlineValue {
                    options[name] = inlineValue
                } else {
                    guard i < args.endIndex else { throw CLIError("option \(name) needs a value", usage: true) }
                    options[name] = args[i]
                    i += 1
                }
                values[name, default: []].append(options[name]!)
            } else {
                throw CLIError("unknown option \(name)", usage: true)
            }
        }
    }

    func has(_ flag: String) -> Bool { flags.contains(flag) }
    subscript(_ name: String) -> String? { options[name] }
    /// All values of a repeatable option (`--env A=1 --env B=2`).
    func all(_ name: String) -> [String] { values[name] ?? [] }
}

struct CLIError: Error, CustomStringConvertible {
    var message: String
    /// A usage error (exit status 2): an unknown option, a missing or extra argument.
    var usage: Bool
    init(_ message: String, usage: Bool = false) {
        self.message = message
        self.usage = usage
    }
    var description: String { message }

    /// Usage errors are the parser's and those that send the user to `--help`: every
    /// command's "needs IMAGE and MOUNTPOINT (see strata mount --help)" and the like.
    static func isUsage(_ error: any Error) -> Bool {
        guard let error = error as? CLIError else { return false }
        return error.usage || error.message.hasSuffix("--help)")
            || error.message.contains("does not go with") || error.message.contains("exclude each other")
    }
}
