//! Listen addresses that are really ours: a listener is bound only when its address is free, or
//! when this process is the documented take-over of the Gatehouse that holds it.
//!
//! Listeners use `SO_REUSEPORT` so that a new binary can bind the ports of the running one and
//! take over without refusing a connection (docs/deployment.md, "Upgrading without downtime").
//! Without a guard that also lets a second `gatehouse serve` started by mistake share the ports
//! silently, requests alternating between two processes and two databases. So:
//!
//! - a process holds an advisory lock on `<data-dir>/<role>.lock` (role `serve`, `gateway` or
//!   `dashboard`) and writes its pid and listen addresses into it (when several processes of one
//!   role share a data directory, the first holds it);
//! - before binding, an address is probed **without** `SO_REUSEPORT`: any listener on it, whoever
//!   owns it, makes the probe fail;
//! - a taken address is refused (the process exits non-zero naming the address and its owner)
//!   unless the process was started with `--take-over` **and** the lock of the same role in the
//!   same data directory is held by a live process that listens on that address: only then is
//!   the address shared for the hand-over. The new process takes the lock when the old one exits.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use tokio::net::TcpListener;

/// This process's claim on its data directory for one role.
#[derive(Debug)]
pub struct Instance {
    path: PathBuf,
    file: Option<File>,
    /// The running process this one replaces (`--take-over`): its pid and addresses.
    predecessor: Option<Holder>,
    take_over: bool,
    bound: Vec<SocketAddr>,
}

/// What a lock file says about the process holding it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// Its process id.
    pub pid: u32,
    /// The addresses it listens on.
    pub listening: Vec<SocketAddr>,
}

impl Holder {
    fn parse(text: &str) -> Option<Holder> {
        let mut pid = None;
        let mut listening = Vec::new();
        for line in text.lines() {
            if let Some(p) = line.strip_prefix("pid ") {
                pid = p.trim().parse().ok();
            } else if let Some(a) = line.strip_prefix("listen ") {
                listening.extend(a.trim().parse::<SocketAddr>().ok());
            }
        }
        Some(Holder {
            pid: pid?,
            listening,
        })
    }

    fn render(&self) -> String {
        let mut s = format!("pid {}\n", self.pid);
        for a in &self.listening {
            s.push_str(&format!("listen {a}\n"));
        }
        s
    }
}

impl Instance {
    /// Claims `<data_dir>/<role>.lock` when no other process holds it; otherwise remembers the
    /// holder (the predecessor of a `--take-over`, or named in errors).
    pub fn claim(data_dir: &Path, role: &str, take_over: bool) -> anyhow::Result<Instance> {
        std::fs::create_dir_all(data_dir).with_context(|| {
            format!(
                "cannot create the data directory {}: check the path and its permissions \
                 (--data-dir, GATEHOUSE_DATA_DIR)",
                data_dir.display()
            )
        })?;
        let path = data_dir.join(format!("{role}.lock"));
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| {
                format!(
                    "cannot open {}: the data directory must be writable (--data-dir, \
                     GATEHOUSE_DATA_DIR)",
                    path.display()
                )
            })?;
        let (file, predecessor) = match file.try_lock() {
            Ok(()) => (Some(file), None),
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                (None, Holder::parse(&text))
            }
            Err(TryLockError::Error(e)) => {
                return Err(e).with_context(|| {
                    format!(
                        "cannot lock {}: the data directory must be on a local file system",
                        path.display()
                    )
                });
            }
        };
        if take_over && file.is_some() {
            bail!(
                "--take-over: no Gatehouse is running `gatehouse {role}` with the data directory \
                 {}, so there is nothing to take over; start without --take-over",
                data_dir.display()
            );
        }
        Ok(Instance {
            path,
            file,
            predecessor,
            take_over,
            bound: Vec::new(),
        })
    }

    /// Binds `addr` (with `SO_REUSEPORT`) when it is free, or when this process takes over from
    /// the predecessor listening on it; otherwise fails naming the address. `what` names the
    /// listener and `flag` its setting, for the message.
    pub fn bind(
        &mut self,
        addr: SocketAddr,
        what: &str,
        flag: &str,
    ) -> anyhow::Result<TcpListener> {
        let setting = format!(
            "--{flag} or GATEHOUSE_{}",
            flag.replace('-', "_").to_uppercase()
        );
        if let Err(e) = probe(addr) {
            let ours = self
                .predecessor
                .as_ref()
                .is_some_and(|h| h.listening.contains(&addr));
            if !(self.take_over && ours) {
                let hint = if e.kind() != std::io::ErrorKind::AddrInUse {
                    e.to_string()
                } else if ours {
                    format!(
                        "it is in use by the Gatehouse running with this data directory (process \
                         {}); to replace it without downtime start this one with --take-over",
                        self.predecessor.as_ref().map_or(0, |h| h.pid)
                    )
                } else if self.take_over {
                    format!(
                        "it is in use, and not by the Gatehouse being taken over (listening on {})",
                        self.predecessor
                            .as_ref()
                            .map_or_else(|| "nothing known".to_owned(), |h| list(&h.listening))
                    )
                } else {
                    "it is in use by another process (another Gatehouse, or any other server)"
                        .to_owned()
                };
                bail!(
                    "cannot listen on {addr} for the {what}: {hint}; choose another address with {setting}"
                );
            }
        }
        let listener = gatehouse_gateway::accept::bind_reusable(addr).with_context(|| {
            format!("cannot listen on {addr} for the {what}: choose another address with {setting}")
        })?;
        self.bound.push(addr);
        Ok(listener)
    }

    /// Records this process in the lock file once its listeners are bound: now when it holds the
    /// lock, else (a take-over) from a thread that waits for the predecessor to exit.
    pub fn publish(mut self) {
        let me = Holder {
            pid: std::process::id(),
            listening: std::mem::take(&mut self.bound),
        };
        match self.file.take() {
            Some(f) => {
                write_holder(&f, &me);
                // Held until the process exits.
                std::mem::forget(f);
            }
            // Another process of this role holds the lock and this one does not replace it.
            None if !self.take_over => {}
            None => {
                let path = self.path.clone();
                std::thread::spawn(move || {
                    let Ok(f) = OpenOptions::new().read(true).write(true).open(&path) else {
                        return;
                    };
                    if f.lock().is_ok() {
                        write_holder(&f, &me);
                        std::mem::forget(f);
                    }
                });
            }
        }
    }
}

fn write_holder(mut f: &File, h: &Holder) {
    let _ = f.set_len(0);
    let _ = f.seek(SeekFrom::Start(0));
    let _ = f.write_all(h.render().as_bytes());
    let _ = f.flush();
}

fn list(addrs: &[SocketAddr]) -> String {
    if addrs.is_empty() {
        return "nothing".to_owned();
    }
    addrs
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether anything listens on `addr`: a bind without `SO_REUSEPORT` fails when any listener
/// holds the address (with or without `SO_REUSEPORT`).
fn probe(addr: SocketAddr) -> std::io::Result<()> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    // SO_REUSEADDR only lets the probe bind past connections in TIME_WAIT, never past a listener.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holders_round_trip() {
        let h = Holder {
            pid: 42,
            listening: vec![
                "127.0.0.1:8080".parse().unwrap(),
                "[::1]:3000".parse().unwrap(),
            ],
        };
        assert_eq!(Holder::parse(&h.render()), Some(h));
        assert_eq!(Holder::parse("garbage"), None);
    }

    #[tokio::test]
    async fn a_taken_address_is_refused_and_a_take_over_needs_the_lock_holder() {
        let dir = tempfile::tempdir().unwrap();
        let mut first = Instance::claim(dir.path(), "serve", false).unwrap();
        let l1 = first
            .bind("127.0.0.1:0".parse().unwrap(), "gateway", "gateway-listen")
            .unwrap();
        let addr = l1.local_addr().unwrap();
        first.bound = vec![addr];
        first.publish();

        // A second process on the same data directory may run (on other addresses), but not on
        // the first one's address without --take-over; the message says how to take over.
        let mut other_ports = Instance::claim(dir.path(), "serve", false).unwrap();
        let e = other_ports
            .bind(addr, "gateway", "gateway-listen")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&addr.to_string()) && e.contains("--take-over"),
            "{e}"
        );
        assert!(
            other_ports
                .bind("127.0.0.1:0".parse().unwrap(), "gateway", "gateway-listen")
                .is_ok()
        );
        // With --take-over it may share exactly the predecessor's address.
        let mut second = Instance::claim(dir.path(), "serve", true).unwrap();
        assert_eq!(
            second.predecessor.as_ref().map(|h| h.listening.clone()),
            Some(vec![addr])
        );
        let l2 = second.bind(addr, "gateway", "gateway-listen").unwrap();
        assert_eq!(l2.local_addr().unwrap(), addr);
        // --take-over with nothing to take over is a mistake.
        let empty = tempfile::tempdir().unwrap();
        assert!(Instance::claim(empty.path(), "serve", true).is_err());

        // Another data directory: the taken address is refused, naming it.
        let other = tempfile::tempdir().unwrap();
        let mut third = Instance::claim(other.path(), "serve", false).unwrap();
        let e = third
            .bind(addr, "gateway", "gateway-listen")
            .unwrap_err()
            .to_string();
        assert!(e.contains(&addr.to_string()) && e.contains("in use"), "{e}");
        assert!(e.contains("--gateway-listen"), "{e}");
        // Even with --take-over: the holder of that directory's lock is not listening there.
        third.publish();
        let mut fourth = Instance::claim(other.path(), "serve", true).unwrap();
        assert!(fourth.bind(addr, "gateway", "gateway-listen").is_err());
        // Any other server on an address counts too.
        let plain = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let taken = plain.local_addr().unwrap();
        assert!(fourth.bind(taken, "portal", "portal-listen").is_err());
        drop(l1);
        drop(l2);
    }
}
