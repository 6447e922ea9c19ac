/// A man page (roff, man(7) macros) made from a command's `--help` text, so the two never
/// disagree: the `usage:` lines become SYNOPSIS, the first paragraph gives NAME's summary,
/// option lines (`  --name ARG   text`) become tagged paragraphs, the rest stays as written.
enum ManPage {
    static func render(command: String?, help: String) -> String {
        let name = command.map { "strata-\($0)" } ?? "strata"
        var lines = help.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        var synopsis: [String] = []
        while let first = lines.first, first.hasPrefix("usage: ") || (!synopsis.isEmpty && first.hasPrefix(" ") && !first.trimmingWhitespace.isEmpty) {
            let text = first.hasPrefix("usage: ") ? String(first.dropFirst(7)) : first.trimmingWhitespace
            synopsis.append(text)
            lines.removeFirst()
        }
        while lines.first?.trimmingWhitespace.isEmpty == true { lines.removeFirst() }
        let summary = lines.prefix { !$0.trimmingWhitespace.isEmpty }.joined(separator: " ").trimmingWhitespace
        let firstSentence = summary.split(separator: ".", maxSplits: 1).first.map(String.init) ?? summary

        var out: [String] = []
        out.append(".TH \(name.uppercased()) 1 \"\" \"strata \(VersionCommand.version)\" \"Strata Manual\"")
        out.append(".SH NAME")
        out.append("\(escape(name)) \\- \(escape(firstSentence.lowercasedFirst))")
        out.append(".SH SYNOPSIS")
        out.append(".nf")
        out += synopsis.map(escape)
        out.append(".fi")
        out.append(".SH DESCRIPTION")
        var inParagraph = false
        for line in lines {
            let trimmed = line.trimmingWhitespace
            if trimmed.isEmpty {
                out.append(".PP")
                inParagraph = false
                continue
            }
            let indent = line.prefix { $0 == " " }.count
            if indent >= 2, indent <= 6, trimmed.hasPrefix("-") || isSubcommand(trimmed, indent: indent),
               let split = gap(in: trimmed) {
                // "  --option ARG     description": the tag, then its text.
                out.append(".TP")
                out.append(escape(String(trimmed[..<split])))
                out.append(escape(String(trimmed[split...]).trimmingWhitespace))
                inParagraph = true
                continue
            }
            if indent == 2, trimmed.first?.isLowercase == true, gap(in: trimmed) == nil {
                // A subcommand too long for its text to follow on the same line.
                out.append(".TP")
                out.append(escape(trimmed))
                inParagraph = true
                continue
            }
            if trimmed.hasSuffix(":") && !inParagraph && indent == 0 {
                out.append(".SS \(escape(String(trimmed.dropLast())))")
                continue
            }
            out.append(escape(trimmed))
            inParagraph = true
        }
        return out.joined(separator: "\n")
    }

    /// Where the first run of three spaces starts (between an option and its text).
    private static func gap(in text: String) -> String.Index? {
        var run = 0
        var index = text.startIndex
        while index < text.endIndex {
            run = text[index] == " " ? run + 1 : 0
            if run == 3 { return text.index(index, offsetBy: -2) }
            index = text.index(after: index)
        }
        return nil
    }

    /// `  prepare [--label K=V]... KEY   text` in the snapshot help: a subcommand row.
    private static func isSubcommand(_ text: String, indent: Int) -> Bool {
        indent == 2 && (text.first?.isLowercase ?? false) && gap(in: text) != nil
    }

    /// Backslashes doubled; a line must not start with a control character (. or ').
    static func escape(_ text: String) -> String {
        var s = text.replacingAll("\\", with: "\\e").replacingAll("-", with: "\\-")
        if s.hasPrefix(".") || s.hasPrefix("'") { s = "\\&" + s }
        return s
    }
}

extension String {
    func replacingAll(_ target: Character, with replacement: String) -> String {
        var out = ""
        for c in self { if c == target { out += replacement } else { out.append(c) } }
        return out
    }

    var lowercasedFirst: String {
        guard let first, !(dropFirst().first?.isUppercase ?? false) else { return self }
        return first.lowercased() + dropFirst()
    }
}
