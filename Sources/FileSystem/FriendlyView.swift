import Foundation
import GOESCatalog
import ObjectStore

/// The friendly view: `/goes16/<product><sector>/<band>/<YYYY-MM-DD>/<HH>/<NOAA file name>`.
///
/// Hour folders list each scan under its NOAA name (readers such as satpy recognise files by it;
/// `ls -t` sorts by scan start), one per scan slot, the latest creation winning; the short name
/// `HHMM.nc` also resolves.
/// Every leaf is a relative symlink to the object in the mirror view, so original names stay one
/// `readlink` away. Folders come from the same hour listings as the mirror: one request per hour,
/// never one per file. Also `latest.nc` (band and day folders) and the unlisted `at/<time>.nc`.
/// Paths here start with the satellite folder (`goes16`).
struct FriendlyView: Sendable {
    let satellites: [Satellite]
    let listings: ListingCache
    let mountedAt: Double

    /// How long `latest.nc` is trusted before it is resolved again.
    static let latestSeconds = 10.0
    static let latestName = "latest.nc"
    static let nearestFolder = "at"

    static func folderName(_ satellite: Satellite) -> String { "goes\(satellite.number)" }

    /// A friendly product folder and the bucket folder behind it.
    struct Product: Sendable, Equatable {
        /// The bucket's folder, e.g. `ABI-L1b-RadM`.
        let folder: String
        /// The friendly name, e.g. `RadM1`.
        let name: String
        /// Only scans of this sector (M1/M2 share the `…M` folder).
        let sector: String?
        let hasBands: Bool
    }

    /// A series of scans: what a band folder (or a band-less product folder) holds.
    struct Series: Sendable {
        let satellite: Satellite
        let product: Product
        let band: Int?
        /// The path of the series folder, e.g. `["goes16", "RadC", "C13"]`.
        let path: MountPath
    }

    struct Scan: Sendable {
        let name: ObjectName
        let object: ListedObject
        /// The short name, `HHMM.nc` (`HHMMSS.nc` for Meso and GLM): still resolves, not listed.
        let leaf: String
        /// The NOAA file name, which hour folders list: readers such as satpy recognise files by it.
        var fileName: String { String(object.key.split(separator: "/").last ?? "") }
    }

    /// The top-level folders of the view: one per satellite, and the aliases that apply.
    var folderNames: [String] {
        satellites.map(FriendlyView.folderName) + OrbitSlot.allCases.compactMap { slot($0.rawValue)?.rawValue }
    }

    func owns(_ first: String) -> Bool { satellite(first) != nil || slot(first) != nil }

    /// `goes-east`/`goes-west`, when one of its satellites is mounted.
    private func slot(_ folder: String) -> OrbitSlot? {
        OrbitSlot(rawValue: folder).flatMap { slot in slot.satellites.contains(where: satellites.contains) ? slot : nil }
    }

    /// Rewrites an alias path to the satellite that was operational at the date it names; undated
    /// levels show the newest mounted satellite of the slot.
    private func resolvingAlias(_ path: MountPath) -> MountPath {
        guard let first = path.first, let slot = slot(first) else { return path }
        var day: CalendarDay?
        for (index, component) in path.enumerated().dropFirst(2) {
            if let d = CalendarDay(component) { day = d; break }
            if component == FriendlyView.nearestFolder, index + 1 < path.count, let request = NearestRequest(name: path[index + 1]) {
                day = CalendarDay(year: request.time.year, dayOfYear: request.time.dayOfYear)
                break
            }
        }
        let chosen = day.map(slot.satellite(on:)) ?? slot.satellites.last(where: satellites.contains)!
        return [FriendlyView.folderName(chosen)] + path.dropFirst()
    }

    /// The days of a series under an alias: each day from the satellite operational on it.
    private func aliasDays(_ slot: OrbitSlot, series: Series) throws(FSError) -> [CalendarDay] {
        var result: [CalendarDay] = []
        for satellite in slot.satellites where satellites.contains(satellite) {
            guard let product = try? products(satellite).first(where: { $0.name == series.product.name }) else { continue }
            let candidate = Series(satellite: satellite, product: product, band: series.band, path: series.path)
            result += try days(candidate).filter { slot.satellite(on: $0) == satellite }
        }
        return result.sorted()
    }

    private func satellite(_ folder: String) -> Satellite? {
        satellites.first { FriendlyView.folderName($0) == folder }
    }

    // MARK: Resolving paths

    private enum Node {
        case directory(validSeconds: Double)
        case link(Scan, validSeconds: Double)
    }

    func attributes(_ path: MountPath) throws(FSError) -> NodeAttributes {
        let path = resolvingAlias(path)
        switch try node(path) {
        case .directory(let valid):
            return NodeAttributes(kind: .directory, size: 0, modified: mountedAt, validSeconds: valid)
        case .link(let scan, let valid):
            return linkAttributes(scan, at: path, validSeconds: valid)
        }
    }

    /// Where a path points: the levels above a series, or a place inside one.
    private enum Location {
        case satellite([Product])
        case bands
        case series(Series, rest: [String])
    }

    /// Parses satellite, product and band, once, for both lookups and listings.
    private func locate(_ path: MountPath) throws(FSError) -> Location {
        guard let satellite = path.first.flatMap(satellite) else { throw .notFound }
        let products = try products(satellite)
        if path.count == 1 { return .satellite(products) }
        guard let product = products.first(where: { $0.name == path[1] }) else { throw .notFound }
        guard product.hasBands else {
            return .series(Series(satellite: satellite, product: product, band: nil, path: Array(path.prefix(2))), rest: Array(path.dropFirst(2)))
        }
        if path.count == 2 { return .bands }
        guard path[2].count == 3, path[2].hasPrefix("C"), let band = Int(path[2].dropFirst()), (1...16).contains(band) else { throw .notFound }
        return .series(Series(satellite: satellite, product: product, band: band, path: Array(path.prefix(3))), rest: Array(path.dropFirst(3)))
    }

    private func node(_ path: MountPath) throws(FSError) -> Node {
        guard case .series(let series, let rest) = try locate(path) else { return .directory(validSeconds: 3600) }
        switch rest.count {
        case 0:
            return .directory(validSeconds: 60)
        case 1 where rest[0] == FriendlyView.latestName:
            return .link(try latest(series, within: nil), validSeconds: FriendlyView.latestSeconds)
        case 1 where rest[0] == FriendlyView.nearestFolder:
            return .directory(validSeconds: 3600)
        case 2 where rest[0] == FriendlyView.nearestFolder:
            return .link(try nearest(series, request: rest[1]), validSeconds: FriendlyView.latestSeconds)
        default:
            guard let day = CalendarDay(rest[0]) else { throw .notFound }
            if rest.count == 1 { return .directory(validSeconds: 60) }
            if rest.count == 2 && rest[1] == FriendlyView.latestName {
                return .link(try latest(series, within: day), validSeconds: FriendlyView.latestSeconds)
            }
            guard let hour = FriendlyView.hour(rest[1]) else { throw .notFound }
            let hourListing = try scans(series, day: day, hour: hour)
            if rest.count == 2 { return .directory(validSeconds: hourListing.validSeconds) }
            guard rest.count == 3, let scan = hourListing.scans.first(where: { $0.fileName == rest[2] || $0.leaf == rest[2] }) else { throw .notFound }
            return .link(scan, validSeconds: hourListing.validSeconds)
        }
    }

    func entries(_ requested: MountPath) throws(FSError) -> [DirectoryEntry] {
        let alias = requested.first.flatMap(slot)
        let path = resolvingAlias(requested)
        switch try locate(path) {
        case .satellite(let products):
            return products.map { directoryEntry($0.name, validSeconds: 3600) }
        case .bands:
            return (1...16).map { directoryEntry(String(format: "C%02d", $0), validSeconds: 3600) }
        case .series(let series, let rest):
            var result: [DirectoryEntry]
            var latestDay: CalendarDay?
            switch rest.count {
            case 0:
                let days: [CalendarDay]
                if let alias { days = try aliasDays(alias, series: series) } else { days = try self.days(series) }
                result = days.map { directoryEntry($0.name, validSeconds: 60) }
            case 1 where rest[0] == FriendlyView.nearestFolder:
                return []
            case 1:
                guard let day = CalendarDay(rest[0]) else { throw try notListable(path) }
                let prefix = "\(series.product.folder)/\(day.keyPath)/"
                let hours = try listings.listing(bucket: series.satellite.bucket, prefix: prefix).listing.commonPrefixes
                    .compactMap { Int($0.dropFirst(prefix.count).dropLast()) }.filter { (0...23).contains($0) }.sorted()
                result = hours.map { directoryEntry(String(format: "%02d", $0), validSeconds: 60) }
                latestDay = day
            case 2:
                guard let day = CalendarDay(rest[0]), let hour = FriendlyView.hour(rest[1]) else { throw try notListable(path) }
                let hourListing = try scans(series, day: day, hour: hour)
                return hourListing.scans.map { scan in
                    DirectoryEntry(name: scan.fileName, attributes: linkAttributes(scan, at: path + [scan.fileName], validSeconds: hourListing.validSeconds))
                }
            default:
                throw try notListable(path)
            }
            if let latest = try? latest(series, within: latestDay) {
                result.append(DirectoryEntry(name: FriendlyView.latestName,
                                             attributes: linkAttributes(latest, at: path + [FriendlyView.latestName], validSeconds: FriendlyView.latestSeconds)))
            }
            return result
        }
    }

    /// The error for listing something that is no folder: ENOTDIR for a link, ENOENT otherwise.
    private func notListable(_ path: MountPath) throws(FSError) -> FSError {
        _ = try node(path)
        return .notDirectory
    }

    /// `14` → 14; an hour folder's name.
    private static func hour(_ name: String) -> Int? {
        guard name.count == 2, let hour = Int(name), (0...23).contains(hour) else { return nil }
        return hour
    }

    // MARK: Products, days, scans

    /// Product folders of a satellite's bucket, from its root listing; Meso folders split into M1 and M2.
    func products(_ satellite: Satellite) throws(FSError) -> [Product] {
        let folders = try listings.listing(bucket: satellite.bucket, prefix: "").listing.commonPrefixes.map { String($0.dropLast()) }
        var result: [Product] = []
        for folder in folders {
            let parts = folder.split(separator: "-")
            // Product folders look like ABI-L1b-RadC or GLM-L2-LCFA; anything else is not data.
            guard parts.count >= 3, let last = parts.last else { continue }
            let name = String(last)
            let bands = folder.hasPrefix("ABI-") && (name.hasPrefix("Rad") || name.hasPrefix("CMIP"))
            if folder.hasPrefix("ABI-") && name.hasSuffix("M") {
                for meso in ["M1", "M2"] {
                    result.append(Product(folder: folder, name: String(name.dropLast()) + meso, sector: meso, hasBands: bands))
                }
            } else {
                result.append(Product(folder: folder, name: name, sector: nil, hasBands: bands))
            }
        }
        return result
    }

    private func days(_ series: Series) throws(FSError) -> [CalendarDay] {
        let bucket = series.satellite.bucket, folder = series.product.folder
        var days: [CalendarDay] = []
        for year in try listings.listing(bucket: bucket, prefix: folder + "/").listing.commonPrefixes.compactMap({ Int($0.dropFirst(folder.count + 1).dropLast()) }) {
            let prefix = "\(folder)/\(String(format: "%04d", year))/"
            for day in try listings.listing(bucket: bucket, prefix: prefix).listing.commonPrefixes {
                if let doy = Int(day.dropFirst(prefix.count).dropLast()), let d = CalendarDay(year: year, dayOfYear: doy) { days.append(d) }
            }
        }
        return days.sorted()
    }

    /// The scans of a series in one hour, one per leaf name (the latest creation wins a shared slot).
    /// A missing hour is simply empty.
    private func scans(_ series: Series, day: CalendarDay, hour: Int) throws(FSError) -> (scans: [Scan], validSeconds: Double) {
        let prefix = "\(series.product.folder)/\(day.keyPath)/\(String(format: "%02d", hour))/"
        let entry: ListingCache.Entry
        do {
            entry = try listings.listing(bucket: series.satellite.bucket, prefix: prefix)
        } catch .notFound {
            return ([], 60)
        }
        var bySlot: [String: Scan] = [:]
        for object in entry.listing.objects {
            guard let name = ObjectKey(object.key).objectName,
                  name.sector == (series.product.sector ?? name.sector), name.band == series.band else { continue }
            let leaf = name.slotName
            if let other = bySlot[leaf], other.name.created >= name.created { continue }
            bySlot[leaf] = Scan(name: name, object: object, leaf: leaf)
        }
        return (bySlot.values.sorted { $0.name.start < $1.name.start }, entry.expiresAt - entry.fetchedAt)
    }

    /// The newest scan of a series (within one day if given), walking back over empty or missing
    /// hours — the current hour often does not exist yet.
    private func latest(_ series: Series, within day: CalendarDay?) throws(FSError) -> Scan {
        var candidates: [CalendarDay]
        if let day { candidates = [day] } else { candidates = Array(try days(series).suffix(3).reversed()) }
        for candidate in candidates {
            let prefix = "\(series.product.folder)/\(candidate.keyPath)/"
            let hours = try listings.listing(bucket: series.satellite.bucket, prefix: prefix).listing.commonPrefixes
                .compactMap { Int($0.dropFirst(prefix.count).dropLast()) }.sorted(by: >)
            for hour in hours.prefix(24) {
                if let newest = try scans(series, day: candidate, hour: hour).scans.last { return newest }
            }
        }
        throw .notFound
    }

    /// The scan whose start is nearest to an `at/` request (see `NearestRequest`), searching the
    /// neighbouring hours its tolerance reaches (a bounded number).
    private func nearest(_ series: Series, request name: String) throws(FSError) -> Scan {
        guard let request = NearestRequest(name: name) else { throw .notFound }
        var best: Scan?
        for time in request.hours {
            guard let day = CalendarDay(year: time.year, dayOfYear: time.dayOfYear) else { continue }
            for scan in try scans(series, day: day, hour: time.hour).scans {
                let distance = abs(scan.name.start.secondsSinceEpoch - request.instant)
                guard distance <= request.tolerance else { continue }
                if let current = best {
                    let currentDistance = abs(current.name.start.secondsSinceEpoch - request.instant)
                    if distance > currentDistance || (distance == currentDistance && scan.name.created <= current.name.created) { continue }
                }
                best = scan
            }
        }
        guard let best else { throw .notFound }
        return best
    }

    // MARK: Attributes

    private func directoryEntry(_ name: String, validSeconds: Double) -> DirectoryEntry {
        DirectoryEntry(name: name, attributes: NodeAttributes(kind: .directory, size: 0, modified: mountedAt, validSeconds: validSeconds))
    }

    /// A relative link from `path`'s folder up to the root and down into the mirror view.
    private func linkAttributes(_ scan: Scan, at path: MountPath, validSeconds: Double) -> NodeAttributes {
        let bucket = satellite(path[0])!.bucket
        let target = String(repeating: "../", count: path.count - 1) + bucket + "/" + scan.object.key
        return NodeAttributes(kind: .symlink, size: target.utf8.count, modified: scan.name.start.secondsSinceEpoch,
                              validSeconds: validSeconds, linkTarget: target)
    }
}
