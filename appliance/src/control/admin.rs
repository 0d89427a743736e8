//! The admin socket: a local Unix stream socket speaking one JSON object per line.
//!
//! The server's threads do the socket I/O only. They hand every request to the control
//! thread as a [`ControlRequest`] over a channel and wait (at most
//! [`CONTROL_ANSWER_TIMEOUT`]) for its answer, so the control thread never blocks on a
//! client and nothing but the control thread touches control state.
//!
//! # Protocol
//!
//! Requests: `{"cmd":"status"}`, `{"cmd":"services"}`, `{"cmd":"members"}` (optionally
//! `"service":"ADDR"`), `{"cmd":"bindings"}`, `{"cmd":"stats"}`,
//! `{"cmd":"drain","service":"ADDR","member":"CARE-OF or ID"}`, `{"cmd":"undrain",...}`,
//! `{"cmd":"reload"}`. Answers: `{"ok":true,"data":...}` or `{"ok":false,"error":"..."}`.
//! A bad request gets an error answer and the connection stays open. Lines are limited to
//! [`MAX_LINE`] octets, connections to [`MAX_CONNECTIONS`] at once, and a client idle for
//! [`IDLE_TIMEOUT`] is disconnected.
//!
//! # Access
//!
//! The socket is created with mode 0600 in a directory created 0755 if missing: only its
//! owner (root, on an appliance) can talk to it. A socket file left by a dead appliance is
//! replaced; one a live appliance answers on is not (the second appliance refuses to start).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::Ipv6Addr;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::{json, Value};

pub use crate::control::plane::MemberSelector;
use crate::control::view::ControlView;

/// Longest request line accepted.
pub const MAX_LINE: usize = 64 * 1024;
/// Most clients served at once.
pub const MAX_CONNECTIONS: usize = 16;
/// A client that sends nothing for this long is disconnected.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a request waits for the control thread.
pub const CONTROL_ANSWER_TIMEOUT: Duration = Duration::from_secs(2);

/// What the admin threads ask the control thread.
pub enum ControlRequest {
    /// Fill in a [`ControlView`].
    View(mpsc::Sender<ControlView>),
    /// Do something; the answer is a message for the operator or an error.
    Action(Action, mpsc::Sender<Result<String, String>>),
}

/// A state-changing command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Drain {
        service: Ipv6Addr,
        member: MemberSelector,
    },
    Undrain {
        service: Ipv6Addr,
        member: MemberSelector,
    },
    Reload,
}

/// A parsed request line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Status,
    Services,
    Members { service: Option<Ipv6Addr> },
    Bindings,
    Stats,
    Action(Action),
}

impl Request {
    /// Parses one request line.
    pub fn parse(line: &str) -> Result<Request, String> {
        let v: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
        let obj = v.as_object().ok_or("a request is a JSON object")?;
        let cmd = obj
            .get("cmd")
            .and_then(Value::as_str)
            .ok_or("missing \"cmd\"")?;
        let addr = |key: &str| -> Result<Ipv6Addr, String> {
            let s = obj
                .get(key)
                .and_then(Value::as_str)
                .ok_or(format!("{cmd}: missing \"{key}\""))?;
            s.parse()
                .map_err(|_| format!("{cmd}: \"{key}\" {s:?} is not an IPv6 address"))
        };
        let member = || -> Result<MemberSelector, String> {
            let m = obj
                .get("member")
                .ok_or(format!("{cmd}: missing \"member\""))?;
            if let Some(id) = m.as_u64() {
                return u32::try_from(id)
                    .map(MemberSelector::Id)
                    .map_err(|_| format!("{cmd}: member id {id} is too large"));
            }
            let s = m
                .as_str()
                .ok_or(format!("{cmd}: \"member\" is a care-of address or an id"))?;
            if let Ok(a) = s.parse::<Ipv6Addr>() {
                Ok(MemberSelector::CareOf(a))
            } else if let Ok(id) = s.parse::<u32>() {
                Ok(MemberSelector::Id(id))
            } else {
                Err(format!(
                    "{cmd}: member {s:?} is neither a care-of address nor an id"
                ))
            }
        };
        Ok(match cmd {
            "status" => Request::Status,
            "services" => Request::Services,
            "members" => Request::Members {
                service: match obj.get("service") {
                    None | Some(Value::Null) => None,
                    Some(_) => Some(addr("service")?),
                },
            },
            "bindings" => Request::Bindings,
            "stats" => Request::Stats,
            "drain" => Request::Action(Action::Drain {
                service: addr("service")?,
                member: member()?,
            }),
            "undrain" => Request::Action(Action::Undrain {
                service: addr("service")?,
                member: member()?,
            }),
            "reload" => Request::Action(Action::Reload),
            other => return Err(format!("unknown command {other:?}")),
        })
    }

    /// The part of the view this request shows.
    pub fn select(&self, view: &ControlView) -> Value {
        match self {
            Request::Status => json!({
                "version": view.version,
                "pid": view.pid,
                "uptime_s": view.uptime_s,
                "config_path": view.config_path,
                "config_generation": view.config_generation,
                "snapshot_generation": view.snapshot_generation,
                "snapshots_retained": view.snapshots_retained,
                "workers": view.workers.len(),
                "ports": view.ports,
                "services": view.services.len(),
                "members": view.members.len(),
                "bindings": view.bindings.len(),
                "rx_packets": view.dataplane.get("rx_packets").copied().unwrap_or(0),
                "forwarded": view.dataplane.get("forwarded").copied().unwrap_or(0),
                "reversed": view.dataplane.get("reversed").copied().unwrap_or(0),
                "dropped": view.dataplane.iter().filter(|(k, _)| k.starts_with("drop_")).map(|(_, v)| v).sum::<u64>(),
            }),
            Request::Services => json!(view.services),
            Request::Members { service } => json!(view
                .members
                .iter()
                .filter(|m| service.is_none_or(|s| m.service == s))
                .collect::<Vec<_>>()),
            Request::Bindings => json!({
                "home": view.bindings,
                "route_optimised": view.route_optimised,
            }),
            Request::Stats => json!({
                "dataplane": view.dataplane,
                "workers": view.workers,
                "registration": view.registration,
                "health": view.health,
                "control": view.control,
                "route_optimisation": view.route_optimisation,
            }),
            Request::Action(_) => Value::Null,
        }
    }
}

/// The running admin server; [`AdminServer::shutdown`] or dropping it stops it, closes
/// the clients' connections and removes the socket.
pub struct AdminServer {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl AdminServer {
    /// Binds the socket at `path` and serves it on a thread.
    ///
    /// Creates the parent directory if missing, replaces a socket file nobody answers on
    /// (left by an appliance that died), and refuses to start when a live appliance answers
    /// on it or when the path is something other than a socket.
    pub fn start(
        path: &Path,
        to_control: mpsc::Sender<ControlRequest>,
    ) -> anyhow::Result<AdminServer> {
        if let Some(dir) = path.parent() {
            if !dir.as_os_str().is_empty() && !dir.exists() {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).ok();
            }
        }
        match std::fs::symlink_metadata(path) {
            Ok(meta) if !meta.file_type().is_socket() => bail!(
                "admin socket {}: the path exists and is not a socket; not replacing it",
                path.display()
            ),
            Ok(_) => {
                if UnixStream::connect(path).is_ok() {
                    bail!(
                        "admin socket {}: another appliance is answering on it; give this one \
                         another admin.socket",
                        path.display()
                    );
                }
                std::fs::remove_file(path)
                    .with_context(|| format!("removing the stale socket {}", path.display()))?;
            }
            Err(_) => {}
        }
        let listener =
            UnixListener::bind(path).with_context(|| format!("binding {}", path.display()))?;
        // Whoever can open the socket can drain members and reload: owner only.
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("chmod 600 {}", path.display()))?;
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("anycast6-admin".into())
            .spawn(move || accept_loop(listener, to_control, flag))?;
        Ok(AdminServer {
            path: path.to_owned(),
            stop,
            thread: Some(thread),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stops accepting, closes every client connection, waits for the server's threads
    /// (at most [`CONTROL_ANSWER_TIMEOUT`] for a request in flight) and removes the socket.
    pub fn shutdown(self) {
        drop(self);
    }
}

impl Drop for AdminServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A client being served: a handle on its stream (to close it at shutdown) and its thread.
struct Connection {
    stream: UnixStream,
    thread: JoinHandle<()>,
}

fn accept_loop(
    listener: UnixListener,
    to_control: mpsc::Sender<ControlRequest>,
    stop: Arc<AtomicBool>,
) {
    let mut connections: Vec<Connection> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        connections.retain(|c| !c.thread.is_finished());
        match listener.accept() {
            Ok((mut stream, _)) => {
                if connections.len() >= MAX_CONNECTIONS {
                    let _ = stream.set_nonblocking(false);
                    let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
                    let _ = writeln!(
                        stream,
                        "{}",
                        json!({"ok": false, "error": format!(
                            "too many admin connections (at most {MAX_CONNECTIONS})"
                        )})
                    );
                    continue;
                }
                let Ok(handle) = stream.try_clone() else {
                    continue;
                };
                let tx = to_control.clone();
                let flag = Arc::clone(&stop);
                let spawned = std::thread::Builder::new()
                    .name("anycast6-admin-conn".into())
                    .spawn(move || serve(stream, &tx, &flag));
                if let Ok(thread) = spawned {
                    connections.push(Connection {
                        stream: handle,
                        thread,
                    });
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20));
            }
            // EMFILE and the like: back off rather than spin.
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
    // A blocked read returns at once once its socket is shut down.
    for c in &connections {
        let _ = c.stream.shutdown(std::net::Shutdown::Both);
    }
    for c in connections {
        let _ = c.thread.join();
    }
}

/// Serves one client until it hangs up, idles out or the server stops.
fn serve(stream: UnixStream, to_control: &mpsc::Sender<ControlRequest>, stop: &AtomicBool) {
    if stream.set_nonblocking(false).is_err()
        || stream.set_read_timeout(Some(IDLE_TIMEOUT)).is_err()
        || stream.set_write_timeout(Some(IDLE_TIMEOUT)).is_err()
    {
        return;
    }
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    let mut line = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        line.clear();
        let read = (&mut reader)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut line);
        match read {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let answer = if line.len() > MAX_LINE && line.last() != Some(&b'\n') {
            // Too long: answer, then drop the client (the rest of its line is unread).
            let _ = writeln!(
                writer,
                "{}",
                json!({"ok": false, "error": format!("request longer than {MAX_LINE} octets")})
            );
            return;
        } else {
            match std::str::from_utf8(&line) {
                Ok(text) if text.trim().is_empty() => continue,
                Ok(text) => answer(text.trim(), to_control),
                Err(_) => json!({"ok": false, "error": "request is not UTF-8"}),
            }
        };
        if writeln!(writer, "{answer}").is_err() {
            return;
        }
    }
}

/// The answer to one request line.
pub fn answer(line: &str, to_control: &mpsc::Sender<ControlRequest>) -> Value {
    let request = match Request::parse(line) {
        Ok(r) => r,
        Err(e) => return json!({"ok": false, "error": e}),
    };
    let unavailable = json!({"ok": false, "error": "the control thread did not answer in time"});
    match request {
        Request::Action(action) => {
            let (tx, rx) = mpsc::channel();
            if to_control.send(ControlRequest::Action(action, tx)).is_err() {
                return json!({"ok": false, "error": "the appliance is stopping"});
            }
            match rx.recv_timeout(CONTROL_ANSWER_TIMEOUT) {
                Ok(Ok(msg)) => json!({"ok": true, "data": msg}),
                Ok(Err(e)) => json!({"ok": false, "error": e}),
                Err(_) => unavailable,
            }
        }
        query => {
            let (tx, rx) = mpsc::channel();
            if to_control.send(ControlRequest::View(tx)).is_err() {
                return json!({"ok": false, "error": "the appliance is stopping"});
            }
            match rx.recv_timeout(CONTROL_ANSWER_TIMEOUT) {
                Ok(view) => json!({"ok": true, "data": query.select(&view)}),
                Err(_) => unavailable,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_requests() {
        assert_eq!(Request::parse(r#"{"cmd":"status"}"#), Ok(Request::Status));
        assert_eq!(
            Request::parse(r#"{"cmd":"members","service":"2001:db8:100::1"}"#),
            Ok(Request::Members {
                service: Some("2001:db8:100::1".parse().unwrap())
            })
        );
        assert_eq!(
            Request::parse(
                r#"{"cmd":"drain","service":"2001:db8:100::1","member":"2001:db8:2::10"}"#
            ),
            Ok(Request::Action(Action::Drain {
                service: "2001:db8:100::1".parse().unwrap(),
                member: MemberSelector::CareOf("2001:db8:2::10".parse().unwrap())
            }))
        );
        assert_eq!(
            Request::parse(r#"{"cmd":"undrain","service":"2001:db8:100::1","member":7}"#),
            Ok(Request::Action(Action::Undrain {
                service: "2001:db8:100::1".parse().unwrap(),
                member: MemberSelector::Id(7)
            }))
        );
        assert_eq!(
            Request::parse(r#"{"cmd":"reload"}"#),
            Ok(Request::Action(Action::Reload))
        );
    }

    #[test]
    fn bad_requests_say_why() {
        for (line, want) in [
            ("nonsense", "not JSON"),
            ("[1]", "JSON object"),
            (r#"{"x":1}"#, "missing \"cmd\""),
            (r#"{"cmd":"fly"}"#, "unknown command"),
            (r#"{"cmd":"drain","member":"1"}"#, "missing \"service\""),
            (
                r#"{"cmd":"drain","service":"x","member":"1"}"#,
                "not an IPv6",
            ),
            (
                r#"{"cmd":"drain","service":"::1","member":"bob"}"#,
                "neither",
            ),
            (
                r#"{"cmd":"drain","service":"::1","member":99999999999}"#,
                "too large",
            ),
        ] {
            let e = Request::parse(line).unwrap_err();
            assert!(e.contains(want), "{line}: {e}");
        }
    }

    #[test]
    fn control_that_does_not_answer_is_an_error_not_a_hang() {
        let (tx, rx) = mpsc::channel();
        let started = std::time::Instant::now();
        let a = answer(r#"{"cmd":"status"}"#, &tx);
        assert_eq!(a["ok"], false);
        assert!(a["error"].as_str().unwrap().contains("did not answer"));
        assert!(started.elapsed() < CONTROL_ANSWER_TIMEOUT + Duration::from_secs(1));
        drop(rx);
        let a = answer(r#"{"cmd":"reload"}"#, &tx);
        assert!(a["error"].as_str().unwrap().contains("stopping"));
    }
}
