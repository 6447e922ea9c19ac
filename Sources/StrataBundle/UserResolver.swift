/// `Config.User` → `process.user`, by conversion.md "Config.User":
///
/// - numeric user or group values are copied verbatim;
/// - names are looked up in the image's /etc/passwd and /etc/group; a name that is not
///   there is an error (conversion.md: "MUST return an error"), never a fallback to root;
/// - a numeric uid alone takes the primary gid of its passwd entry, or 0 when it has none
///   (what runc, Docker and umoci do);
/// - additionalGids: the groups that list the user's name as a member, ascending, without
///   the primary gid — only for a user given by name and without a group: conversion.md
///   says a converter SHOULD NOT set them "if the value of user in Config.User is numeric
///   or if Config.User specifies a group";
/// - an empty or absent User runs as root (0:0), the implementation-defined default.
public enum UserResolver {
    static let field = "config.User"

    public static func resolve(_ user: String?, passwd: [UInt8]?, group: [UInt8]?) throws(BundleError) -> RuntimeSpec.User {
        guard let user, !user.isEmpty else { return RuntimeSpec.User(uid: 0, gid: 0) }
        let parts = user.split(separator: ":", omittingEmptySubsequences: false).map { String($0) }
        guard parts.count <= 2 else {
            throw BundleError("\(field) \"\(user)\": expected user, uid, user:group or uid:gid (more than one ':')")
        }
        let userPart = parts[0]
        let groupPart: String? = parts.count == 2 ? parts[1] : nil
        guard !userPart.isEmpty else { throw BundleError("\(field) \"\(user)\": the user part is empty") }
        if let groupPart, groupPart.isEmpty { throw BundleError("\(field) \"\(user)\": the group part after ':' is empty") }

        let db = UserDatabase(passwd: passwd, group: group)
        // A numeric part is copied verbatim (if in range); nil means it is a name.
        func number(_ part: String, _ what: String) throws(BundleError) -> UInt32? {
            guard IDParser.looksNumeric(part) else { return nil }
            guard let n = IDParser.parse(part) else {
                throw BundleError("\(field) \"\(user)\": \(what) \(part) is out of range (0...\(UInt32.max - 1))")
            }
            return n
        }
        // Why a name is not in the image's /etc/passwd or /etc/group (`file` names which).
        func unresolved(_ kind: String, _ name: String, file: String, present: Bool, brokenLine: Int?) -> BundleError {
            if !present { return BundleError("\(field) \"\(user)\": \(kind) \"\(name)\" cannot be resolved: the image has no \(file)") }
            if let brokenLine { return BundleError("\(field) \"\(user)\": the \(file) entry of \"\(name)\" (line \(brokenLine)) is malformed") }
            return BundleError("\(field) \"\(user)\": no \(kind) \"\(name)\" in the image's \(file)")
        }

        var uid: UInt32
        var gid: UInt32 = 0
        var additional: [UInt32] = []
        if let n = try number(userPart, "uid") {
            uid = n
            if groupPart == nil, let entry = db.user(withUID: n) { gid = entry.gid }
        } else {
            guard db.hasPasswd, let entry = db.user(named: userPart) else {
                throw unresolved("user", userPart, file: "/etc/passwd", present: db.hasPasswd, brokenLine: db.brokenUsers[userPart])
            }
            uid = entry.uid
            gid = entry.gid
            if groupPart == nil {
                additional = db.supplementaryGIDs(of: entry.name).filter { $0 != entry.gid }
            }
        }

        if let groupPart {
            if let n = try number(groupPart, "gid") {
                gid = n
            } else {
                guard db.hasGroup, let entry = db.group(named: groupPart) else {
                    throw unresolved("group", groupPart, file: "/etc/group", present: db.hasGroup, brokenLine: db.brokenGroups[groupPart])
                }
                gid = entry.gid
            }
        }
        return RuntimeSpec.User(uid: uid, gid: gid, additionalGids: additional.isEmpty ? nil : additional)
    }
}
