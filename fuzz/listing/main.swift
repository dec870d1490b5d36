// libFuzzer target: the ListObjectsV2 reader in Sources/ObjectStore/Listing.swift — `ListingPage(xml:prefix:)`,
// `ListingRules`, `XMLScan`, `ISO8601` — and `URLEncoding` (Source.swift), which undoes `encoding-type=url`.
// A listing page comes from whatever server `--source` names, so every byte of it is untrusted.
//
// Each input is used three ways:
//   1. as the whole document;
//   2. wrapped in a ListBucketResult skeleton, inside <Contents> and <CommonPrefixes>, so that mutations
//      land in the per-object fields without the fuzzer first having to invent the envelope;
//   3. split at newlines into key / size / etag / last-modified / prefix and placed in a well-formed page
//      (plain, then URL-encoded), which reaches the size rule, the timestamp parser, the entity decoder
//      and the name rules with arbitrary field text.
// Invariants: never more entries than elements; whatever a page accepts also passes
// `ListingRules.validated` (the check applied when the listing is read back from the cache); a page
// built from markup-free fields holds exactly those fields, or says why it left them out.

// Listing.swift uses Foundation's `range(of:)` without importing Foundation (in the package another
// ObjectStore file's import makes it visible), so it is imported here.
import Foundation

let folder = "ABI-L1b-RadC/2023/066/14/"

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let text = fuzzText(data, size)

    // 1. The input as the document, listed at the root and under a folder.
    for prefix in ["", folder] {
        let page = ListingPage(xml: text, prefix: prefix)
        checkPage(page, prefix: prefix, contents: occurrences("<Contents>", in: text),
                  prefixes: occurrences("<CommonPrefixes>", in: text))
    }

    // 2. The input inside a listing skeleton.
    let wrapped = """
        <?xml version="1.0" encoding="UTF-8"?>
        <ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>noaa-goes16</Name>\
        <Prefix>\(folder)</Prefix><KeyCount>1</KeyCount><MaxKeys>1000</MaxKeys>\
        <Contents>\(text)</Contents><CommonPrefixes>\(text)</CommonPrefixes>\
        <IsTruncated>false</IsTruncated></ListBucketResult>
        """
    let wrappedPage = ListingPage(xml: wrapped, prefix: folder)
    checkPage(wrappedPage, prefix: folder, contents: occurrences("<Contents>", in: wrapped),
              prefixes: occurrences("<CommonPrefixes>", in: wrapped))

    // 3. The input as the fields of one object and one subfolder.
    let fields = text.split(separator: "\n", maxSplits: 4, omittingEmptySubsequences: false).map(String.init)
    func field(_ i: Int, _ fallback: String) -> String { i < fields.count ? fields[i] : fallback }
    let leaf = field(0, ""), sizeText = field(1, "0"), etag = field(2, "&quot;e&quot;")
    let modified = field(3, "2023-03-07T14:34:19.000Z"), subfolder = field(4, "sub")
    for encoded in [false, true] {
        let key = folder + leaf, prefix = folder + subfolder + "/"
        let document = """
            <?xml version="1.0" encoding="UTF-8"?>
            <ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>noaa-goes16</Name>\
            <Prefix>\(folder)</Prefix>\(encoded ? "<EncodingType>url</EncodingType>" : "")\
            <Contents><Key>\(encoded ? URLEncoding.path(key) : key)</Key><LastModified>\(modified)</LastModified>\
            <ETag>\(etag)</ETag><Size>\(sizeText)</Size><StorageClass>STANDARD</StorageClass></Contents>\
            <CommonPrefixes><Prefix>\(encoded ? URLEncoding.path(prefix) : prefix)</Prefix></CommonPrefixes>\
            <NextContinuationToken>\(etag)</NextContinuationToken><IsTruncated>true</IsTruncated></ListBucketResult>
            """
        let page = ListingPage(xml: document, prefix: folder)
        checkPage(page, prefix: folder, contents: occurrences("<Contents>", in: document),
                  prefixes: occurrences("<CommonPrefixes>", in: document))
        // Bytes, not Characters: "<" followed by a combining mark is one Character but still markup.
        guard !fields.joined().utf8.contains(UInt8(ascii: "<")) else { continue }
        invariant(page.isComplete, "a whole document is not complete")
        invariant(page.isTruncated, "IsTruncated lost")
        // No markup in the fields: each entry is either exactly what was put in, or rejected with a reason.
        let expectedKey = encoded ? key : XMLScan.decodeEntities(key)
        invariant(page.listing.objects.count + page.listing.commonPrefixes.count + page.rejected.count == 2,
                  "entries neither kept nor rejected: \(page.rejected)")
        if let object = page.listing.objects.first {
            invariant(object.key == expectedKey, "key \(object.key.debugDescription) != \(expectedKey.debugDescription)")
            invariant(object.etag == XMLScan.decodeEntities(etag), "etag mismatch")
            invariant(object.size == ListingRules.size(XMLScan.decodeEntities(sizeText)), "size mismatch")
            invariant(object.lastModified == ISO8601.seconds(XMLScan.decodeEntities(modified)), "lastModified mismatch")
        }
        if let kept = page.listing.commonPrefixes.first {
            invariant(kept == (encoded ? prefix : XMLScan.decodeEntities(prefix)), "prefix mismatch")
        }
        let token = XMLScan.decodeEntities(etag)
        invariant(page.continuationToken == (token.isEmpty ? nil : token), "continuation token mismatch")
    }

    // The helpers on their own.
    let decoded = XMLScan.decodeEntities(text)
    if !text.contains("&") { invariant(decoded == text, "decoding text without '&' changed it") }
    if let seconds = ISO8601.seconds(text) {
        invariant(seconds.isFinite && abs(seconds) < 253_402_300_800, "timestamp \(seconds) out of range")
    }
    invariant(URLEncoding.decode(URLEncoding.path(text)) == text, "path encoding does not round-trip")
    invariant(URLEncoding.decode(URLEncoding.query(text)) == text, "query encoding does not round-trip")
    blackHole(URLEncoding.decode(text))
    blackHole(ListingRules.printable(text))
    blackHole(ListingRules.problem(key: text, under: folder))
    blackHole(ListingRules.problem(commonPrefix: text, under: folder))
    return 0
}

func checkPage(_ page: ListingPage, prefix: String, contents: Int, prefixes: Int) {
    invariant(page.listing.objects.count <= contents, "more objects than <Contents>")
    invariant(page.listing.commonPrefixes.count <= prefixes, "more prefixes than <CommonPrefixes>")
    // What the kernel will be given as names: checked on bytes, the way Linux sees them.
    for object in page.listing.objects {
        checkName(object.key, under: prefix)
    }
    for folder in page.listing.commonPrefixes {
        invariant(folder.utf8.last == UInt8(ascii: "/"), "subfolder \(folder.debugDescription) does not end in /")
        checkName(String(folder.dropLast()), under: prefix)
    }
    let revalidated = ListingRules.validated(page.listing, prefix: prefix)
    invariant(revalidated.rejected == 0 && revalidated.listing == page.listing,
              "the page accepted entries that the cache check rejects: \(page.listing)")
    blackHole(page.continuationToken)
}

/// An accepted entry must be one name directly under `prefix` (no "/" byte in it), and no component of
/// its path may be empty, "." or "..", longer than NAME_MAX or hold a NUL byte.
func checkName(_ path: String, under prefix: String) {
    let bytes = Array(path.utf8), head = Array(prefix.utf8)
    invariant(bytes.starts(with: head), "\(path.debugDescription) is not under \(prefix.debugDescription)")
    let leaf = bytes.dropFirst(head.count)
    invariant(!leaf.contains(UInt8(ascii: "/")), "\(path.debugDescription) is not directly under \(prefix.debugDescription)")
    for component in bytes.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false) {
        invariant(!component.isEmpty && component.elementsEqual(".".utf8) == false && component.elementsEqual("..".utf8) == false,
                  "\(path.debugDescription) has an empty, . or .. component")
        invariant(component.count <= 255 && !component.contains(0), "\(path.debugDescription) has a bad component")
    }
}

/// How many times `tag` occurs in `text`, as bytes: an upper bound on the elements a scanner can find
/// (cheaper than XMLScan itself, whose Foundation search dominates the time of each run).
func occurrences(_ tag: String, in text: String) -> Int {
    let needle = Array(tag.utf8), haystack = Array(text.utf8)
    guard !needle.isEmpty, haystack.count >= needle.count else { return 0 }
    var count = 0
    for start in 0...(haystack.count - needle.count) where haystack[start] == needle[0] {
        if haystack[start..<(start + needle.count)].elementsEqual(needle) { count += 1 }
    }
    return count
}
