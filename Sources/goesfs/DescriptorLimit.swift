import Foundation

/// Raises the soft limit on open descriptors to the hard limit at start.
///
/// Every open object holds its data file open, and each connection a socket; the usual soft limit
/// of 1024 is reached by a few hundred open files plus downloads. The hard limit is what the
/// administrator allows (the systemd unit sets `LimitNOFILE=1048576`).
enum DescriptorLimit {
    /// Returns a line for the log saying what was done.
    static func raiseToHardLimit() -> String {
        let resource = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
        var limits = rlimit()
        guard getrlimit(resource, &limits) == 0 else {
            return "open files: cannot read the limit: \(String(cString: strerror(errno)))"
        }
        let soft = limits.rlim_cur, hard = limits.rlim_max
        guard soft < hard else { return "open files: limit \(soft) (already the hard limit)" }
        limits.rlim_cur = hard
        guard setrlimit(resource, &limits) == 0 else {
            return "open files: cannot raise the soft limit \(soft) to the hard limit \(hard): \(String(cString: strerror(errno)))"
        }
        return "open files: raised the soft limit from \(soft) to the hard limit \(hard)"
    }
}
