import Foundation
import StrataFS
import StrataSeekable
import StrataSystem
import StrataUnion

/// `strata mount --record-reads FILE`: writes the files read so far to FILE (atomically) every
/// few seconds while the list grows, so a mount that is killed keeps most of it, and at unmount.
final class ReadRecordWriter: @unchecked Sendable {
    let recorder: ReadRecorder
    let tree: MergedTree
    let path: String
    let manifest: String
    private let state = Locked((stopping: false, written: 0))

    init(recorder: ReadRecorder, tree: MergedTree, path: String, manifest: String) {
        self.recorder = recorder; self.tree = tree; self.path = path; self.manifest = manifest
    }

    func start() {
        let thread = Thread { [self] in
            while true {
                Thread.sleep(forTimeInterval: 5)
                if state.withLock({ $0.stopping }) { return }
                write()
            }
        }
        thread.name = "strata-record"
        thread.start()
    }

    /// The final write, at unmount.
    func stop() {
        state.withLock { $0.stopping = true }
        write(force: true)
    }

    private func write(force: Bool = false) {
        state.withLock { s in
            let count = recorder.count
            guard force || count != s.written else { return }
            let record = ReadRecord(entries: recorder.files(in: tree).map {
                ReadRecord.Entry(path: $0.path, manifestDigest: manifest, layerIndex: $0.layer)
            })
            do { try FileIO.writeAtomically(path, try record.encoded()) } catch {
                Log.error("\(path): cannot write the read record: \(error)")
            }
            s.written = count
        }
    }
}
