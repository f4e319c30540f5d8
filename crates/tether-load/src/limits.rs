//! Raising the open-file limit so that thousands of connections fit in one process.

/// Raises the soft `RLIMIT_NOFILE` towards the hard limit so that `wanted` descriptors fit;
/// returns the soft limit now in force (`None` when it cannot be read).
pub fn raise_nofile(wanted: u64) -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct it is given, which lives on this stack.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return None;
    }
    let current: u64 = lim.rlim_cur;
    if current >= wanted {
        return Some(current);
    }
    let raised = libc::rlimit {
        rlim_cur: wanted.min(lim.rlim_max),
        rlim_max: lim.rlim_max,
    };
    // SAFETY: setrlimit only reads the struct it is given.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
        Some(raised.rlim_cur)
    } else {
        Some(current)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn never_lowers() {
        let now = super::raise_nofile(0).expect("readable");
        assert_eq!(super::raise_nofile(1), Some(now));
    }
}
