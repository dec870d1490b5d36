/// A path inside the mount, as components: `[]` is the root, `["noaa-goes16", "ABI-L1b-RadC"]` a folder.
public typealias MountPath = [String]

/// What a name in the mount is, and how long the kernel may trust that answer.
public struct NodeAttributes: Sendable, Equatable {
    public enum Kind: Sendable, Equatable { case directory, file, virtualFile, symlink }
    public let kind: Kind
    public let size: Int
    /// Seconds since the epoch: the scan start for GOES files.
    public let modified: Double
    /// How long the kernel may cache this entry and its attributes.
    public let validSeconds: Double
    /// For symlinks: the relative path they point to.
    public var linkTarget: String? = nil
}

public struct DirectoryEntry: Sendable, Equatable {
    public let name: String
    public let attributes: NodeAttributes
}

/// Files at the mount root that are made, not downloaded.
enum VirtualFile: String, CaseIterable {
    case stats = ".stats"
    case statsJSON = ".stats.json"
    case diagnostics = ".diagnostics"
}

/// The answer to a read: bytes in memory, or a range of a cache file the bridge can splice to the
/// kernel without copying. `owner` keeps the file's descriptor open until the reply is sent.
public enum ReadData: @unchecked Sendable {
    case bytes([UInt8])
    case fileRange(descriptor: Int32, offset: Int, length: Int, owner: AnyObject)
}
