import StrataFS
import StrataRemote
import StrataSystem

/// `--background-fetch=on|off` and `--background-rate BYTES` of `strata mount`.
struct BackgroundOptions {
    static let defaultRate: UInt64 = 20 << 20

    var enabled = true
    /// nil: no cap.
    var bytesPerSecond: UInt64? = BackgroundOptions.defaultRate

    init(_ a: Arguments) throws {
        if let value = a["--background-fetch"] {
            switch value {
            case "on": enabled = true
            case "off": enabled = false
            default: throw CLIError("--background-fetch=\(value): not on or off", usage: true)
            }
        }
        if let text = a["--background-rate"] {
            guard let rate = Self.parseBytes(text) else {
                throw CLIError("--background-rate \(text): not a number of bytes (K, M, G suffixes allowed)", usage: true)
            }
            bytesPerSecond = rate == 0 ? nil : rate
        }
    }

    /// What the daemon is given.
    var arguments: [String] {
        ["--background-fetch=\(enabled ? "on" : "off")", "--background-rate", "\(bytesPerSecond ?? 0)"]
    }

    static func parseBytes(_ text: String) -> UInt64? {
        var digits = Substring(text)
        var shift: UInt64 = 0
        switch digits.last {
        case "K", "k": shift = 10
        case "M", "m": shift = 20
        case "G", "g": shift = 30
        default: break
        }
        if shift > 0 { digits = digits.dropLast() }
        guard let n = UInt64(digits) else { return nil }
        return n << shift
    }
}

/// The daemon's log, for StrataRemote's messages.
enum RemoteLogging {
    static let daemon = RemoteLog(error: { Log.error($0) }, warn: { Log.warn($0) }, info: { Log.info($0) })
    /// A command's: one line on stderr per error or warning.
    static let command = RemoteLog(error: { writeStandardError("strata: \($0)\n") },
                                   warn: { writeStandardError("strata: \($0)\n") }, info: { _ in })
}
