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
        var uid: UInt32
        var gid: UInt32 = 0
        var additional: [UInt32] = []

        if IDParser.looksNumeric(userPart) {
            guard let n = IDParser.parse(userPart) else {
                throw BundleError("\(field) \"\(user)\": uid \(userPart) is out of range (0...\(UInt32.max - 1))")
            }
            uid = n
            if groupPart == nil, let entry = db.user(withUID: n) { gid = entry.gid }
        } else {
            guard db.hasPasswd else {
                throw BundleError("\(field) \"\(user)\": user \"\(userPart)\" cannot be resolved: the image has no /etc/passwd")
            }
            guard let entry = db.user(named: userPart) else {
                if let line = db.brokenUsers[userPart] {
                    throw BundleError("\(field) \"\(user)\": the /etc/passwd entry of \"\(userPart)\" (line \(line)) is malformed")
                }
                throw BundleError("\(field) \"\(user)\": no user \"\(userPart)\" in the image's /etc/passwd")
            }
            uid = entry.uid
            gid = entry.gid
            if groupPart == nil {
                additional = db.supplementaryGIDs(of: entry.name).filter { $0 != entry.gid }
            }
        }

        if let groupPart {
            if IDParser.looksNumeric(groupPart) {
                guard let n = IDParser.parse(groupPart) else {
                    throw BundleError("\(field) \"\(user)\": gid \(groupPart) is out of range (0...\(UInt32.max - 1))")
                }
                gid = n
            } else {
                guard db.hasGroup else {
                    throw BundleError("\(field) \"\(user)\": group \"\(groupPart)\" cannot be resolved: the image has no /etc/group")
                }
                guard let entry = db.group(named: groupPart) else {
                    if let line = db.brokenGroups[groupPart] {
                        throw BundleError("\(field) \"\(user)\": the /etc/group entry of \"\(groupPart)\" (line \(line)) is malformed")
                    }
                    throw BundleError("\(field) \"\(user)\": no group \"\(groupPart)\" in the image's /etc/group")
                }
                gid = entry.gid
            }
        }
        return RuntimeSpec.User(uid: uid, gid: gid, additionalGids: additional.isEmpty ? nil : additional)
    }
}
