import Foundation
import StrataRegistry
import StrataSystem

/// A `docker://` IMAGE resolved as `--pull` says, and, when that means asking the registry for
/// a tag this cache resolved before (`always`), what the tag named then (`kept`): a bundle
/// mounts that at once while the registry answers on a thread of its own, and compares once
/// mounted, so a warm start does not wait a round trip first. The bundle is still the tag's
/// current image: a tag that moved is made again (`BundleCommand`).
final class TagLookup: @unchecked Sendable {
    let kept: ImageOpening.Source?
    private let resolve: () throws -> ImageOpening.Source
    private let answer = Locked<Result<ImageOpening.Source, any Error>?>(nil)

    private init(kept: ImageOpening.Source?, resolve: @escaping () throws -> ImageOpening.Source) {
        self.kept = kept
        self.resolve = resolve
    }

    static func start(_ reference: String, platform: String?, registry: RegistryFlags, cache: String?) -> TagLookup {
        let resolve = { try ImageOpening.open(reference, platform: platform, registry: registry, cache: cache) }
        guard registry.pull == .always, let remote = try? RegistryReference.parse(reference), remote.digest == nil else {
            return TagLookup(kept: nil, resolve: resolve)
        }
        var cached = registry
        cached.pull = .never   // the cache's answer, or none: never a request for the tag
        guard let kept = try? ImageOpening.open(reference, platform: platform, registry: cached, cache: cache) else {
            return TagLookup(kept: nil, resolve: resolve)
        }
        let lookup = TagLookup(kept: kept, resolve: resolve)
        Thread.detachNewThread {
            let result = Result { try lookup.resolve() }
            lookup.answer.withLock { $0 = result }
            lookup.answer.broadcast()
        }
        return lookup
    }

    /// The registry's answer (waiting for it if it was asked on a thread).
    func resolved() throws -> ImageOpening.Source {
        guard kept != nil else { return try resolve() }
        let result = answer.withLock(when: { $0 != nil }) { $0 }
        return try result!.get()
    }
}
