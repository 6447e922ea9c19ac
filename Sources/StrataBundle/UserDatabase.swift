/// The image's own /etc/passwd and /etc/group, parsed the way libc's files backend reads
/// them: `name:password:uid:gid:...` and `name:password:gid:member,member`. Blank lines,
/// comments and NIS `+`/`-` lines are skipped; so is a line too short or with a
/// non-numeric id (glibc skips those too), but only until it is the line a lookup needs:
/// `entry(named:)` reports the broken line instead of pretending the user is absent.
struct PasswdEntry: Equatable {
    var name: String
    var uid: UInt32
    var gid: UInt32
    /// The sixth field; empty when the line has none.
    var home: String = ""
}

struct GroupEntry: Equatable {
    var name: String
    var gid: UInt32
    var members: [String]
}

struct UserDatabase {
    /// Parsed entries in file order (the first match wins, as with getpwnam).
    var users: [PasswdEntry] = []
    var groups: [GroupEntry] = []
    /// Lines that did not parse, by the name in their first field: a lookup of that name
    /// fails with the line number instead of "no such user".
    var brokenUsers: [String: Int] = [:]
    var brokenGroups: [String: Int] = [:]
    var hasPasswd: Bool
    var hasGroup: Bool

    init(passwd: [UInt8]?, group: [UInt8]?) {
        hasPasswd = passwd != nil
        hasGroup = group != nil
        for (number, fields) in UserDatabase.lines(passwd) {
            if fields.count >= 4, let uid = IDParser.parse(fields[2]), let gid = IDParser.parse(fields[3]) {
                users.append(PasswdEntry(name: fields[0], uid: uid, gid: gid, home: fields.count >= 6 ? fields[5] : ""))
            } else if brokenUsers[fields[0]] == nil {
                brokenUsers[fields[0]] = number
            }
        }
        for (number, fields) in UserDatabase.lines(group) {
            if fields.count >= 3, let gid = IDParser.parse(fields[2]) {
                let members = fields.count >= 4 ? fields[3].split(separator: ",").map { String($0) } : []
                groups.append(GroupEntry(name: fields[0], gid: gid, members: members))
            } else if brokenGroups[fields[0]] == nil {
                brokenGroups[fields[0]] = number
            }
        }
    }

    func user(named name: String) -> PasswdEntry? { users.first { $0.name == name } }
    func user(withUID uid: UInt32) -> PasswdEntry? { users.first { $0.uid == uid } }
    func group(named name: String) -> GroupEntry? { groups.first { $0.name == name } }

    /// The gids of the groups that list `name` as a member, ascending, without duplicates.
    func supplementaryGIDs(of name: String) -> [UInt32] {
        Array(Set(groups.filter { $0.members.contains(name) }.map(\.gid))).sorted()
    }

    /// (1-based line number, fields) of the lines that carry an entry.
    private static func lines(_ bytes: [UInt8]?) -> [(Int, [String])] {
        guard let bytes else { return [] }
        var out: [(Int, [String])] = []
        // Split bytes, not Characters: "\r\n" is one Character and would hide the line break.
        for (i, raw) in bytes.split(separator: 0x0a, omittingEmptySubsequences: false).enumerated() {
            let line = raw.last == 0x0d ? raw.dropLast() : raw
            guard let first = line.first, first != UInt8(ascii: "#"), first != UInt8(ascii: "+"),
                  first != UInt8(ascii: "-") else { continue }
            let fields = line.split(separator: UInt8(ascii: ":"), omittingEmptySubsequences: false)
                .map { String(decoding: $0, as: UTF8.self) }
            out.append((i + 1, fields))
        }
        return out
    }
}

/// Decimal uids and gids as the kernel takes them: 0...2^32-2 (2^32-1 is the "no id" -1).
enum IDParser {
    static func parse(_ text: String) -> UInt32? {
        guard !text.isEmpty, text.utf8.count <= 10, text.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }),
              let value = UInt64(text), value < UInt64(UInt32.max) else { return nil }
        return UInt32(value)
    }

    /// True when the text looks numeric at all, so "99999999999" is a bad id, not a name.
    static func looksNumeric(_ text: String) -> Bool {
        !text.isEmpty && text.utf8.allSatisfy { $0 >= 48 && $0 <= 57 }
    }
}
