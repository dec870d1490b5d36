import CFuse
import Foundation
import Logging

/// The session, for notifications sent from other threads (libfuse allows them on any thread).
private struct SessionPointer: @unchecked Sendable { let raw: OpaquePointer }

/// Mounts the bridge at a mountpoint and runs libfuse's multi-threaded loop until unmounted or signalled.
public struct MountSession {
    public enum Failure: Error, CustomStringConvertible {
        case cannotCreateSession(String)
        case cannotMount(String)
        public var description: String {
            switch self {
            case .cannotCreateSession(let why): return "cannot start FUSE: \(why)"
            case .cannotMount(let why): return "cannot mount: \(why)"
            }
        }
    }

    public static var libfuseVersion: String { String(cString: fuse_pkgversion()) }

    public let mountpoint: String
    /// `-o` options for libfuse, e.g. `allow_other`.
    public let options: [String]

    public init(mountpoint: String, options: [String]) {
        self.mountpoint = mountpoint
        self.options = options
    }

    /// What the caller wants to do at each stage of the mount's life.
    public struct Hooks {
        /// libfuse's SIGINT/SIGTERM/SIGHUP handlers are in place: override any of them now.
        public var signalsInstalled: () -> Void = {}
        /// The mount answers requests (called on another thread).
        public var ready: @Sendable () -> Void = {}
        /// The loop ended (unmounted or signalled); the kernel mount is still there.
        public var stopping: () -> Void = {}
        public init() {}
    }

    /// Mounts, serves requests until unmounted or signalled, then unmounts.
    public func run(bridge: FUSEBridge, hooks: Hooks) throws(Failure) {
        var args = fuse_args(argc: 0, argv: nil, allocated: 0)
        defer { fuse_opt_free_args(&args) }
        let all = ["ro", "fsname=goesfs", "subtype=goesfs", "default_permissions"] + options
        for argument in ["goesfs", "-o", all.joined(separator: ",")] { fuse_opt_add_arg(&args, argument) }

        var ops = FUSEBridge.operations()
        let userdata = Unmanaged.passRetained(bridge)
        defer { userdata.release() }
        goesfs_route_fuse_log()
        guard let session = goesfs_session_new(&args, &ops, userdata.toOpaque()) else {
            throw .cannotCreateSession("libfuse rejected the options \(all.joined(separator: ","))")
        }
        defer { fuse_session_destroy(session) }
        // An object that changed at the source: the kernel must forget the pages it kept of it.
        let sessionPointer = SessionPointer(raw: session)
        bridge.fileSystem.changes.onChange { [inodes = bridge.inodes] path in
            guard let inode = inodes.inode(of: path) else { return }
            _ = fuse_lowlevel_notify_inval_inode(sessionPointer.raw, fuse_ino_t(inode), 0, 0)
        }
        defer { bridge.fileSystem.changes.stop() }
        // SIGINT and SIGTERM end the loop; we then unmount cleanly below.
        guard fuse_set_signal_handlers(session) == 0 else { throw .cannotCreateSession("cannot install signal handlers") }
        defer { fuse_remove_signal_handlers(session) }
        hooks.signalsInstalled()
        guard fuse_session_mount(session, mountpoint) == 0 else {
            throw .cannotMount("\(mountpoint) (is it an existing empty directory, and is /dev/fuse usable?)")
        }
        defer { fuse_session_unmount(session) }
        // The kernel answers a stat of the mountpoint only once our loop handled INIT: that is "usable".
        let point = mountpoint, ready = hooks.ready
        Thread.detachNewThread {
            var st = stat()
            if stat(point, &st) == 0 { ready() }
        }
        defer { hooks.stopping() }

        let config = fuse_loop_cfg_create()
        defer { fuse_loop_cfg_destroy(config) }
        fuse_loop_cfg_set_max_threads(config, 32)
        fuse_loop_cfg_set_idle_threads(config, 8)
        _ = goesfs_session_loop_mt(session, config)
    }
}
