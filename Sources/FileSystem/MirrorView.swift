import Foundation
import GOESCatalog
import ObjectStore

/// The object behind a file path, with what the listing says of it.
struct ObjectRef: Sendable {
    let bucket: String
    let object: ListedObject
}

/// The mirror view: one folder per bucket → the bucket's own folders and objects, 1:1.
///
/// Resolves names to attributes from listings of the parent folder; never one request per file.
/// Paths here start with the bucket name.
struct MirrorView: Sendable {
    let buckets: [String]
    let listings: ListingCache
    /// Folders have no time of their own in S3; they show when the mount started.
    let mountedAt: Double

    func attributes(_ path: MountPath) throws(FSError) -> NodeAttributes {
        switch path.count {
        case 0: throw .notFound
        case 1:
            guard buckets.contains(path[0]) else { throw .notFound }
            return directory(validSeconds: 3600)
        default:
            let folderPath = Array(path.dropLast())
            // A folder the catalog can vouch for needs no LIST, unless its parent's listing is at hand.
            if buckets.contains(path[0]), FolderLevel(components: Array(path.dropFirst())) != nil,
               listings.cached(bucket: path[0], prefix: MirrorView.prefix(of: folderPath)) == nil {
                return directory(validSeconds: 3600)
            }
            let parent = try listing(of: folderPath)
            let name = path.last!
            let prefix = MirrorView.prefix(of: folderPath)
            if parent.prefixes.contains(prefix + name + "/") {
                return directory(validSeconds: parent.expiresAt - parent.fetchedAt)
            }
            if let object = parent.objectsByKey[prefix + name] {
                return fileAttributes(object, validSeconds: parent.expiresAt - parent.fetchedAt)
            }
            throw .notFound
        }
    }

    func entries(_ path: MountPath) throws(FSError) -> [DirectoryEntry] {
        let entry = try listing(of: path)
        let valid = entry.expiresAt - entry.fetchedAt
        let prefix = MirrorView.prefix(of: path)
        var result: [DirectoryEntry] = []
        // One entry per name: a listing may repeat a key, or name `x` both as a folder (`x/`) and a
        // file; the folder wins, as it does for lookups.
        var seen = Set<Substring>()
        for sub in entry.listing.commonPrefixes {
            let name = sub.dropFirst(prefix.count).dropLast()
            guard !name.isEmpty, !name.contains("/"), seen.insert(name).inserted else { continue }
            result.append(DirectoryEntry(name: String(name), attributes: directory(validSeconds: valid)))
        }
        for object in entry.listing.objects {
            let name = object.key.dropFirst(prefix.count)
            // A key ending in "/" is a folder marker, and "." or ".." cannot be names.
            guard !name.isEmpty, !name.contains("/"), name != ".", name != "..", seen.insert(name).inserted else { continue }
            result.append(DirectoryEntry(name: String(name), attributes: fileAttributes(object, validSeconds: valid)))
        }
        return result
    }

    func object(at path: MountPath) throws(FSError) -> ObjectRef {
        guard path.count >= 2 else { throw path.isEmpty ? .isDirectory : .notFound }
        let parent = try listing(of: Array(path.dropLast()))
        let key = MirrorView.prefix(of: Array(path.dropLast())) + path.last!
        // A name that is also a folder is the folder (see `entries`).
        if parent.prefixes.contains(key + "/") { throw .isDirectory }
        guard let object = parent.objectsByKey[key] else { throw .notFound }
        return ObjectRef(bucket: path[0], object: object)
    }

    /// The listing of a folder path (bucket + prefix).
    private func listing(of path: MountPath) throws(FSError) -> ListingCache.Entry {
        guard let bucket = path.first, buckets.contains(bucket) else { throw .notFound }
        return try listings.listing(bucket: bucket, prefix: MirrorView.prefix(of: path))
    }

    /// `["noaa-goes16", "ABI-L1b-RadC", "2023"]` → `ABI-L1b-RadC/2023/`.
    static func prefix(of path: MountPath) -> String {
        path.dropFirst().map { $0 + "/" }.joined()
    }

    func directory(validSeconds: Double) -> NodeAttributes {
        NodeAttributes(kind: .directory, size: 0, modified: mountedAt, validSeconds: validSeconds)
    }

    func fileAttributes(_ object: ListedObject, validSeconds: Double) -> NodeAttributes {
        let modified = ObjectKey(object.key).objectName?.start.secondsSinceEpoch ?? object.lastModified
        return NodeAttributes(kind: .file, size: object.size, modified: modified, validSeconds: validSeconds)
    }
}
