#if canImport(Glibc)
import Glibc
#endif

/// Lets go of the clean file pages a process mapped while it started (its program's and
/// libraries' code and read-only data it will not touch again): they stay in the page cache,
/// shared with every other process that maps them, and come back on the next access. A
/// long-lived, mostly idle process (a mount's supervisor) then shows as resident only what it
/// uses. Only mappings that are not writable and hold no private dirty or anonymous page are
/// dropped: nothing is lost (relocated data, made read-only afterwards, is private dirty and
/// stays).
public enum CleanPages {
    /// Returns the kilobytes of mappings dropped.
    @discardableResult
    public static func dropUnused() -> Int {
        guard let bytes = try? FileIO.readAll("/proc/self/smaps") else { return 0 }
        var dropped = 0
        var current: (start: UInt, end: UInt, droppable: Bool)?
        var privateDirty = 0, anonymous = 0
        func finish() {
            guard let mapping = current, mapping.droppable, privateDirty == 0, anonymous == 0 else { return }
            let length = Int(mapping.end - mapping.start)
            if madvise(UnsafeMutableRawPointer(bitPattern: mapping.start), length, MADV_DONTNEED) == 0 {
                dropped += length / 1024
            }
        }
        for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard let first = fields.first else { continue }
            if first.contains("-"), !first.hasSuffix(":"), fields.count >= 5 {
                finish()
                let range = first.split(separator: "-")
                let permissions = fields[1]
                let path = fields.count >= 6 ? String(fields[5]) : ""
                guard range.count == 2, let start = UInt(range[0], radix: 16), let end = UInt(range[1], radix: 16) else {
                    current = nil
                    continue
                }
                // A file's private mapping, readable and not writable (code, read-only data).
                let droppable = path.hasPrefix("/") && permissions.hasPrefix("r") && !permissions.contains("w")
                    && permissions.hasSuffix("p")
                current = (start, end, droppable)
                privateDirty = 0
                anonymous = 0
            } else if first == "Private_Dirty:", fields.count >= 2 {
                privateDirty = Int(fields[1]) ?? 1
            } else if first == "Anonymous:", fields.count >= 2 {
                anonymous = Int(fields[1]) ?? 1
            }
        }
        finish()
        return dropped
    }
}
