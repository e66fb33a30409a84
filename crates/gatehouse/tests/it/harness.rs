//! Starts the `gatehouse` binary for a test.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

/// A free port on 127.0.0.1 (bound and released; the race with other processes is negligible here).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running `gatehouse serve`; killed when dropped.
pub struct Server {
    child: Option<Child>,
    pub data_dir: PathBuf,
    pub gateway_port: u16,
    pub dashboard_port: u16,
    pub portal_port: u16,
    pub admin_key: String,
    pub stdout_lines: Vec<String>,
    extra_args: Vec<String>,
    http: reqwest::Client,
    /// When set, the server's log (stderr, at debug level) goes to this file.
    pub log_file: Option<PathBuf>,
    /// `serve`, `gateway` or `dashboard`.
    pub role: &'static str,
    /// The CA (PEM) the test client trusts when the server serves HTTPS (`tls_cert_file`); the
    /// URLs are then `https://`.
    pub https_ca: Option<String>,
    /// The ports were chosen here (free ports), so a failed first start may try others.
    own_ports: bool,
    /// Extra environment variables of the process.
    pub extra_env: Vec<(String, String)>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub const ADMIN_KEY: &str = "test-admin-key-0123456789";

impl Server {
    /// Starts a server with a fresh data dir and a known admin key (`GATEHOUSE_ADMIN_KEY`).
    pub fn start(data_dir: &Path) -> Server {
        Self::start_with(data_dir, &[], Some(ADMIN_KEY))
    }

    /// Starts a server with extra flags; `admin_key` None lets it generate one.
    pub fn start_with(data_dir: &Path, extra: &[&str], admin_key: Option<&str>) -> Server {
        let mut s = Server {
            child: None,
            data_dir: data_dir.to_owned(),
            gateway_port: free_port(),
            dashboard_port: free_port(),
            portal_port: free_port(),
            admin_key: admin_key.unwrap_or_default().to_owned(),
            stdout_lines: Vec::new(),
            extra_args: extra.iter().map(|s| (*s).to_owned()).collect(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
            log_file: None,
            role: "serve",
            https_ca: None,
            extra_env: Vec::new(),
            own_ports: true,
        };
        s.spawn(admin_key);
        s
    }

    /// Starts `gatehouse serve` on the given ports (e.g. a second process on the ports of a
    /// running one, for a binary upgrade); `log_file` captures its debug log.
    pub fn start_on_ports(
        data_dir: &Path,
        ports: (u16, u16, u16),
        extra: &[&str],
        log_file: Option<PathBuf>,
    ) -> Server {
        let mut s = Server {
            child: None,
            data_dir: data_dir.to_owned(),
            gateway_port: ports.0,
            dashboard_port: ports.1,
            portal_port: ports.2,
            admin_key: ADMIN_KEY.to_owned(),
            stdout_lines: Vec::new(),
            // The documented hand-over: the running process's ports and data directory.
            extra_args: std::iter::once("--take-over")
                .chain(extra.iter().copied())
                .map(str::to_owned)
                .collect(),
            http: reqwest::Client::new(),
            log_file,
            role: "serve",
            https_ca: None,
            extra_env: Vec::new(),
            own_ports: false,
        };
        s.spawn(Some(ADMIN_KEY));
        s
    }

    /// Starts `gatehouse serve` with HTTPS from `cert_file`/`key_file`, its clients trusting only
    /// `ca_pem`; the log (debug level) is captured.
    pub fn start_https(
        data_dir: &Path,
        ca_pem: &str,
        cert_file: &Path,
        key_file: &Path,
        extra: &[&str],
    ) -> Server {
        let mut args: Vec<String> = vec![
            "--tls-cert-file".into(),
            cert_file.display().to_string(),
            "--tls-key-file".into(),
            key_file.display().to_string(),
        ];
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        let mut s = Server {
            child: None,
            data_dir: data_dir.to_owned(),
            gateway_port: free_port(),
            dashboard_port: free_port(),
            portal_port: free_port(),
            admin_key: ADMIN_KEY.to_owned(),
            stdout_lines: Vec::new(),
            extra_args: args,
            http: reqwest::Client::new(),
            log_file: Some(data_dir.join("server.log")),
            role: "serve",
            https_ca: Some(ca_pem.to_owned()),
            extra_env: Vec::new(),
            own_ports: true,
        };
        s.spawn(Some(ADMIN_KEY));
        s
    }

    fn scheme(&self) -> &'static str {
        if self.https_ca.is_some() {
            "https"
        } else {
            "http"
        }
    }

    /// A fresh client (trusting the test CA when the server serves HTTPS).
    pub fn new_client(&self) -> reqwest::Client {
        let mut b = reqwest::Client::builder().timeout(Duration::from_secs(60));
        if let Some(ca) = &self.https_ca {
            b = b.tls_certs_only([reqwest::Certificate::from_pem(ca.as_bytes()).unwrap()]);
        }
        b.build().unwrap()
    }

    /// Starts one role (`gateway` or `dashboard`) on a shared data directory.
    pub fn start_role(role: &'static str, data_dir: &Path, extra: &[&str]) -> Server {
        let mut s = Server {
            child: None,
            data_dir: data_dir.to_owned(),
            gateway_port: free_port(),
            dashboard_port: free_port(),
            portal_port: free_port(),
            admin_key: ADMIN_KEY.to_owned(),
            stdout_lines: Vec::new(),
            extra_args: extra.iter().map(|s| (*s).to_owned()).collect(),
            http: reqwest::Client::new(),
            log_file: None,
            role,
            https_ca: None,
            extra_env: Vec::new(),
            own_ports: true,
        };
        s.spawn(Some(ADMIN_KEY));
        s
    }

    /// Starts one role (`serve`, `gateway` or `dashboard`) with extra flags and environment
    /// variables, its whole log (debug level) captured in `<data_dir>/<log_name>`.
    pub fn start_role_with_env(
        role: &'static str,
        data_dir: &Path,
        extra: &[&str],
        env: &[(&str, &str)],
        log_name: &str,
    ) -> Server {
        let mut s = Server {
            child: None,
            data_dir: data_dir.to_owned(),
            gateway_port: free_port(),
            dashboard_port: free_port(),
            portal_port: free_port(),
            admin_key: ADMIN_KEY.to_owned(),
            stdout_lines: Vec::new(),
            extra_args: extra.iter().map(|s| (*s).to_owned()).collect(),
            http: reqwest::Client::new(),
            log_file: Some(data_dir.join(log_name)),
            role,
            https_ca: None,
            extra_env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            own_ports: true,
        };
        s.spawn(Some(ADMIN_KEY));
        s
    }

    /// The one-time first-admin link the process printed ("First admin: open …"), if any.
    pub fn setup_link(&self) -> Option<String> {
        self.stdout_lines
            .iter()
            .find_map(|l| l.strip_prefix("First admin: open "))
            .map(|l| l.trim().to_owned())
    }

    /// Starts a server whose whole log (debug level) is captured in a file, so tests can check
    /// what it logs.
    pub fn start_capturing_logs(data_dir: &Path, extra: &[&str]) -> Server {
        let mut s = Server {
            child: None,
            data_dir: data_dir.to_owned(),
            gateway_port: free_port(),
            dashboard_port: free_port(),
            portal_port: free_port(),
            admin_key: ADMIN_KEY.to_owned(),
            stdout_lines: Vec::new(),
            extra_args: extra.iter().map(|s| (*s).to_owned()).collect(),
            http: reqwest::Client::new(),
            log_file: Some(data_dir.join("server.log")),
            role: "serve",
            https_ca: None,
            extra_env: Vec::new(),
            own_ports: true,
        };
        s.spawn(Some(ADMIN_KEY));
        s
    }

    /// The captured log so far.
    pub fn logs(&self) -> String {
        self.log_file
            .as_ref()
            .map(|p| std::fs::read_to_string(p).unwrap_or_default())
            .unwrap_or_default()
    }

    pub fn portal_url(&self, path: &str) -> String {
        format!("{}://127.0.0.1:{}{path}", self.scheme(), self.portal_port)
    }

    /// Starts the process. When this server chose its own free ports and the process exits
    /// before it is up (another test's process took a port between the choice and the bind:
    /// Gatehouse refuses a taken address), it tries again on new ports, at most three times.
    fn spawn(&mut self, admin_key: Option<&str>) {
        for attempt in 1..=3 {
            match self.try_spawn(admin_key) {
                Ok(()) => {
                    // Restarts keep the ports.
                    self.own_ports = false;
                    return;
                }
                Err(why) if self.own_ports && attempt < 3 => {
                    eprintln!("harness: gatehouse did not start ({why}); retrying on new ports");
                    self.gateway_port = free_port();
                    self.dashboard_port = free_port();
                    self.portal_port = free_port();
                }
                Err(why) => panic!("gatehouse did not start: {why}"),
            }
        }
    }

    fn try_spawn(&mut self, admin_key: Option<&str>) -> Result<(), String> {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_gatehouse"));
        cmd.arg(self.role)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--gateway-listen")
            .arg(format!("127.0.0.1:{}", self.gateway_port))
            .arg("--dashboard-listen")
            .arg(format!("127.0.0.1:{}", self.dashboard_port))
            .arg("--portal-listen")
            .arg(format!("127.0.0.1:{}", self.portal_port))
            .args(&self.extra_args)
            .env_remove("GATEHOUSE_ADMIN_KEY")
            .env_remove("GATEHOUSE_ADMIN_EMAIL")
            .env_remove("GATEHOUSE_ADMIN_PASSWORD")
            .envs(self.extra_env.iter().map(|(k, v)| (k, v)))
            .env("GATEHOUSE_LOG_LEVEL", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(path) = &self.log_file {
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .unwrap();
            cmd.stderr(f).env("GATEHOUSE_LOG_LEVEL", "debug");
        }
        if let Some(k) = admin_key {
            cmd.env("GATEHOUSE_ADMIN_KEY", k);
        }
        let mut child = cmd.spawn().expect("the gatehouse binary starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        self.stdout_lines.clear();
        // Connections pooled to a previous process on the same port are dead: start afresh.
        self.http = self.new_client();
        loop {
            let line = match rx.recv_timeout(Duration::from_secs(30)) {
                Ok(line) => line,
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    let status = child.wait().map(|s| s.to_string()).unwrap_or_default();
                    return Err(format!("it exited ({status}) before printing its URLs"));
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err("it printed no URLs within 30 s".to_owned());
                }
            };
            if let Some(k) = line.strip_prefix("Admin API key (shown only once, store it now): ") {
                self.admin_key = k.trim().to_owned();
            }
            let done = if self.role == "gateway" {
                line.starts_with("Gateway:")
            } else {
                line.starts_with("Portal:")
            };
            self.stdout_lines.push(line);
            if done {
                break;
            }
        }
        self.child = Some(child);
        Ok(())
    }

    /// Stops the process with SIGKILL (no chance to clean up) and starts it again on the same
    /// ports and data dir.
    pub fn kill9_and_restart(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
        let key = self.admin_key.clone();
        self.spawn(Some(&key).filter(|_| key == ADMIN_KEY).map(String::as_str));
    }

    /// Stops with SIGTERM and waits.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().unwrap();
        sigterm(c.id());
        c.wait().unwrap()
    }

    /// Restarts after `terminate`.
    pub fn start_again(&mut self) {
        let key = self.admin_key.clone();
        self.spawn(Some(&key).filter(|_| key == ADMIN_KEY).map(String::as_str));
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    pub fn gateway(&self, path: &str) -> String {
        format!("{}://127.0.0.1:{}{path}", self.scheme(), self.gateway_port)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!(
            "{}://127.0.0.1:{}{path}",
            self.scheme(),
            self.dashboard_port
        )
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// An admin request with the key; returns status and JSON body.
    pub async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&str>,
    ) -> (u16, Value) {
        let mut rb = self
            .http
            .request(method, self.admin_url(path))
            .bearer_auth(&self.admin_key);
        if let Some(b) = body {
            rb = rb
                .header("content-type", "application/json")
                .body(b.to_owned());
        }
        let r = rb.send().await.expect("the admin API answers");
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        let v = serde_json::from_str(&text)
            .unwrap_or_else(|_| panic!("admin answered non-JSON: {text}"));
        (status, v)
    }

    pub async fn create_api(&self, def: &Value) -> Value {
        let (s, v) = self
            .admin(reqwest::Method::POST, "/api/apis", Some(&def.to_string()))
            .await;
        assert_eq!(s, 201, "create API: {v}");
        v
    }

    /// GET through the gateway; returns status and body text.
    pub async fn call(&self, path: &str) -> (u16, String) {
        let r = self.http.get(self.gateway(path)).send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }
}

/// Sends SIGTERM to a process.
fn sigterm(pid: u32) {
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status()
        .expect("kill runs");
    assert!(status.success());
}

/// A keyless API definition.
pub fn keyless_api(name: &str, listen_path: &str, target: &str) -> Value {
    serde_json::json!({
        "name": name,
        "use_keyless": true,
        "active": true,
        "proxy": {"listen_path": listen_path, "target_url": target, "strip_listen_path": true}
    })
}

/// Peak resident memory (VmHWM) and current resident memory (VmRSS) of a process, in KiB.
pub fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap()
    };
    (field("VmHWM:"), field("VmRSS:"))
}
