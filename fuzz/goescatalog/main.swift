// libFuzzer target: every parser in Sources/GOESCatalog — object names and keys from listings
// (`ObjectName`, `ObjectKey`, `HourPrefix`, `ScanTime(stamp:)`), and the names anyone on the machine
// can look up in the friendly view (`NearestRequest` for `at/` names, `CalendarDay`, `Satellite(parsing:)`,
// `OrbitSlot`), plus `ScanTime(secondsSinceEpoch:)` on any number the input spells.
//
// Each input is tried as every kind of name, and as the file name under a bucket key. Accepted values
// must be in range, print without trapping, and survive a round trip through their printed form.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let text = fuzzText(data, size)

    // Object names and keys.
    if let name = ObjectName(fileName: text) {
        checkName(name, text)
    }
    let key = ObjectKey(text)
    blackHole(key.description)
    if let name = key.objectName { checkName(name, String(key.fileName)) }
    if !text.utf8.contains(UInt8(ascii: "/")) {   // bytes: "/" + a combining mark is one Character
        let nested = ObjectKey("ABI-L1b-RadC/2023/066/14/" + text)
        invariant(nested.fileName == Substring(text), "fileName of a key is not its last component")
        invariant(nested.objectName == ObjectName(fileName: text), "a key's name differs from the bare name")
    }

    // Hour folders from listing prefixes.
    if let hour = HourPrefix(prefix: text) {
        invariant((0...23).contains(hour.hour), "hour \(hour.hour)")
        let end = hour.endSecondsSinceEpoch
        let start = ScanTime(year: hour.year, dayOfYear: hour.dayOfYear, hour: hour.hour, minute: 0, second: 0)!
        invariant(end == start.secondsSinceEpoch + 3600, "hour end \(end)")
        invariant(HourPrefix(prefix: "\(hour.product)/\(pad(hour.year, 4))/\(pad(hour.dayOfYear, 3))/\(pad(hour.hour, 2))/")
                  == hour, "hour prefix does not round-trip")
    }

    // Scan-time stamps on their own (the 14 digits after s/e/c).
    if let time = ScanTime(stamp: Substring(text)) { checkTime(time) }

    // Friendly-view `at/` names, as typed and with the extension added.
    for name in [text, text + ".nc"] {
        guard let request = NearestRequest(name: name) else { continue }
        invariant(request.tolerance >= 0 && request.tolerance <= NearestRequest.maxTolerance, "tolerance \(request.tolerance)")
        let time = request.time
        checkTime(time)
        invariant(abs(time.secondsSinceEpoch - request.instant) < 1, "time \(time) is not the instant \(request.instant)")
        let hours = request.hours
        invariant(!hours.isEmpty && hours.count <= 49, "\(hours.count) hours to list")
        invariant(zip(hours, hours.dropFirst()).allSatisfy { $0 < $1 }, "hours out of order")
    }

    // Friendly-view names: days, satellites, orbit slots.
    if let day = CalendarDay(text) {
        let name = day.name
        invariant(CalendarDay(name) == day, "day \(name) does not round-trip")
        invariant(day.keyPath.count == 8, "keyPath \(day.keyPath)")
        for slot in OrbitSlot.allCases { blackHole(slot.satellite(on: day)) }
    }
    if let satellite = Satellite(parsing: text) {
        invariant((16...19).contains(satellite.number), "satellite \(satellite.number)")
        invariant(Satellite(parsing: satellite.platformID) == satellite, "platform id does not round-trip")
        invariant(Satellite(parsing: satellite.bucket) == satellite, "bucket does not round-trip")
        invariant(Satellite(parsing: satellite.description) == satellite, "description does not round-trip")
    }
    blackHole(OrbitSlot(rawValue: text))

    // Any number the input spells, as seconds since the epoch.
    if let seconds = Double(text) {
        if let time = ScanTime(secondsSinceEpoch: seconds) {
            checkTime(time)
            invariant(abs(time.secondsSinceEpoch - seconds) < 1, "\(seconds) s became \(time.secondsSinceEpoch) s")
        }
    }
    return 0
}

func checkName(_ name: ObjectName, _ fileName: String) {
    invariant(name.fileName == fileName, "fileName")
    if let band = name.band { invariant((1...16).contains(band), "band \(band)") }
    invariant(name.platformID.count == 3 && name.platformID.hasPrefix("G"), "platform \(name.platformID)")
    blackHole(name.satellite)
    for time in [name.start, name.end, name.created] { checkTime(time) }
}

func checkTime(_ time: ScanTime) {
    let (month, day) = time.monthAndDay
    invariant((1...12).contains(month) && (1...31).contains(day), "month/day \(month)/\(day) for \(time.dayOfYear)")
    invariant(ScanTime.dayOfYear(year: time.year, month: month, day: day) == time.dayOfYear, "day of year round trip")
    blackHole(time.description)
    blackHole(time.calendarDate)
    let seconds = time.secondsSinceEpoch
    invariant(seconds >= 0, "negative seconds \(seconds)")
    // Whole seconds survive the trip back (tenths are not checked: see fuzz/README.md); a leap second
    // (:60) is the next minute's :00, so it is excluded.
    if time.second < 60, let back = ScanTime(secondsSinceEpoch: seconds.rounded(.down)) {
        invariant(back.year == time.year && back.dayOfYear == time.dayOfYear && back.hour == time.hour
                  && back.minute == time.minute && back.second == time.second, "\(time) came back as \(back)")
    } else if time.second < 60 {
        invariant(false, "\(time): its own seconds since the epoch are rejected")
    }
}

func pad(_ value: Int, _ width: Int) -> String {
    let digits = String(value)
    return String(repeating: "0", count: max(0, width - digits.count)) + digits
}
