//! This process's TCP sockets, read from `/proc` (Linux): which are
//! connected to a port, and whether they set `TCP_NODELAY`.

use std::collections::BTreeSet;
use std::os::fd::RawFd;

use rustix::process::{PidfdFlags, PidfdGetfdFlags, getpid, pidfd_getfd, pidfd_open};

/// Every TCP socket of this process connected to `port` on any host, with
/// whether it sets `TCP_NODELAY`.
pub fn connected_to_port(port: u16) -> Vec<(RawFd, bool)> {
    let inodes = inodes_connected_to(port);
    let mut found = Vec::new();
    let pidfd = pidfd_open(getpid(), PidfdFlags::empty());
    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else {
        return found;
    };
    for entry in entries.flatten() {
        let Ok(fd) = entry.file_name().to_string_lossy().parse::<RawFd>() else {
            continue;
        };
        let Ok(link) = std::fs::read_link(entry.path()) else {
            continue;
        };
        let link = link.to_string_lossy();
        let Some(inode) = link
            .strip_prefix("socket:[")
            .and_then(|rest| rest.strip_suffix(']'))
            .and_then(|inode| inode.parse::<u64>().ok())
        else {
            continue;
        };
        if !inodes.contains(&inode) {
            continue;
        }
        // A duplicate of the descriptor, taken through this process's pidfd
        // (no unsafe borrowing of a descriptor this code does not own); a
        // socket's options are shared by its duplicates. One closed since it
        // was listed fails here and is skipped.
        let duplicate = pidfd
            .as_ref()
            .ok()
            .and_then(|pidfd| pidfd_getfd(pidfd, fd, PidfdGetfdFlags::empty()).ok());
        if let Some(nodelay) =
            duplicate.and_then(|dup| rustix::net::sockopt::tcp_nodelay(&dup).ok())
        {
            found.push((fd, nodelay));
        }
    }
    found
}

/// Inodes of the established TCP connections whose remote port is `port`.
fn inodes_connected_to(port: u16) -> BTreeSet<u64> {
    const ESTABLISHED: &str = "01";
    let mut inodes = BTreeSet::new();
    for table in ["/proc/self/net/tcp", "/proc/self/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let columns: Vec<&str> = line.split_whitespace().collect();
            let (Some(remote), Some(state), Some(inode)) =
                (columns.get(2), columns.get(3), columns.get(9))
            else {
                continue;
            };
            let remote_port = remote
                .rsplit_once(':')
                .and_then(|(_, hex)| u16::from_str_radix(hex, 16).ok());
            if remote_port == Some(port)
                && *state == ESTABLISHED
                && let Ok(inode) = inode.parse()
            {
                inodes.insert(inode);
            }
        }
    }
    inodes
}
