@testable import FileSystem
import Foundation
import Locking

extension GOESFileSystem {
    /// Reads from an open handle and waits for the reply (which may come on a download thread),
    /// turning a splice reply into its bytes. Nil when no reply came within `seconds`.
    func readWaiting(handle: UInt64, offset: Int, length: Int, seconds: Double = 30) -> Result<[UInt8], FSError>? {
        let done = DispatchSemaphore(value: 0)
        let box = Locked<Result<[UInt8], FSError>?>(nil)
        read(handle: handle, offset: offset, length: length) { result in
            box.withLock { $0 = result.map { data in
                switch data {
                case .bytes(let bytes): return bytes
                case .fileRange(let descriptor, let offset, let length, _):
                    var out = [UInt8](repeating: 0, count: length)
                    let got = pread(descriptor, &out, length, off_t(offset))
                    return Array(out.prefix(max(0, got)))
                }
            } }
            done.signal()
        }
        guard done.wait(timeout: .now() + seconds) == .success else { return nil }
        return box.withLock { $0 }
    }
}
