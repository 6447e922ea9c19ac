import Testing
@testable import StrataBundle

private let passwd = Array("""
root:x:0:0:root:/root:/bin/sh
# a comment, then a blank line

daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
app:x:1000:1000:App:/home/app:/bin/sh
other:x:1001:100::/home/other:/bin/sh
broken:x:notanumber:1::/:/bin/sh
+nisuser::::::
app:x:2000:2000:second app entry, never used:/:/bin/sh
""".utf8)

private let group = Array("""
root:x:0:
users:x:100:other
app:x:1000:app
audio:x:29:app,other
video:x:44:other,app
wheel:x:10:app
dupe:x:29:app
badgroup:x:nope:app
""".utf8)

private func resolve(_ user: String?, passwd p: [UInt8]? = passwd, group g: [UInt8]? = group) throws -> RuntimeSpec.User {
    try UserResolver.resolve(user, passwd: p, group: g)
}

private func message(_ body: () throws -> Void) -> String {
    do { try body() } catch { return "\(error)" }
    return "(no error)"
}

@Test func emptyUserIsRoot() throws {
    #expect(try resolve(nil) == .init(uid: 0, gid: 0))
    #expect(try resolve("") == .init(uid: 0, gid: 0))
    #expect(try resolve(nil, passwd: nil, group: nil) == .init(uid: 0, gid: 0))
}

@Test func nameTakesPasswdIDsAndMemberGroups() throws {
    // audio (29) and dupe (29) collapse; the primary group app (1000) is left out; sorted.
    #expect(try resolve("app") == .init(uid: 1000, gid: 1000, additionalGids: [10, 29, 44]))
    // Primary gid 100 is "users", which lists other: not repeated among the additional.
    #expect(try resolve("other") == .init(uid: 1001, gid: 100, additionalGids: [29, 44]))
    #expect(try resolve("root") == .init(uid: 0, gid: 0))
    // Without /etc/group a name still resolves, with no additional groups.
    #expect(try resolve("app", group: nil) == .init(uid: 1000, gid: 1000))
}

@Test func numericUserIsVerbatim() throws {
    // In passwd: its primary gid; conversion.md: no additionalGids for a numeric user.
    #expect(try resolve("1000") == .init(uid: 1000, gid: 1000))
    // Not in passwd, or no passwd at all: gid 0.
    #expect(try resolve("4242") == .init(uid: 4242, gid: 0))
    #expect(try resolve("4242", passwd: nil, group: nil) == .init(uid: 4242, gid: 0))
    #expect(try resolve("1000:44") == .init(uid: 1000, gid: 44))
    #expect(try resolve("4242:4343", passwd: nil, group: nil) == .init(uid: 4242, gid: 4343))
}

@Test func groupsByName() throws {
    // A group given: it is the gid, and no additional groups (conversion.md).
    #expect(try resolve("app:video") == .init(uid: 1000, gid: 44))
    #expect(try resolve("4242:wheel") == .init(uid: 4242, gid: 10))
    #expect(try resolve("other:0") == .init(uid: 1001, gid: 0))
}

@Test func unresolvableUsersAreErrorsNamingTheField() {
    let cases: [(String, [UInt8]?, [UInt8]?, [String])] = [
        ("nobody", passwd, group, ["config.User \"nobody\"", "no user \"nobody\"", "/etc/passwd"]),
        ("app:nogroup", passwd, group, ["config.User \"app:nogroup\"", "no group \"nogroup\"", "/etc/group"]),
        ("app", nil, group, ["config.User \"app\"", "has no /etc/passwd"]),
        ("0:video", passwd, nil, ["config.User \"0:video\"", "has no /etc/group"]),
        ("broken", passwd, group, ["config.User \"broken\"", "line 7", "malformed"]),
        ("0:badgroup", passwd, group, ["config.User \"0:badgroup\"", "line 8", "malformed"]),
        ("a:b:c", passwd, group, ["config.User \"a:b:c\"", "more than one ':'"]),
        (":10", passwd, group, ["config.User \":10\"", "user part is empty"]),
        ("app:", passwd, group, ["config.User \"app:\"", "group part", "empty"]),
        ("4294967295", passwd, group, ["config.User", "out of range"]),
        ("0:99999999999", passwd, group, ["config.User", "gid 99999999999 is out of range"]),
        ("nisuser", passwd, group, ["no user \"nisuser\""]),
    ]
    for (user, p, g, parts) in cases {
        let text = message { _ = try resolve(user, passwd: p, group: g) }
        for part in parts {
            #expect(text.contains(part), "\(user): \"\(text)\" lacks \"\(part)\"")
        }
    }
}

@Test func firstPasswdEntryWins() throws {
    #expect(try resolve("app").uid == 1000)
}

@Test func crlfAndMissingTrailingFields() throws {
    let p = Array("svc:x:500:600\r\n".utf8)
    let g = Array("grp:x:700\r\nsvcgrp:x:800:svc\r\n".utf8)
    #expect(try resolve("svc", passwd: p, group: g) == .init(uid: 500, gid: 600, additionalGids: [800]))
    #expect(try resolve("svc:grp", passwd: p, group: g) == .init(uid: 500, gid: 700))
}
