import Foundation
import GOESCatalog

/// The whole tree: virtual files at the root, the mirror view (`noaa-goesNN/…`) and the friendly
/// view (`goesNN/…`). Routes each path to the view that owns its first component.
struct Namespace: Sendable {
    let mirror: MirrorView
    let friendly: FriendlyView
    let mountedAt: Double

    func attributes(_ path: MountPath, virtualSize: (VirtualFile) -> Int) throws(FSError) -> NodeAttributes {
        guard let first = path.first else { return mirror.directory(validSeconds: 3600) }
        if path.count == 1, let file = VirtualFile(rawValue: first) {
            return NodeAttributes(kind: .virtualFile, size: virtualSize(file), modified: Date().timeIntervalSince1970, validSeconds: 0)
        }
        return friendly.owns(first) ? try friendly.attributes(path) : try mirror.attributes(path)
    }

    func entries(_ path: MountPath) throws(FSError) -> [DirectoryEntry] {
        guard let first = path.first else {
            return VirtualFile.allCases.map {
                DirectoryEntry(name: $0.rawValue, attributes: NodeAttributes(kind: .virtualFile, size: 0, modified: mountedAt, validSeconds: 0))
            } + mirror.buckets.map { DirectoryEntry(name: $0, attributes: mirror.directory(validSeconds: 3600)) }
              + friendly.folderNames.map { DirectoryEntry(name: $0, attributes: mirror.directory(validSeconds: 3600)) }
        }
        return friendly.owns(first) ? try friendly.entries(path) : try mirror.entries(path)
    }

    /// The object a regular file of the mirror view is.
    func object(at path: MountPath) throws(FSError) -> ObjectRef {
        try mirror.object(at: path)
    }

    /// `user.goes.*` extended attributes of a mirror file. (Linux refuses user attributes on
    /// symlinks, so friendly links show them through the file they point to.)
    func extendedAttributes(_ path: MountPath) throws(FSError) -> [String: String] {
        // Folders, the root, virtual files and friendly links carry none.
        guard let first = path.first, !friendly.owns(first), path.count >= 2 else { return [:] }
        let ref: ObjectRef
        do {
            ref = try mirror.object(at: path)
        } catch .isDirectory {
            return [:]
        }
        var attributes = ["user.goes.key": ref.object.key, "user.goes.bucket": ref.bucket, "user.goes.etag": ref.object.etag]
        if let name = ObjectKey(ref.object.key).objectName {
            attributes["user.goes.start"] = name.start.description
            attributes["user.goes.end"] = name.end.description
            attributes["user.goes.created"] = name.created.description
            attributes["user.goes.platform"] = name.platformID
            if let band = name.band { attributes["user.goes.band"] = String(format: "C%02d", band) }
        }
        return attributes
    }
}
