import Locking

/// Inode numbers for mount paths, with the kernel's lookup counts (libfuse's `forget` contract).
///
/// An inode lives while the kernel holds a reference; it is dropped when its count reaches zero.
/// The root (inode 1) is never dropped.
final class InodeTable: Sendable {
    static let root: UInt64 = 1

    private struct Node { var path: [String]; var lookups: UInt64 }
    private struct State {
        var next: UInt64 = 2
        var nodes: [UInt64: Node] = [InodeTable.root: Node(path: [], lookups: 1)]
        var byPath: [[String]: UInt64] = [[]: InodeTable.root]
    }
    private let state = Locked(State())

    func path(of inode: UInt64) -> [String]? {
        state.withLock { $0.nodes[inode]?.path }
    }

    /// The inode the kernel knows `path` by, if it knows it (no reference taken).
    func inode(of path: [String]) -> UInt64? {
        state.withLock { $0.byPath[path] }
    }

    /// The inode for `path`, taking one kernel reference on it.
    func reference(_ path: [String]) -> UInt64 {
        state.withLock { s in
            if let inode = s.byPath[path] {
                s.nodes[inode]!.lookups += 1
                return inode
            }
            let inode = s.next
            s.next += 1
            s.nodes[inode] = Node(path: path, lookups: 1)
            s.byPath[path] = inode
            return inode
        }
    }

    func forget(_ inode: UInt64, count: UInt64) {
        guard inode != InodeTable.root else { return }
        state.withLock { s in
            guard var node = s.nodes[inode] else { return }
            node.lookups -= min(count, node.lookups)
            if node.lookups == 0 {
                s.nodes[inode] = nil
                s.byPath[node.path] = nil
            } else {
                s.nodes[inode] = node
            }
        }
    }
}
