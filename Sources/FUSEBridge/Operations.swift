import CFuse
import FileSystem
import Foundation

/// The libfuse operation table. Every callback is a plain C function: it captures nothing and
/// finds the bridge through the request, so it can run on any libfuse thread.
extension FUSEBridge {
    static func operations() -> fuse_lowlevel_ops {
        var ops = fuse_lowlevel_ops()
        ops.`init` = { userdata, conn in
            guard let conn else { return }
            conn.pointee.max_readahead = FUSEBridge.maxTransfer
            // Raising max_write also raises the kernel's max pages per request, so reads reach 1 MiB.
            conn.pointee.max_write = FUSEBridge.maxTransfer
            goesfs_want_splice(conn)
        }
        ops.lookup = { req, parent, name in
            let bridge = FUSEBridge.from(req)
            guard let name else { return bridge.replyError(req, FSError.notFound) }
            bridge.withPath(req, parent) { base in
                let path = base + [String(cString: name)]
                bridge.replyEntry(req, path: path, attributes: try bridge.fileSystem.attributes(path))
            }
        }
        ops.forget = { req, inode, count in
            FUSEBridge.from(req).inodes.forget(inode, count: count)
            fuse_reply_none(req)
        }
        ops.forget_multi = { req, count, forgets in
            let bridge = FUSEBridge.from(req)
            for i in 0..<count { bridge.inodes.forget(forgets![i].ino, count: forgets![i].nlookup) }
            fuse_reply_none(req)
        }
        ops.getattr = { req, inode, _ in
            let bridge = FUSEBridge.from(req)
            bridge.withPath(req, inode) { path in
                let attributes = try bridge.fileSystem.attributes(path)
                var st = bridge.stat(for: attributes, inode: inode)
                fuse_reply_attr(req, &st, attributes.validSeconds)
            }
        }
        ops.opendir = { req, inode, fi in
            let bridge = FUSEBridge.from(req)
            bridge.withPath(req, inode) { path in
                // A snapshot per open directory keeps readdir offsets stable across calls.
                let entries = try bridge.fileSystem.entries(path)
                let handle = bridge.nextDirectoryHandle.withLock { n -> UInt64 in defer { n += 1 }; return n }
                bridge.directories.withLock { $0[handle] = (path, entries) }
                fi!.pointee.fh = handle
                fuse_reply_open(req, fi)
            }
        }
        ops.readdir = { req, inode, size, offset, fi in
            FUSEBridge.from(req).readDirectory(req, size: size, offset: Int(offset), handle: fi!.pointee.fh, plus: false)
        }
        // With attributes: `ls -l` of a big folder then needs no lookup per entry.
        ops.readdirplus = { req, inode, size, offset, fi in
            FUSEBridge.from(req).readDirectory(req, size: size, offset: Int(offset), handle: fi!.pointee.fh, plus: true)
        }
        ops.releasedir = { req, _, fi in
            let handle = fi!.pointee.fh
            _ = FUSEBridge.from(req).directories.withLock { $0.removeValue(forKey: handle) }
            fuse_reply_err(req, 0)
        }
        ops.open = { req, inode, fi in
            let bridge = FUSEBridge.from(req)
            let flags = goesfs_fi_flags(fi)
            if flags & O_ACCMODE != O_RDONLY || flags & O_TRUNC != 0 { return bridge.replyError(req, FSError.readOnly) }
            bridge.withPath(req, inode) { path in
                fi!.pointee.fh = try bridge.fileSystem.open(path)
                if path.count == 1 {
                    // Virtual files are rendered per open: bypass the page cache, ignore st_size.
                    goesfs_fi_set_direct_io(fi, 1)
                } else {
                    // Objects never change once written: keep the kernel's cached pages across opens.
                    goesfs_fi_set_keep_cache(fi, 1)
                }
                fuse_reply_open(req, fi)
            }
        }
        ops.read = { req, _, size, offset, fi in
            let bridge = FUSEBridge.from(req)
            let pending = PendingRequest(raw: req)
            bridge.fileSystem.read(handle: fi!.pointee.fh, offset: Int(offset), length: size) { result in
                switch result {
                case .success(.bytes(let bytes)):
                    _ = bytes.withUnsafeBytes { fuse_reply_buf(pending.raw, $0.baseAddress?.assumingMemoryBound(to: CChar.self), $0.count) }
                case .success(.fileRange(let descriptor, let offset, let length, let owner)):
                    withExtendedLifetime(owner) {
                        _ = goesfs_reply_file_range(pending.raw, descriptor, off_t(offset), length)
                    }
                case .failure(let error):
                    bridge.logFailure(error, operation: "read")
                    fuse_reply_err(pending.raw, error.errno)
                }
            }
        }
        ops.release = { req, _, fi in
            FUSEBridge.from(req).fileSystem.release(handle: fi!.pointee.fh)
            fuse_reply_err(req, 0)
        }
        ops.readlink = { req, inode in
            let bridge = FUSEBridge.from(req)
            bridge.withPath(req, inode) { path in
                guard let target = try bridge.fileSystem.attributes(path).linkTarget else { fuse_reply_err(req, EINVAL); return }
                _ = fuse_reply_readlink(req, target)
            }
        }
        ops.listxattr = { req, inode, size in
            let bridge = FUSEBridge.from(req)
            bridge.withPath(req, inode) { path in
                let names = try bridge.fileSystem.extendedAttributes(path).keys.sorted()
                bridge.replyXattr(req, bytes: names.flatMap { Array($0.utf8) + [0] }, size: size)
            }
        }
        ops.getxattr = { req, inode, name, size in
            let bridge = FUSEBridge.from(req)
            // ls -l asks every entry for security.selinux and ACLs: answer those without resolving the path.
            guard let name, String(cString: name).hasPrefix("user.goes.") else { fuse_reply_err(req, ENODATA); return }
            bridge.withPath(req, inode) { path in
                guard let value = try bridge.fileSystem.extendedAttributes(path)[String(cString: name)] else { fuse_reply_err(req, ENODATA); return }
                bridge.replyXattr(req, bytes: Array(value.utf8), size: size)
            }
        }
        ops.statfs = { req, _ in
            // `df` shows the cache: its cap as the size, what is cached as used. Nothing is writable.
            let (limit, used) = FUSEBridge.from(req).fileSystem.cacheCapacity()
            var st = statvfs()
            st.f_bsize = UInt(FUSEBridge.maxTransfer)
            st.f_frsize = 4096
            st.f_blocks = fsblkcnt_t(max(limit, used) / 4096)
            st.f_bfree = fsblkcnt_t(max(0, limit - used) / 4096)
            st.f_bavail = 0
            st.f_namemax = 255
            st.f_flag = UInt(ST_RDONLY)
            fuse_reply_statfs(req, &st)
        }
        // Read-only: everything that would change the tree or a file says so.
        ops.setattr = { req, _, _, _, _ in fuse_reply_err(req, EROFS) }
        ops.mknod = { req, _, _, _, _ in fuse_reply_err(req, EROFS) }
        ops.mkdir = { req, _, _, _ in fuse_reply_err(req, EROFS) }
        ops.unlink = { req, _, _ in fuse_reply_err(req, EROFS) }
        ops.rmdir = { req, _, _ in fuse_reply_err(req, EROFS) }
        ops.symlink = { req, _, _, _ in fuse_reply_err(req, EROFS) }
        ops.rename = { req, _, _, _, _, _ in fuse_reply_err(req, EROFS) }
        ops.link = { req, _, _, _ in fuse_reply_err(req, EROFS) }
        ops.write = { req, _, _, _, _, _ in fuse_reply_err(req, EROFS) }
        ops.create = { req, _, _, _, _ in fuse_reply_err(req, EROFS) }
        ops.setxattr = { req, _, _, _, _, _ in fuse_reply_err(req, EROFS) }
        ops.removexattr = { req, _, _ in fuse_reply_err(req, EROFS) }
        ops.fallocate = { req, _, _, _, _, _ in fuse_reply_err(req, EROFS) }
        return ops
    }

    /// The xattr protocol: size 0 asks for the length, otherwise the bytes (ERANGE if they do not fit).
    func replyXattr(_ req: fuse_req_t?, bytes: [UInt8], size: Int) {
        if size == 0 { fuse_reply_xattr(req, bytes.count) }
        else if bytes.count > size { fuse_reply_err(req, ERANGE) }
        else { bytes.withUnsafeBytes { _ = fuse_reply_buf(req, $0.baseAddress?.assumingMemoryBound(to: CChar.self), $0.count) } }
    }

    /// Fills a readdir(plus) reply from the directory's snapshot. Offsets 0 and 1 are "." and "..";
    /// entry i of the snapshot is offset i + 2. With `plus`, each entry carries its attributes and
    /// counts as a lookup (taken back if it did not fit in the buffer).
    func readDirectory(_ req: fuse_req_t?, size: Int, offset: Int, handle: UInt64, plus: Bool) {
        guard let directory = directories.withLock({ $0[handle] }) else { return replyError(req, FSError.io("bad directory handle")) }
        let entries = directory.entries
        var buffer = [CChar](repeating: 0, count: size)
        var used = 0
        var index = offset
        while index < entries.count + 2 {
            var needed = 0
            if index < 2 || !plus {
                let name = index == 0 ? "." : index == 1 ? ".." : entries[index - 2].name
                let fileType = index < 2 ? S_IFDIR : mode(of: entries[index - 2].attributes.kind)
                if plus {
                    // "." and "..": node 0 tells the kernel there is nothing to link (no lookup taken);
                    // st_ino must not be 0, or readdir(3) hides the entry.
                    var param = fuse_entry_param()
                    param.attr.st_mode = fileType
                    param.attr.st_ino = UInt.max
                    needed = buffer.withUnsafeMutableBufferPointer { b in
                        fuse_add_direntry_plus(req, b.baseAddress! + used, size - used, name, &param, off_t(index + 1))
                    }
                } else {
                    var st = Glibc.stat()
                    st.st_mode = fileType
                    st.st_ino = UInt.max // unknown here; the kernel looks names up before using them
                    needed = buffer.withUnsafeMutableBufferPointer { b in
                        fuse_add_direntry(req, b.baseAddress! + used, size - used, name, &st, off_t(index + 1))
                    }
                }
            } else {
                let entry = entries[index - 2]
                let inode = inodes.reference(directory.path + [entry.name])
                var param = fuse_entry_param()
                param.ino = inode
                param.attr = stat(for: entry.attributes, inode: inode)
                param.attr_timeout = entry.attributes.validSeconds
                param.entry_timeout = entry.attributes.validSeconds
                needed = buffer.withUnsafeMutableBufferPointer { b in
                    fuse_add_direntry_plus(req, b.baseAddress! + used, size - used, entry.name, &param, off_t(index + 1))
                }
                if needed > size - used { inodes.forget(inode, count: 1) }
            }
            if needed > size - used { break }
            used += needed
            index += 1
        }
        fuse_reply_buf(req, buffer, used)
    }

    private func mode(of kind: NodeAttributes.Kind) -> mode_t {
        switch kind {
        case .directory: return S_IFDIR
        case .symlink: return S_IFLNK
        case .file, .virtualFile: return S_IFREG
        }
    }
}
